"""GPU-class (SIMT) roofline, utilization curve and power model against hand derivations."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from helpers import f

import dse
from models import achievable_software, gemm_cost, ideal_software
from models._interface import linear_power_energy_j as simt_energy_j
from models.hardware import gemm_utilization

# Model functions called directly, outside the engine: in float64, as the engine calls them.
pytestmark = pytest.mark.usefixtures("float64")

A100 = dse.load_hardware("a100-sxm4-80gb").spec


def test_seed_utilization_table():
    # Seed 000 cuBLAS table: M < 32 → 15 %, M = 128–512 → 70 %, M > 4096 → 85 %.
    knots = achievable_software().util_knots
    for m, u in ((1, 0.15), (16, 0.15), (32, 0.15), (128, 0.70), (300, 0.70), (512, 0.70), (4096, 0.85), (65536, 0.85)):
        assert float(gemm_utilization(knots, f(m))) == pytest.approx(u)
    # Between knots: linear in log2 M — M = 64 is halfway from 32 to 128 in log space.
    assert float(gemm_utilization(knots, f(64))) == pytest.approx((0.15 + 0.70) / 2)


def test_roofline_crossover_is_the_ridge_point():
    # Ideal level: square GEMM in bf16 with M = N = K = x has AI = 2x³ / (2·3x²) = x/3 FLOP/B.
    # Compute time 2x³/P equals memory time 6x²/B at x = 3P/B: the ridge point P/B = 153 FLOP/B
    # on an A100 80GB (312e12 / 2.039e12), so x* = 459.
    sw = ideal_software()
    x_star = 3 * 312e12 / 2.039e12
    t_c = 2 * x_star**3 / 312e12
    t, _ = gemm_cost(A100, sw, f(x_star), f(x_star), f(x_star), "bf16")
    assert float(t) == pytest.approx(t_c, rel=1e-9)
    # Below: memory-bound (bytes / bandwidth); above: compute-bound (FLOPs / peak).
    small, _ = gemm_cost(A100, sw, f(100), f(100), f(100), "bf16")
    assert float(small) == pytest.approx(6 * 100**2 / 2.039e12, rel=1e-9)
    big, _ = gemm_cost(A100, sw, f(8192), f(8192), f(8192), "bf16")
    assert float(big) == pytest.approx(2 * 8192**3 / 312e12, rel=1e-9)


def test_achievable_gemm_uses_utilization():
    # 4096³ BF16 GEMM on an A100 at the achievable level: util(4096) = 85 % →
    # 2·4096³ / (312e12 · 0.85) = 0.5183 ms.
    t, _ = gemm_cost(A100, achievable_software(), f(4096), f(4096), f(4096), "bf16")
    assert float(t) == pytest.approx(2 * 4096**3 / (312e12 * 0.85), rel=1e-9)


def test_seed_a100_power_model():
    # Seed: P = 60 W + 0.2 mW per GFLOP/s + 50 mW per GB/s. 1 s at 100 TFLOP/s and 1 TB/s:
    # 60 + 0.2e-3·1e5 + 50e-3·1e3 = 60 + 20 + 50 = 130 W → 130 J.
    seed = dse.load_hardware("a100-sxm4-80gb", calibrated=False).spec  # the calibrated one is fitted
    e = simt_energy_j(seed, f(1.0), f(100e12), f(1e12))
    assert float(e) == pytest.approx(130.0)
    # Capped at TDP: 312 TFLOP/s and 2.039 TB/s → 60 + 62.4 + 102 = 224 W < 400 W, uncapped;
    # ten times the activity in the same second would be 1,704 W → capped at 400 W.
    assert float(simt_energy_j(seed, f(1.0), f(312e13), f(2.039e13))) == pytest.approx(400.0)


def test_fp8_rate_falls_back_on_a100_and_doubles_on_h100():
    h100 = dse.load_hardware("h100-sxm5-80gb").spec
    sw = ideal_software()
    n = f(16384)
    t_bf16, _ = gemm_cost(h100, sw, n, n, n, "bf16")
    t_fp8, _ = gemm_cost(h100, sw, n, n, n, "fp8")
    assert float(t_bf16 / t_fp8) == pytest.approx(1978.9 / 989.4, rel=1e-9)  # datasheet dense rates
    a_bf16, _ = gemm_cost(A100, sw, n, n, n, "bf16")
    a_fp8, _ = gemm_cost(A100, sw, n, n, n, "fp8")
    assert float(a_bf16) == pytest.approx(float(a_fp8))  # no FP8 tensor cores: BF16 rate


def test_derived_power_coefficients_scale_with_budget():
    # Chips without datasheet coefficients, uncalibrated: full-load dynamic power = (TDP − idle)
    # / 340 W × the seed A100's 164.4 W (62.4 W compute + 102 W memory), split in its ratio.
    # (Calibrated, they take the fitted A100's shares instead: tests/test_precision.py.)
    h = dse.load_hardware("h100-sxm5-80gb", calibrated=False).spec
    dyn = float(h.energy_per_flop_j * h.peak_bf16_flops_per_s + h.energy_per_byte_j * h.hbm_bandwidth_bytes_per_s)
    assert dyn == pytest.approx((700 - 70) / 340 * (62.4 + 0.05 * 2039), rel=1e-6)
    assert float(jnp.asarray(h.energy_per_flop_j)) > 0
