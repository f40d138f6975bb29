"""Monotonicity properties (hypothesis), evaluated through the engine boundary."""

from __future__ import annotations

import numpy as np
from helpers import config
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from dse.engine import run_designs, software_levels

SW = software_levels(dse.load_hardware("h100-sxm5-80gb"), ["ideal", "achievable"])
MODELS = ["llama-3-8b", "mixtral-8x7b"]
CFG = {m: config(m, "h100-sxm5-80gb", tp=2) for m in MODELS}
N = 16  # designs per example (one compiled chunk size)


# Every call passes the same knob names (defaults from the H100 spec), so each model compiles once.
DEFAULT_KNOBS = {
    "hbm_bandwidth_bytes_per_s": 3.35e12,
    "peak_bf16_flops_per_s": 989.4e12,
    "link_bandwidth_bytes_per_s": 450e9,
    "hbm_capacity_bytes": 80e9,
}


def _eval(model, **knobs):
    knobs = {**DEFAULT_KNOBS, **knobs}
    knobs = {k: np.broadcast_to(np.asarray(v, dtype=float), (N,)) for k, v in knobs.items()}
    return run_designs(CFG[model], knobs, SW, chunk=N)


scenario = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "batch": st.integers(1, 512),
        "prompt": st.integers(1, 16384),
        "out": st.integers(1, 4096),
        "tp": st.sampled_from([1, 2, 4, 8]),
    }
)


def _base(s):
    return dict(batch=s["batch"], prompt_tokens=s["prompt"], output_tokens=s["out"], tp=s["tp"])


@settings(max_examples=25, deadline=None)
@given(scenario, st.sampled_from(["hbm_bandwidth_bytes_per_s", "peak_bf16_flops_per_s", "link_bandwidth_bytes_per_s"]))
def test_more_bandwidth_or_flops_never_slower(s, knob):
    values = (
        np.geomspace(0.1, 10, N)
        * {"hbm_bandwidth_bytes_per_s": 3.35e12, "peak_bf16_flops_per_s": 989e12, "link_bandwidth_bytes_per_s": 450e9}[
            knob
        ]
    )
    r = _eval(s["model"], **_base(s), **{knob: values})
    for name in ("ttft_s", "tpot_s", "latency_s"):
        assert np.all(np.diff(r[name], axis=1) <= 1e-12 * r[name][:, 1:]), name


@settings(max_examples=25, deadline=None)
@given(scenario)
def test_more_batch_never_a_shorter_step(s):
    base = _base(s)
    base["batch"] = np.arange(1, N + 1) * max(1, s["batch"] // N)
    r = _eval(s["model"], **base)
    assert np.all(np.diff(r["tpot_s"], axis=1) >= -1e-12 * r["tpot_s"][:, 1:])
    assert np.all(np.diff(r["ttft_s"], axis=1) >= -1e-12 * r["ttft_s"][:, 1:])


@settings(max_examples=25, deadline=None)
@given(scenario, st.sampled_from(["batch", "prompt_tokens", "output_tokens"]))
def test_memory_monotone_in_batch_and_context(s, knob):
    base = _base(s)
    base[knob] = np.arange(1, N + 1) * max(1, base[knob] // N)
    r = _eval(s["model"], **base)
    assert np.all(np.diff(r["memory_per_chip_bytes"], axis=1) >= 0)
    assert np.all(np.diff(r["kv_bytes_per_chip"], axis=1) >= 0)


@settings(max_examples=15, deadline=None)
@given(scenario)
def test_outputs_finite_and_feasibility_consistent(s):
    r = _eval(s["model"], **_base(s), hbm_capacity_bytes=np.geomspace(1e9, 1e12, N))
    for k, v in r.items():
        assert np.all(np.isfinite(v)), k
    fits = (r["hbm_fill"][0] <= 1) & (r["die_fill"][0] <= 1)
    feas = r["feasible"][0][fits]
    # more capacity never less feasible while its HBM stacks fit along the die
    assert np.all(np.diff(feas) >= 0)
    assert np.all(r["feasible"][0][~fits] == 0)
