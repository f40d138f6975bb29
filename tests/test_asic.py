"""Non-GPU families against the seeds' numbers, hand derivations and properties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import config, f
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from dse.engine import run_designs, software_levels
from dse.specs import load_hardware
from models import Infeasible, Scenario, achievable_software, gemm_cost, serve
from models.hardware import reconfiguration_s_per_pass, systolic_utilization
from models.workloads import memory_per_chip

# Model functions called directly, outside the engine: in float64, as the engine calls them.
pytestmark = pytest.mark.usefixtures("float64")

SW = achievable_software()


def metrics(model, hw, **kw):
    c = config(model, hw, **kw)
    return serve(c.model, c.chip, c.platform, c.scenario, c.economics, SW)


# --- systolic ---------------------------------------------------------------------------


def test_seed_systolic_utilization():
    # Seed 000: utilization(M) = min(1, M/N); M = 1 on a 128×128 array is 1/128 = 0.78 %.
    n = f(128)
    assert float(systolic_utilization(f(1), f(1024), f(1024), n)) == pytest.approx(1 / 128)
    assert float(systolic_utilization(f(1), f(1024), f(1024), n)) == pytest.approx(0.0078, abs=1e-4)
    for m in (256, 512, 4096):  # ≥ 90 % for M ≥ 256 (tile-aligned K and N)
        assert float(systolic_utilization(f(m), f(1024), f(1024), n)) >= 0.9
    # Edge tiles: K = N_out = 130 need ⌈130/128⌉² = 4 tiles of 128² cells for 130² weights.
    assert float(systolic_utilization(f(512), f(130), f(130), n)) == pytest.approx(130**2 / (4 * 128**2))


def test_tpu_v5e_peak_is_its_datasheet_197_tflops():
    # peak = n_arrays · N² · 2 · f from the array's structure (4 MXUs of 128², 1.5 GHz), checked
    # against the published figure, not against the same product: Cloud TPU v5e documentation,
    # 197 TFLOP/s BF16 and 393 TOP/s INT8 per chip (196.6 from the structure: 0.2 % rounding).
    tpu = dse.load_hardware("tpu-v5e").spec
    assert tpu.family == "systolic"
    assert float(tpu.peak_bf16_flops_per_s) == pytest.approx(197e12, rel=0.005)
    assert float(tpu.peak_flops_per_s("int8")) == pytest.approx(393e12, rel=0.005)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 512), st.integers(8, 512))
def test_larger_array_never_lower_peak(a, b):
    tpu = dse.load_hardware("tpu-v5e").spec
    small, big = sorted((a, b))
    p = [float(dataclasses.replace(tpu, array_size=f(x)).peak_bf16_flops_per_s) for x in (small, big)]
    assert p[1] >= p[0]


def test_systolic_decode_gemv_is_memory_bound_and_slow_compute():
    tpu = dse.load_hardware("tpu-v5e").spec
    t, _ = gemm_cost(tpu, SW, f(1), f(4096), f(4096), "bf16")
    # M = 1: compute at 1/128 of peak = 2·4096²/(196.6e12/128) = 21.8 µs; memory (weights 2·4096²
    # B + input and output vectors 2·2·4096 B) / (0.819e12 · 0.85) = 48.2 µs: memory-bound.
    assert float(t) == pytest.approx((2 * 4096**2 + 4 * 4096) / (0.819e12 * 0.85), rel=1e-9)
    # Weights beyond the on-chip SRAM (8192² · 2 B = 134 MB in 64 MB: ⌈134/64⌉ = 3 refills)
    # re-stream the activations (2·8192 B in, 2·8192 B out) once per refill.
    t2, _ = gemm_cost(dataclasses.replace(tpu, sram_capacity_bytes=f(64e6)), SW, f(1), f(8192), f(8192), "bf16")
    assert float(t2) == pytest.approx((2 * 8192**2 + 3 * 4 * 8192) / (0.819e12 * 0.85), rel=1e-9)


# --- in-memory compute ------------------------------------------------------------------


def test_seed_imc_tile_rate_and_passes():
    imc = dse.load_hardware("dmatrix-corsair").spec
    # 256 ADCs × 1 GHz, each conversion a 256-row dot product = 2·256 ops: 131.07 TOPS per tile.
    assert float(imc.tile_ops_per_s) == pytest.approx(256 * 1e9 * 2 * 256)
    assert float(imc.tile_ops_per_s) / 1e12 == pytest.approx(131, rel=1e-3)
    # n_passes = ⌈input_bits/dac_bits⌉·⌈weight_bits/adc_bits⌉ with 4-bit DAC and ADC:
    assert float(imc.passes("int4", "int4")) == 1
    assert float(imc.passes("int4", "int8")) == 2
    assert float(imc.passes("bf16", "bf16")) == 16


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from(["int4", "int8", "bf16"]))
def test_more_adc_bits_never_more_passes(a, b, dtype):
    # (The issue words it "never fewer passes"; the physics is the reverse: a finer ADC
    # resolves more bits per conversion, so passes can only fall.)
    imc = dse.load_hardware("dmatrix-corsair").spec
    lo, hi = sorted((a, b))
    p_lo = float(dataclasses.replace(imc, adc_bits=f(lo)).passes(dtype, dtype))
    p_hi = float(dataclasses.replace(imc, adc_bits=f(hi)).passes(dtype, dtype))
    assert p_hi <= p_lo


def _chip_energy_per_op(hw: str, dtype: str) -> float:
    chip = dse.load_hardware(hw, calibrated=False).spec  # datasheet + seed power model
    n = f(8192)
    _, e = gemm_cost(chip, SW, f(4096), n, n, dtype)
    return float(e) / (2 * 4096 * 8192**2)


def test_seed_imc_energy_claims():
    # Seed: 10–50× energy efficiency over digital for INT4 weights; FP16 multi-pass negates
    # the benefit. At the MAC level: digital = the seed's A100 α = 0.2 pJ/FLOP; IMC = passes ×
    # (Walden 20 fJ·2⁴ / (2·256) + 2 fJ analog + 3 fJ shift-add) = 5.6 fJ/op for INT4 → 36×;
    # FP16 needs 16 passes → 89 fJ/op → 2.2×: most of the benefit is gone.
    corsair = dse.load_hardware("dmatrix-corsair", calibrated=False).spec
    digital = float(dse.load_hardware("a100-sxm4-80gb", calibrated=False).spec.energy_per_flop_j)
    int4 = float(corsair.energy_per_matmul_op_j("int4", "int4"))
    fp16 = float(corsair.energy_per_matmul_op_j("bf16", "bf16"))
    assert int4 == pytest.approx(20e-15 * 16 / 512 + 5e-15)
    assert 10 <= digital / int4 <= 50
    assert fp16 == pytest.approx(16 * int4)
    assert digital / fp16 < 3
    # Whole chip, idle power and weight traffic included (4096×8192×8192 GEMM): INT4 IMC over
    # the A100 at 16 bits shrinks to ≈ 7×, FP16 IMC is no better than the A100 — static power
    # and data movement, not the MAC, set the chip-level figure. Against the A100's own INT4
    # tensor cores (4× its BF16 rate, so a quarter of the energy per op) the IMC chip keeps
    # less than 3×.
    a100_bf16 = _chip_energy_per_op("a100-sxm4-80gb", "bf16")
    chip_int4 = a100_bf16 / _chip_energy_per_op("dmatrix-corsair", "int4")
    chip_fp16 = a100_bf16 / _chip_energy_per_op("dmatrix-corsair", "bf16")
    assert 3 < chip_int4 < 20 and chip_fp16 < 1.5
    both_int4 = _chip_energy_per_op("a100-sxm4-80gb", "int4") / _chip_energy_per_op("dmatrix-corsair", "int4")
    assert 1 < both_int4 < 3


def test_imc_weights_beyond_the_arrays_spill_off_chip():
    small = metrics("llama-3-8b", "dmatrix-corsair", tp=8, batch=1, prompt_tokens=128, output_tokens=16)
    big = metrics("llama-3-70b", "dmatrix-corsair", tp=8, batch=1, prompt_tokens=128, output_tokens=16)
    # 8B/8 = 2.0 GB per chip fits the 2 GB of arrays; 70B/8 = 17.6 GB spills to LPDDR.
    assert float(big.tpot_s) / float(small.tpot_s) > 5
    assert bool(big.feasible)  # the off-chip memory holds it


# --- wafer-scale dataflow ---------------------------------------------------------------


def test_seed_wafer_residency():
    wse = dse.load_hardware("wse-3").spec
    for model, fits in (("llama-3-8b", True), ("llama-3-70b", False)):
        m = dse.load_model(model).spec
        fp = memory_per_chip(m, Scenario(f(1), f(1), f(1), weight_dtype="fp16"), f(1), f(1))
        # Llama 3 8B at FP16: 16.1 GB ≤ 44 GB; Llama 3 70B: 141 GB > 44 GB (docs/references.md#research-note).
        assert bool(wse.weights_resident(fp.weight_bytes, fp.kv_bytes)) is fits


def test_resident_wafer_beats_streaming_on_decode():
    c = config("llama-3-8b", "wse-3", tp=1, batch=1, prompt_tokens=512, output_tokens=64)
    resident = serve(c.model, c.chip, c.platform, c.scenario, c.economics, SW)
    tiny = dataclasses.replace(c.chip, sram_capacity_bytes=f(4e9))  # same chip, weights streamed
    streaming = serve(c.model, tiny, c.platform, c.scenario, c.economics, SW)
    assert float(resident.tpot_s) * 5 < float(streaming.tpot_s)


def test_a_resident_wafer_lays_its_layers_out_in_space():
    # Resident, each of Llama 3 8B's 32 layers has its own region of the wafer: one sequence
    # crosses them in turn (32 x the whole-wafer busy time); 32 sequences in flight, one per
    # region, keep every region busy: 32 x the tokens at the same per-token latency. Streamed
    # weights run layer by layer on the whole wafer.
    c = config("llama-3-8b", "wse-3", tp=1, batch=1, prompt_tokens=512, output_tokens=64)
    wafer = serve(c.model, c.chip, c.platform, c.scenario, c.economics, SW)
    assert float(c.chip.layers_in_space(f(16e9), f(0.0), f(32.0))) == 32.0
    assert float(c.chip.layers_in_space(f(60e9), f(0.0), f(32.0))) == 1.0
    flat = dataclasses.replace(c.chip, sram_capacity_bytes=f(4e9), external_bandwidth_bytes_per_s=f(21e15))
    temporal = serve(c.model, flat, c.platform, c.scenario, c.economics, SW)  # same rates, one layer at a time
    assert float(wafer.tpot_s) / float(temporal.tpot_s) == pytest.approx(32.0, rel=0.05)
    wafer32 = serve(c.model, c.chip, c.platform, dataclasses.replace(c.scenario, batch=f(32)), c.economics, SW)
    assert float(wafer32.tpot_s) == pytest.approx(float(wafer.tpot_s), rel=0.1)


def test_a_multi_wafer_pipeline_keeps_each_stage_on_its_wafer():
    # Llama 3 70B at 16 bits (141 GB) does not fit one WSE-3's 44 GB: streamed from external
    # memory. Over 4 wafers (pp = 4) each holds a quarter (35 GB) in its SRAM: resident.
    one = metrics("llama-3-70b", "wse-3", pp=1, batch=1, prompt_tokens=512, output_tokens=16)
    four = metrics("llama-3-70b", "wse-3", pp=4, batch=1, prompt_tokens=512, output_tokens=16)
    assert float(four.weight_bytes_per_chip) == pytest.approx(float(one.weight_bytes_per_chip) / 4, rel=1e-9)
    assert float(four.tpot_s) * 50 < float(one.tpot_s)  # 21 PB/s SRAM against 14.6 TB/s external
    two = metrics("llama-3-70b", "wse-3", pp=2, batch=1, prompt_tokens=512, output_tokens=16)
    assert float(two.tpot_s) == pytest.approx(float(one.tpot_s), rel=0.05)  # 70 GB per wafer: still streamed


def test_wafer_system_power_in_seed_range():
    # Seed: ~15 kW for inference; GenZ Table VII: 23 kW peak. Busy prefill draws between.
    m = metrics("llama-3-8b", "wse-3", tp=1, batch=16, prompt_tokens=4096, output_tokens=1)
    assert 6_900 <= float(m.average_power_w) <= 23_000


# --- SRAM chiplets ------------------------------------------------------------------------


def test_chip_count_is_an_output():
    a = metrics("llama-3-8b", "groq-lpu", tp=8, batch=1, prompt_tokens=512, output_tokens=64)
    b = metrics("llama-3-70b", "groq-lpu", tp=64, batch=1, prompt_tokens=512, output_tokens=64)
    # stages = ⌈(weights + KV) per TP rank / (SRAM − one sequence's activations)⌉:
    # Llama 3 8B at TP 8: 2.02 GB / 217 MB → 10 stages (80 chips); Llama 3 70B at TP 64 (KV
    # heads replicated beyond 8): 11 stages (704 chips).
    for m, tp, want in ((a, 8, 10), (b, 64, 11)):
        model = dse.load_model("llama-3-8b" if tp == 8 else "llama-3-70b").spec
        fp = memory_per_chip(model, Scenario(f(1), f(512), f(64)), f(tp), f(1))
        stages = np.ceil(float(fp.weight_bytes + fp.kv_bytes) / (0.23e9 - float(fp.act_bytes)))
        assert stages == want
        assert int(m.n_chips) == tp * stages
    assert bool(a.feasible) and bool(b.feasible)
    assert float(b.memory_per_chip_bytes) <= 0.23e9


def test_groq_platform_power_scales_with_chips():
    # GenZ Table VII: 16 GroqRacks (1,024 chips) ≈ 276.8 kW at peak → 270 W per chip.
    groq = dse.load_hardware("groq-lpu").spec
    assert 1024 * float(groq.tdp_w) == pytest.approx(276.8e3, rel=0.01)
    m = metrics("llama-3-70b", "groq-lpu", tp=64, batch=1, prompt_tokens=512, output_tokens=64)
    assert float(m.average_power_w) >= int(m.n_chips) * float(groq.idle_w)


def test_more_sram_never_less_feasible_until_the_die_outgrows_the_reticle():
    c = config("llama-3-70b", "groq-lpu", tp=8, batch=4, prompt_tokens=1024, output_tokens=128)
    sw = software_levels(load_hardware("groq-lpu"), ["achievable"])
    r = run_designs(c, {"sram_capacity_bytes": np.geomspace(50e6, 2e9, 16)}, sw, chunk=16)
    fits = r["die_fill"][0] <= 1
    assert np.all(np.diff(r["die_area_mm2"][0]) > 0)  # every byte of SRAM takes bit cells
    assert np.all(np.diff(r["feasible"][0][fits]) >= 0)
    assert r["feasible"][0][0] == 0 and r["feasible"][0][fits][-1] == 1
    # Past the reticle the design cannot be made: infeasible, and it says why.
    assert not fits.all() and np.all(r["infeasible_reason"][0][~fits] == Infeasible.DIE_TOO_LARGE)
    assert np.all(np.diff(r["n_chips"][0]) <= 0)  # more SRAM per chip, fewer chips


# --- CGRA -----------------------------------------------------------------------------------


def test_seed_reconfiguration_overhead():
    sn = dse.load_hardware("sn40l").spec
    # 10 µs × 3 groups × 80 layers = 2.4 ms per forward pass.
    assert float(reconfiguration_s_per_pass(sn, f(80))) == pytest.approx(2.4e-3)
    c = config("llama-3-70b", "sn40l", tp=8, batch=1, prompt_tokens=128, output_tokens=64)
    base = serve(c.model, c.chip, c.platform, c.scenario, c.economics, SW)
    none = serve(
        c.model, dataclasses.replace(c.chip, reconfig_time_s=f(1e-12)), c.platform, c.scenario, c.economics, SW
    )
    assert float(base.tpot_s - none.tpot_s) == pytest.approx(2.4e-3, rel=1e-6)
    # Amortized: the same 2.4 ms per step is shared by a batch of 64.
    big = metrics("llama-3-70b", "sn40l", tp=8, batch=64, prompt_tokens=128, output_tokens=64)
    assert float(big.decode_tokens_per_s_per_chip) > 10 * float(base.decode_tokens_per_s_per_chip)


def test_fusion_keeps_intermediates_on_chip():
    c = config("llama-3-8b", "sn40l", tp=1, batch=32, prompt_tokens=2048, output_tokens=1)
    fused = serve(c.model, c.chip, c.platform, c.scenario, c.economics, SW)
    unfused = serve(
        c.model, dataclasses.replace(c.chip, fusion_fraction=f(0.0)), c.platform, c.scenario, c.economics, SW
    )
    assert float(fused.ttft_s) <= float(unfused.ttft_s)


def test_every_catalog_chip_evaluates():
    for hw in dse.hardware_ids():
        m = metrics("llama-3-8b", hw, tp=1, batch=2, prompt_tokens=256, output_tokens=8)
        for name, v in m._asdict().items():
            assert np.isfinite(float(v)), (hw, name)
