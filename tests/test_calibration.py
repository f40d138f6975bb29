"""Calibration: the fit recovers known parameters, gradients are finite, the fitted file
round-trips, the fit is deterministic, and the shipped fit keeps its held-out error bounds."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calibration import _fit, prediction_interval
from calibration._params import raws, software_from, to_raw, to_value, values
from calibration._run import gemm_generalization, shipped, tables
from dse import SpecError
from dse.engine import float64
from dse.specs import read_fitted, software_from_mapping, software_to_mapping, write_fitted
from models import achievable_software
from models.workloads import gemm_operator

# Held-out MAPE bounds (percent) of the shipped fit on the shipped split: the targets
# where the fit meets them, else the achieved error plus a small margin (stated in the README).
SHIPPED_BOUNDS_PCT = {
    ("kernel_gemm", "-"): 10.0,
    ("allreduce", "-"): 15.0,
    ("static_latency", "vllm-offline"): 15.0,
    ("static_latency", "tensorrt-llm"): 15.0,
    ("static_latency", "deepspeed-mii"): 15.0,  # target 12 %: missed (14.0 %), see the README
    ("serving_tpot", "vllm-server"): 15.0,
    ("serving_energy", "vllm-server"): 25.0,  # target 20 %: missed, see the README
}


@pytest.fixture(scope="module", autouse=True)
def float64_module():
    """The fit's internals (its problems, predictors and expansions) are called directly here,
    outside calibration's entry points, which enter float64 themselves: so do these tests."""
    with jax.enable_x64(True):
        yield


# Tests on the whole measured data set (its preparation alone takes half a minute): CI runs them
# after the suite, with the tables that take fitting (python -m pytest -m figures).
WHOLE_DATA = pytest.mark.figures


@pytest.fixture(scope="module")
def prep():
    return _fit.prepare()


@pytest.fixture(scope="module")
def expansion(prep):
    """serve()'s second-order expansion in the stage-2 parameters, at their initial values."""
    v0 = values(_fit.initial_raw(_fit.SYSTEM_NAMES))
    k40 = _chips()[1]
    chip0 = dataclasses.replace(k40, **{n: np.asarray(v0[n]) for n in _fit.CHIP_PARAMS})
    sw0 = dataclasses.replace(
        achievable_software(), **{n: np.asarray(v0[f"{n}@vllm-offline"]) for n in _fit.LINEAR_SOFTWARE}
    )
    return _fit.system_linearization(chip0, sw0, prep)


@pytest.fixture(scope="module")
def kernel_subset(prep):
    """The kernel problem on every 7th row (fast), with its data restricted accordingly."""
    kp = _fit.kernel_problem(prep, "wave")
    n_k = len(prep.kernel_meta)
    idx = np.arange(0, n_k, 7)
    chip, kd, cd = kp.data
    sub = {k: v[idx] for k, v in kd.items()}
    onehot = kp.onehot[:, idx]
    keep = np.asarray(onehot.sum(axis=1)) > 0
    return dataclasses.replace(
        kp,
        predict=lambda raw, data: _fit.kernel_time_s(data[0], software_from(values(raw), "wave"), data[1]),
        data=(chip, sub, cd),
        measured=kp.measured[idx],
        onehot=onehot[keep],
        train=jnp.ones(len(idx)),
    )


def test_reparametrization_round_trips():
    for name, v in (
        ("bw_efficiency", 0.73),
        ("kernel_overhead_s", 3.1e-6),
        ("idle_w", 71.0),
        ("energy_per_byte_j", 6e-11),
        ("k_half", 90.0),
    ):
        assert float(to_value(name, to_raw(name, v))) == pytest.approx(v, rel=1e-9)


def test_kernel_predictor_matches_operator_cost():
    # The vectorized predictor is the engine's SIMT roofline: same time for the same GEMMs.
    from dse.specs import load_hardware

    chip = load_hardware("a100-sxm4-80gb", calibrated=False).spec
    sw = software_from(
        {
            "tile_efficiency": np.array([0.8, 0.75, 0.7, 0.6]),
            "k_half": 90.0,
            "kernel_overhead_s": 3e-6,
            "bw_efficiency": 0.8,
        },
        "wave",
    )
    for m, n, k in ((1, 4096, 4096), (512, 1024, 8192), (4096, 28672, 8192), (77, 6144, 5120)):
        ops = gemm_operator(jnp.asarray(float(m)), jnp.asarray(float(n)), jnp.asarray(float(k)), "fp16")
        c = chip.operator_cost(sw, ops, "fp16", "fp16", "fp16")
        ref = float(jnp.maximum(c.compute_s, c.memory_s)[0] + c.overhead_s[0])
        d = {"m": ops.m, "n": ops.n, "k": ops.k, "flops": ops.flops, "bytes": ops.bytes, "is_gemm": jnp.asarray([True])}
        assert float(_fit.kernel_time_s(chip, sw, d)[0]) == pytest.approx(ref, rel=1e-12)


@WHOLE_DATA
def test_gradients_finite_for_every_parameter(prep, kernel_subset, expansion):
    for form in ("table", "wave"):
        kp = _fit.kernel_problem(prep, form)
        g = jax.jit(jax.grad(kp.loss))(_fit.initial_raw(kp.names))
        assert set(g) == set(kp.names)
        for name, v in g.items():
            assert np.all(np.isfinite(np.asarray(v))), name
            assert np.any(np.asarray(v) != 0), name  # every parameter moves the loss
    sp = _fit.system_problem(prep, expansion)
    with float64():
        g = jax.jit(jax.grad(sp.loss))(_fit.initial_raw(sp.names))
    for name, v in g.items():
        assert np.isfinite(float(v)) and float(v) != 0.0, name


def _chips():
    from dse.specs import load_hardware

    return (
        load_hardware("a100-sxm4-80gb", calibrated=False).spec,
        load_hardware("a100-sxm4-40gb", calibrated=False).spec,
    )


@WHOLE_DATA
def test_fit_recovers_known_kernel_parameters(kernel_subset):
    # Synthetic data generated by the model itself with known parameters.
    true = {
        "tile_efficiency": np.array([0.82, 0.70, 0.66, 0.55]),
        "k_half": 120.0,
        "bw_efficiency": 0.78,
        "elementwise_bw_factor": 0.6,
        "kernel_overhead_s": 2.5e-6,
    }
    names = tuple(true)
    kp = dataclasses.replace(kernel_subset, names=names)
    synth = kp.predict(raws(true), kp.data)
    kp = dataclasses.replace(kp, measured=synth)
    raw0 = _fit.initial_raw(names)
    raw, trace = _fit.minimize(kp, raw0, steps=60)
    got = values(raw)
    assert float(trace[-1]) < 1e-8
    for k, v in true.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, rtol=2e-3, err_msg=k)
    # Deterministic: the same fit twice gives bit-identical parameters.
    raw2, _ = _fit.minimize(kp, raw0, steps=60)
    for k in raw:
        np.testing.assert_array_equal(np.asarray(raw[k]), np.asarray(raw2[k]))


@WHOLE_DATA
def test_fit_recovers_known_system_parameters(prep, expansion):
    sp = _fit.system_problem(prep, expansion)
    true = {
        "step_overhead_s@vllm-offline": 1.5e-3,
        "seq_overhead_s@vllm-offline": 8e-5,
        "rank_overhead_s@vllm-offline": 2e-4,
        "step_overhead_s@vllm-server": 12e-3,
        "seq_overhead_s@vllm-server": 3e-4,
        "rank_overhead_s@vllm-server": 6e-3,
        "step_overhead_s@tensorrt-llm": 0.5e-3,
        "seq_overhead_s@tensorrt-llm": 2e-5,
        "rank_overhead_s@tensorrt-llm": 3e-4,
        "step_overhead_s@deepspeed-mii": 6e-3,
        "seq_overhead_s@deepspeed-mii": 1e-4,
        "rank_overhead_s@deepspeed-mii": 1.5e-3,
        "idle_w": 80.0,
        "energy_per_flop_j": 0.6e-12,
        "energy_per_byte_j": 60e-12,
    }
    sp = dataclasses.replace(sp, measured=sp.predict(raws(true), sp.data))
    raw, trace = _fit.minimize(sp, _fit.initial_raw(sp.names), steps=_fit.SYSTEM_STEPS)
    got = values(raw)
    assert float(trace[-1]) < 1e-8
    for k, v in true.items():
        assert float(got[k]) == pytest.approx(v, rel=1e-2), k


@WHOLE_DATA
def test_expansion_matches_serve(prep, expansion):
    # Stage 2 fits serve()'s second-order expansion in the framework and power parameters;
    # below the TDP cap serve() is bilinear in them, so latency and energy (hence every
    # measured quantity) agree with serve() itself away from the expansion point.
    k80, k40 = _chips()
    sw = achievable_software()
    v = {
        "step_overhead_s@vllm-offline": 1e-3,
        "seq_overhead_s@vllm-offline": 5e-5,
        "rank_overhead_s@vllm-offline": 1e-4,
        "step_overhead_s@vllm-server": 1.5e-2,
        "seq_overhead_s@vllm-server": 3e-4,
        "rank_overhead_s@vllm-server": 4e-3,
        "step_overhead_s@tensorrt-llm": 0.4e-3,
        "seq_overhead_s@tensorrt-llm": 1e-5,
        "rank_overhead_s@tensorrt-llm": 2e-5,
        "step_overhead_s@deepspeed-mii": 5e-3,
        "seq_overhead_s@deepspeed-mii": 2e-4,
        "rank_overhead_s@deepspeed-mii": 8e-4,
        "idle_w": 70.0,
        "energy_per_flop_j": 0.5e-12,
        "energy_per_byte_j": 80e-12,
    }
    with float64():
        approx = np.asarray(_fit.system_linear({k: jnp.asarray(x) for k, x in v.items()}, expansion, prep.system))
    sw_fw = {
        fw: dataclasses.replace(
            sw,
            step_overhead_s=np.asarray(v[f"step_overhead_s@{fw}"]),
            seq_overhead_s=np.asarray(v[f"seq_overhead_s@{fw}"]),
            rank_overhead_s=np.asarray(v[f"rank_overhead_s@{fw}"]),
        )
        for fw in _fit.FRAMEWORK_NAMES
    }
    chip = dataclasses.replace(k40, **{n: np.asarray(v[n]) for n in _fit.CHIP_PARAMS})
    real = _fit.predict_all(prep, sw_fw, k80, chip)[-len(prep.system_meta) :]
    # Every fitted quantity (latency, power, energy, TPOT) is exact; serving throughput (tokens
    # per round over the round's time: not bilinear) is reported only, from serve() itself.
    fitted = prep.system_meta["dataset"].map(lambda n: _fit.DATASETS[n][3] == 2).to_numpy()
    assert fitted.sum() > 0.7 * len(fitted)
    np.testing.assert_allclose(approx[fitted], real[fitted], rtol=1e-9)


def test_fitted_file_round_trips(tmp_path):
    data = read_fitted("a100-sxm4-40gb")
    sw = software_from_mapping(data["software"])
    path = write_fitted("test-chip", {"software": software_to_mapping(sw), "chip": data["chip"]}, tmp_path)
    back = read_fitted("test-chip", tmp_path)
    sw2 = software_from_mapping(back["software"])
    for f in dataclasses.fields(sw):
        np.testing.assert_array_equal(np.asarray(getattr(sw, f.name)), np.asarray(getattr(sw2, f.name)))
    assert back["chip"] == data["chip"]
    assert path.name == "test-chip.yaml"
    # Read once per version of the file: a rewrite (same size) and a caller's edit of what it
    # was given are both seen, never a stale or shared copy.
    back["chip"] = {k: 2.0 * v if isinstance(v, float) else v for k, v in back["chip"].items()}
    assert read_fitted("test-chip", tmp_path)["chip"] == data["chip"]
    write_fitted("test-chip", {"software": back["software"], "chip": back["chip"]}, tmp_path)
    assert read_fitted("test-chip", tmp_path)["chip"] == back["chip"] != data["chip"]


def test_catalog_uses_the_fitted_file_by_default():
    import dse
    from dse.specs import fitted_software

    data = read_fitted("a100-sxm4-40gb")
    hw = dse.load_hardware("a100-sxm4-40gb")
    assert float(hw.spec.idle_w) == pytest.approx(data["chip"]["idle_w"])
    assert float(dse.load_hardware("a100-sxm4-40gb", calibrated=False).spec.idle_w) == 60.0
    # A GPU without a fit of its own falls back to the A100 software fit.
    assert float(fitted_software("h100-sxm5-80gb").bw_efficiency) == pytest.approx(data["software"]["bw_efficiency"])


@WHOLE_DATA
def test_shipped_fit_keeps_its_held_out_bounds(prep):
    df = shipped(prep, "a100-sxm4-40gb")
    tab = tables(df)["dataset"].set_index(["dataset", "framework", "split"])
    for (name, framework), bound in SHIPPED_BOUNDS_PCT.items():
        mape = tab.loc[(name, framework, "held-out"), "mape_after_pct"]
        assert mape <= bound, f"{name} ({framework}): held-out MAPE {mape:.1f} % > {bound} %"
        assert mape < tab.loc[(name, framework, "held-out"), "mape_before_pct"], name  # calibration helps


def test_prediction_interval():
    lo, hi = prediction_interval("a100-sxm4-40gb", np.array([1.0, 2.0]), "latency", 0.9)
    assert np.all(lo < np.array([1.0, 2.0])) and np.all(hi > np.array([1.0, 2.0]))
    lo2, hi2 = prediction_interval("h100-sxm5-80gb", 1.0, "latency", 0.9)  # transferred: wider
    assert hi2 - lo2 > hi[0] - lo[0]
    with pytest.raises(SpecError, match="expected one of"):
        prediction_interval("a100-sxm4-40gb", 1.0, "speed")


def test_calibrate_rejects_unknown_hardware():
    from dse.cli import main

    assert main(["calibrate", "--hardware", "h100-sxm5-80gb"]) == 2


def test_gemm_model_beats_a_two_constant_roofline_on_public_a100_shapes():
    # 24 GEMMs measured by third parties (never fitted): squares 256 to 16k, M = 1 to 64 skinny.
    df = gemm_generalization()
    assert len(df) >= 20 and df["m"].min() == 1 and df["m"].max() >= 16384
    err = {c: np.abs(df[c] / df["time_s"] - 1.0) for c in ("fitted_s", "roofline_s")}
    assert err["fitted_s"].mean() < err["roofline_s"].mean()
    big = df["m"] * df["n"] * df["k"] >= 4096**3
    assert err["fitted_s"][big].max() < 0.2  # large GEMMs within 20 % (measured at 85-88 % of peak)
