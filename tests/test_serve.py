"""Whole-request metrics: closed-form decode sums, platform split, feasibility, economics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import config, f
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from models import achievable_software, default_economics, serve, sum_max_affine
from models._serve import _phase
from models.platform import pipeline_fill_factor

# Model functions called directly, outside the engine: in float64, as the engine calls them.
pytestmark = pytest.mark.usefixtures("float64")


@settings(max_examples=200, deadline=None)
@given(st.floats(-5, 5), st.floats(-1, 1), st.floats(-5, 5), st.floats(-1, 1), st.integers(1, 60))
def test_sum_max_affine_matches_brute_force(p, q, r, s, n):
    i = np.arange(n)
    brute = np.maximum(p + q * i, r + s * i).sum()
    assert float(sum_max_affine(f(p), f(q), f(r), f(s), f(n))) == pytest.approx(brute, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("batch,prompt,out", [(1, 2048, 256), (64, 512, 300), (256, 128, 2048)])
def test_decode_closed_form_equals_step_loop(batch, prompt, out):
    # Σ over D steps in closed form == the explicit loop of D single steps (eager).
    c = config("llama-3-70b", "h100-sxm5-80gb", tp=8, batch=batch, prompt_tokens=prompt, output_tokens=out)
    sw = achievable_software()
    args = (c.model, c.chip, sw, c.scenario, c.platform)
    closed = _phase(*args, f(1), f(prompt), f(out))
    # The explicit loop over steps, vectorized over the step index (one step per context).
    one_step = jax.jit(jax.vmap(lambda past: _phase(*args, f(1), past, f(1))))
    steps = one_step(prompt + jnp.arange(out, dtype=float))
    for field in ("busy_s", "compute_s", "memory_s", "network_s", "flops", "bytes", "wall_s"):
        loop = float(np.sum(getattr(steps, field)))
        assert float(getattr(closed, field)) == pytest.approx(loop, rel=1e-9), field
    # Energy: the TDP cap is applied on each operator's totals; exact unless a row crosses it.
    loop_e = float(np.sum(steps.chip_energy_j))
    assert float(closed.chip_energy_j) == pytest.approx(loop_e, rel=1e-3)


def run(model, hw, **kw):
    c = config(model, hw, **kw)
    return serve(c.model, c.chip, c.platform, c.scenario, c.economics, achievable_software())


@pytest.mark.parametrize("tp,feasible", [(1, False), (2, True), (4, True), (8, True)])
def test_llama3_70b_on_a100s(tp, feasible):
    # 70.55e9 params · 2 B = 141 GB of weights: above one 80 GB A100, fits on 2, 4, 8.
    m = run("llama-3-70b", "a100-sxm4-80gb", tp=tp, batch=1, prompt_tokens=2048, output_tokens=256)
    assert bool(m.feasible) is feasible
    assert int(m.infeasible_reason) == (0 if feasible else 1)
    assert np.isfinite(float(m.tpot_s)) and np.isfinite(float(m.usd_per_mtok))  # infeasible stays finite


def test_llama3_70b_on_8_h100s_and_tp_speedup():
    m8 = run("llama-3-70b", "h100-sxm5-80gb", tp=8, batch=8, prompt_tokens=2048, output_tokens=256)
    m4 = run("llama-3-70b", "h100-sxm5-80gb", tp=4, batch=8, prompt_tokens=2048, output_tokens=256)
    assert bool(m8.feasible) and int(m8.n_chips) == 8
    assert float(m8.tpot_s) < float(m4.tpot_s)
    assert float(m8.memory_per_chip_bytes) < float(m4.memory_per_chip_bytes)


def test_pipeline_fill_factor():
    # GPipe: m micro-batches over p stages take (m + p − 1) stage-times of 1/(m·p) each.
    assert float(pipeline_fill_factor(f(1), f(4))) == 1.0
    assert float(pipeline_fill_factor(f(4), f(1))) == 1.0
    assert float(pipeline_fill_factor(f(8), f(4))) == pytest.approx(11 / 32)


def test_pipeline_parallel_prefill_and_memory():
    a = run("llama-3-70b", "a100-sxm4-80gb", tp=2, pp=1, batch=8, prompt_tokens=1024, output_tokens=16)
    b = run("llama-3-70b", "a100-sxm4-80gb", tp=2, pp=2, batch=8, prompt_tokens=1024, output_tokens=16)
    assert float(b.weight_bytes_per_chip) == pytest.approx(float(a.weight_bytes_per_chip) / 2)
    assert float(b.ttft_s) < float(a.ttft_s)  # micro-batches fill the pipeline
    # Decode: 2 micro-batches of 4 in flight; a token of each crosses both stages, so a step is
    # the pass of a batch of 4 over all layers (plus the stage hop).
    c = run("llama-3-70b", "a100-sxm4-80gb", tp=2, pp=1, batch=4, prompt_tokens=1024, output_tokens=16)
    assert float(c.tpot_s) <= float(b.tpot_s) <= 1.02 * float(c.tpot_s)


def test_tco_hand_derivation():
    # $ per 1M tokens = (capex / lifetime + P·PUE·price) · t / tokens · 1e6.
    m = run("llama-3-8b", "h100-sxm5-80gb", tp=1, batch=16, prompt_tokens=512, output_tokens=512)
    e = default_economics()
    capex_rate = 30000 / (4 * 365.25 * 86400)
    energy_rate = float(m.average_power_w) * 1.3 * 0.10 / 3.6e6
    expected = (capex_rate + energy_rate) * float(m.latency_s) / (16 * 512) * 1e6
    assert float(m.usd_per_mtok) == pytest.approx(expected, rel=1e-9)
    assert float(m.tokens_per_kwh) == pytest.approx(3.6e6 / float(m.j_per_token))
    assert float(e.pue) == 1.3
    # Operational carbon: the tokens' energy through the facility from the world-average grid
    # (Ember: 436 gCO2e/kWh), and none from a carbon-free one.
    grams = float(m.energy_j) / (16 * 512) * 1e6 * 1.3 / 3.6e6 * 436.0
    assert float(m.gco2_per_mtok) == pytest.approx(grams, rel=1e-12)
    c = config("llama-3-8b", "h100-sxm5-80gb", tp=1, batch=16, prompt_tokens=512, output_tokens=512)
    clean = dataclasses.replace(c.economics, grid_gco2_per_kwh=f(0.0))
    zero = serve(c.model, c.chip, c.platform, c.scenario, clean, achievable_software())
    assert float(zero.gco2_per_mtok) == 0.0 and float(zero.usd_per_mtok) == float(m.usd_per_mtok)


def test_levels_are_ordered_ideal_fastest():
    ds = dse.evaluate("llama-3-8b", "a100-sxm4-80gb", batch=[1, 64], prompt_tokens=1024, output_tokens=64)
    t = ds.latency_s
    assert bool((t.sel(level="ideal") <= t.sel(level="achievable")).all())
    assert set(ds.level.values) == {"ideal", "achievable", "calibrated"}


def test_tp_beyond_heads_is_infeasible_not_an_error():
    m = run("llama-3-8b", "h100-sxm5-80gb", tp=64, batch=1, prompt_tokens=128, output_tokens=8)
    assert not bool(m.feasible) and int(m.infeasible_reason) == 2


def test_decode_bound_switches_with_batch_on_a100():
    # Seed decode table: memory-bound up to B = 128 on an A100, balanced at 256.
    lo = run("llama-3-70b", "a100-sxm4-80gb", tp=8, batch=1, prompt_tokens=1, output_tokens=2)
    assert int(lo.decode_bound) in (1, 2)  # memory (or network at TP 8), never compute
    assert float(lo.decode_arithmetic_intensity_flop_per_byte) == pytest.approx(1.0, abs=0.1)
    hi = run("llama-3-70b", "a100-sxm4-80gb", tp=1, batch=512, prompt_tokens=1, output_tokens=2)
    assert float(hi.decode_arithmetic_intensity_flop_per_byte) > 150  # past the A100 ridge (153)


def test_evaluate_dataset_units_and_dims():
    ds = dse.evaluate(
        "llama-3-70b", "h100-sxm5-80gb", tp=8, batch=[1, 8, 32, 128], prompt_tokens=2048, output_tokens=256
    )
    assert ds.tpot_s.dims == ("level", "batch")
    assert ds.tpot_s.attrs["units"] == "s"
    assert ds.usd_per_mtok.attrs["units"] == "USD/1M token"
    assert "flag_meanings" in ds.bound.attrs
    assert ds.feasible.dtype == bool
    b = ds.sel(level="calibrated")
    assert np.all(np.diff(b.tpot_s.values) >= 0)
    # The per-user decode rate is the inverse of TPOT, in its declared unit.
    np.testing.assert_allclose(b.tokens_per_s_per_user.values * b.tpot_s.values, 1.0, rtol=1e-12)
    assert ds.tokens_per_s_per_user.attrs["units"] == "token/s"


def test_evaluate_hardware_knob_grid():
    ds = dse.evaluate(
        "llama-3-8b",
        "a100-sxm4-80gb",
        batch=1,
        prompt_tokens=512,
        output_tokens=128,
        hbm_bandwidth_bytes_per_s=[1e12, 2e12, 4e12],
    )
    t = ds.tpot_s.sel(level="ideal").values
    assert t[0] > t[1] > t[2]
    assert ds.hbm_bandwidth_bytes_per_s.attrs["units"] == "B/s"


def test_evaluate_rejects_unknown_knob():
    with pytest.raises(dse.SpecError, match="did you mean 'hbm_bandwidth_bytes_per_s'"):
        dse.evaluate("llama-3-8b", "a100-sxm4-80gb", hbm_bandwith_bytes_per_s=[1e12, 2e12])


def test_moe_decode_reads_fewer_experts_at_small_batch():
    one = run("mixtral-8x7b", "h100-sxm5-80gb", tp=2, batch=1, prompt_tokens=128, output_tokens=32)
    big = run("mixtral-8x7b", "h100-sxm5-80gb", tp=2, batch=64, prompt_tokens=128, output_tokens=32)
    assert float(one.tpot_s) < float(big.tpot_s)
    # Same model with every expert read at batch 1 (top_k = E) is slower to decode.
    c = config("mixtral-8x7b", "h100-sxm5-80gb", tp=2, batch=1, prompt_tokens=128, output_tokens=32)
    all_experts = dataclasses.replace(c.model, top_k=f(8))
    m = serve(all_experts, c.chip, c.platform, c.scenario, c.economics, achievable_software())
    assert float(m.tpot_s) > float(one.tpot_s)


def test_pipeline_decode_keeps_a_micro_batch_per_stage():
    # Decode with pp stages keeps min(pp, B) micro-batches in flight. With m = pp a round
    # (every sequence one token) is one pass of a micro-batch of B/pp over all layers, so
    # TP 4 x PP 2 at batch 128 does per chip what TP 4 x PP 1 does at batch 64 (less the
    # stage hop): the issue asks for at least 0.8x.
    pp1 = run("llama-3-70b", "a100-sxm4-80gb", tp=4, pp=1, batch=64, prompt_tokens=2048, output_tokens=256)
    pp2 = run("llama-3-70b", "a100-sxm4-80gb", tp=4, pp=2, batch=128, prompt_tokens=2048, output_tokens=256)
    ratio = float(pp2.decode_tokens_per_s_per_chip) / float(pp1.decode_tokens_per_s_per_chip)
    assert 0.8 <= ratio <= 1.0
    assert float(pp2.tpot_s) == pytest.approx(float(pp1.tpot_s), rel=0.02)  # same pass, plus one hop
    # B < pp: each sequence is its own micro-batch; a round is pp stage-times of one
    # sequence, i.e. the batch-1 pass (plus the hops), whatever B is.
    one = run("llama-3-8b", "h100-sxm5-80gb", pp=4, batch=1, prompt_tokens=512, output_tokens=64)
    three = run("llama-3-8b", "h100-sxm5-80gb", pp=4, batch=3, prompt_tokens=512, output_tokens=64)
    assert float(three.tpot_s) == pytest.approx(float(one.tpot_s), rel=1e-6)
    assert float(three.decode_tokens_per_s_per_chip) == pytest.approx(3 * float(one.decode_tokens_per_s_per_chip))


def test_a_cached_prefix_is_neither_prefilled_again_nor_held_per_sequence():
    """Prefix caching, by hand: a prompt of S tokens whose first S/2 are cached prefills only the
    second half, with the first half as context: exactly the work of the whole prompt less
    that of the prefix alone (linear layers: half; causal attention: the pairs not both in
    the prefix), to 0.1 % (the per-pass elementwise terms). The prefix's KV is held once."""
    model, hw = dse.load_model("llama-3-8b"), dse.load_hardware("h100-sxm5-80gb")
    sw = dse.engine.software_levels(hw, ["ideal"])
    cfg = dse.engine.make_config(model, hw, prompt_tokens=2048, output_tokens=128)
    knobs = {
        "prompt_tokens": np.array([2048.0, 1024.0, 2048.0, 2048.0, 2048.0]),
        "prefix_tokens": np.array([0.0, 0.0, 1024.0, 0.0, 1024.0]),
        "batch": np.array([1.0, 1.0, 1.0, 8.0, 8.0]),
    }
    r = {k: v[0] for k, v in dse.engine.run_designs(cfg, knobs, sw).items()}
    whole, prefix, cached = r["prefill_flops"][:3]
    assert cached == pytest.approx(whole - prefix, rel=1e-3)
    assert cached < 0.52 * whole
    assert r["ttft_s"][2] < 0.55 * r["ttft_s"][0]
    # KV: per sequence the uncached prompt and the output; the prefix once per replica.
    per_token = r["kv_bytes_per_chip"][3] / (8 * (2048 + 128))
    assert r["kv_bytes_per_chip"][4] == pytest.approx(per_token * (8 * (1024 + 128) + 1024), rel=1e-9)
    assert r["kv_bytes_per_chip"][2] == pytest.approx(r["kv_bytes_per_chip"][0], rel=1e-9)  # one sequence


def test_the_draft_model_is_held_beside_the_target():
    """Speculative decoding holds the draft's weights and KV cache too (GenZ §IV-B): with
    Llama-3-8B drafting for Llama-3-70B, by the models' own parameter and KV-per-token ratios."""
    from models.workloads import kv_bytes_per_token, total_params

    target, draft = dse.load_model("llama-3-70b"), dse.load_model("llama-3-8b")
    w_share = float(total_params(draft.spec) / total_params(target.spec))
    kv_share = float(kv_bytes_per_token(draft.spec) / kv_bytes_per_token(target.spec))
    assert 0.1 < w_share < 0.13 and kv_share == pytest.approx(32 / 80)  # 8B: 32 layers, 70B: 80 (both 8 KV heads)
    hw = dse.load_hardware("h100-sxm5-80gb")
    cfg = dse.engine.make_config(target, hw, tp=2, batch=8, batching="continuous")
    knobs = {"draft_tokens": np.array([0.0, 4.0]), "acceptance": np.array([0.7, 0.7]),
             "draft_weight_share": np.full(2, w_share), "draft_kv_share": np.full(2, kv_share)}  # fmt: skip
    r = {k: v[0] for k, v in dse.engine.run_designs(cfg, knobs, dse.engine.software_levels(hw, ["ideal"])).items()}
    assert r["weight_bytes_per_chip"][1] == pytest.approx(r["weight_bytes_per_chip"][0] * (1 + w_share), rel=1e-12)
    assert r["kv_bytes_per_chip"][1] == pytest.approx(r["kv_bytes_per_chip"][0] * (1 + kv_share), rel=1e-12)


def test_the_operator_breakdown_sums_to_the_prefill_pass():
    """``evaluate --breakdown``: at the ideal level (no overheads) on one chip, the operators'
    times of the prompt pass add up to the static batch's TTFT, and the shares to 1."""
    from dse import analysis

    model, hw = dse.load_model("llama-3-8b"), dse.load_hardware("h100-sxm5-80gb")
    grid = dse.engine.evaluate_grid(model, hw, levels=("ideal",), batch=8, prompt_tokens=1024, output_tokens=64)
    ttft = float(grid.variables["ttft_s"][1].ravel()[0])
    rows = analysis.operator_breakdown(grid.configs[0], dse.engine.level_of(dse.engine.software_levels(hw, ["ideal"])))
    prefill = [r for r in rows if r["phase"] == "prefill"]
    assert sum(r["time_s"] for r in prefill) == pytest.approx(ttft, rel=1e-9)
    for phase in ("prefill", "decode step"):
        assert sum(r["time_share"] for r in rows if r["phase"] == phase) == pytest.approx(1.0)
        assert sum(r["energy_share"] for r in rows if r["phase"] == phase) == pytest.approx(1.0)
