"""Precision per chip generation and power that transfers across GPUs (issue 11, items 1-2).

Single configurations run eagerly (``helpers.serve_eager``); the GEMM comparisons call the
chip's own cost function."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import f, serve_eager

import dse
from dse.engine import calibrated_software, float64
from dse.specs import gemm_precision
from dse.specs._hardware import power_shares
from models import achievable_software, gemm_cost
from models.workloads import gemm_operator


def _gemm_s(hardware: str, dtype: str, n: float = 8192.0) -> float:
    chip = dse.load_hardware(hardware).spec
    with float64():
        return float(gemm_cost(chip, achievable_software(), f(n), f(n), f(n), dtype)[0])


def test_a100_int4_gemm_beats_int8_beats_bf16():
    # A100 datasheet, dense: BF16 312, INT8 624, INT4 1,248 TOP/s. An 8192³ GEMM is compute-bound.
    bf16, int8, int4 = (_gemm_s("a100-sxm4-80gb", d) for d in ("bf16", "int8", "int4"))
    assert int4 < int8 < bf16
    assert bf16 / int8 == pytest.approx(2.0, rel=0.02) and int8 / int4 == pytest.approx(2.0, rel=0.05)


def test_unsupported_dtypes_fall_back_to_the_next_wider_rate_and_say_so():
    a100, h100, b200 = (dse.load_hardware(h) for h in ("a100-sxm4-80gb", "h100-sxm5-80gb", "b200"))
    assert "fallback" in gemm_precision(a100, "fp8", "fp8") and "BF16 rate" in gemm_precision(a100, "fp8", "fp8")
    assert "INT8 rate" in gemm_precision(h100, "int4", "int4") and "fallback" in gemm_precision(h100, "int4", "int4")
    assert gemm_precision(h100, "fp8", "fp8") == "fp8 GEMMs at the FP8 rate"
    assert gemm_precision(b200, "fp4", "fp4") == "fp4 GEMMs at the FP4 rate"
    # Weight-only quantization computes in the activations' dtype.
    assert gemm_precision(a100, "int4", "bf16") == "bf16 GEMMs at the BF16 rate"
    # Hopper has no INT4 tensor cores: its INT4 GEMM runs at the INT8 rate, no faster.
    assert _gemm_s("h100-sxm5-80gb", "int4") == pytest.approx(_gemm_s("h100-sxm5-80gb", "int8"), rel=1e-12)


L70 = dict(model="llama-3-70b", hardware="h100-sxm5-80gb", tp=8)


def test_h100_fp8_over_bf16_on_a_70b_prefill_and_request():
    pre = {
        d: float(serve_eager(**L70, dtype=d, batch=1, prompt_tokens=8000, output_tokens=1).ttft_s)
        for d in ("bf16", "fp8")
    }
    req = {
        d: float(serve_eager(**L70, dtype=d, batch=64, prompt_tokens=2048, output_tokens=256).latency_s)
        for d in ("bf16", "fp8")
    }
    assert pre["bf16"] / pre["fp8"] >= 1.7
    assert req["bf16"] / req["fp8"] >= 1.6


def test_gpu_power_transfers_as_shares_of_the_dynamic_budget():
    fitted = power_shares(dse.load_hardware("a100-sxm4-40gb").spec)  # the fit with power data
    for hw in ("a100-sxm4-80gb", "h100-sxm5-80gb", "h200-sxm-141gb", "b200"):
        chip = dse.load_hardware(hw).spec
        assert power_shares(chip) == pytest.approx(fitted, rel=1e-12), hw
        # At full memory bandwidth the chip draws idle + memory share x (TDP − idle) (below the cap).
        t = 1.0
        with float64():
            e = float(chip.work_energy_j(f(t), f(0.0), chip.memory_bandwidth_bytes_per_s * t, None, "bf16", "bf16"))
        budget = float(chip.tdp_w) - float(chip.idle_w)
        assert e == pytest.approx(min(float(chip.tdp_w), float(chip.idle_w) + fitted["memory"] * budget), rel=1e-9)
    # Without calibration a GPU keeps its datasheet (seed) power model.
    raw = dse.load_hardware("h100-sxm5-80gb", calibrated=False).spec
    assert power_shares(raw)["compute"] < fitted["compute"]


def test_a_tensor_core_flop_at_twice_the_rate_costs_half_the_energy():
    chip = dse.load_hardware("h100-sxm5-80gb").spec
    ops = gemm_operator(f(1), f(1), f(1), "fp8")
    with float64():
        fp8 = float(chip.work_energy_j(f(1e-3), f(1e12), f(0.0), ops, "fp8", "fp8"))
        bf16 = float(chip.work_energy_j(f(1e-3), f(0.5e12), f(0.0), ops, "bf16", "bf16"))
    assert fp8 == pytest.approx(bf16, rel=1e-12)


def test_calibrated_software_of_a_transferred_gpu_is_the_a100_fit():
    sw = calibrated_software(dse.load_hardware("h100-sxm5-80gb"))
    ref = calibrated_software(dse.load_hardware("a100-sxm4-40gb"))
    for field in dataclasses.fields(sw):
        np.testing.assert_array_equal(np.asarray(getattr(sw, field.name)), np.asarray(getattr(ref, field.name)))
