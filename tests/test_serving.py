"""Serving dynamics (models.serve): continuous batching, chunked prefill, disaggregated pools,
speculative decoding, beam search and a KV offload tier, against hand derivations."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import f

import dse
from dse.specs import SpecError
from models._serve import expected_accepted_tokens


def run(model="llama-3-70b", hw="h100-sxm5-80gb", level="calibrated", **kw):
    return dse.evaluate(model, hw, levels=[level], **kw).isel(level=0)


def test_expected_accepted_tokens():
    # Leviathan et al. 2023, Eq. 1: (1 − α^{γ+1}) / (1 − α). α = 0.7, γ = 4: (1 − 0.16807)/0.3.
    assert float(expected_accepted_tokens(f(0.7), f(4))) == pytest.approx(0.83193 / 0.3, rel=1e-9)
    assert float(expected_accepted_tokens(f(1.0), f(4))) == 5.0  # every draft accepted
    assert float(expected_accepted_tokens(f(0.7), f(0))) == 1.0  # no drafting


def test_speculative_decoding_divides_tpot_by_the_accepted_tokens():
    kw = dict(tp=8, batch=1, prompt_tokens=2048, output_tokens=256, acceptance=0.7, draft_cost_ratio=0.1)
    # Level 'achievable': no framework time per pass, so a draft step is c of a verify pass.
    ds = run(level="achievable", draft_tokens=[0.0, 4.0], **kw)
    base, spec = ds.tpot_s.values
    plain = run(level="achievable", tp=8, batch=1, prompt_tokens=2048, output_tokens=256).tpot_s
    assert float(plain) == pytest.approx(base, rel=1e-12)
    # At batch 1 a verify pass of 5 tokens costs about a decode step (weight-bound), the four
    # draft steps 0.4 of one: TPOT ≈ 1.4 / 2.773 = 0.50 of the baseline (a little more: the
    # verify pass reads 5 tokens' activations and KV).
    assert 0.50 <= spec / base <= 0.56
    higher = run(level="achievable", draft_tokens=4.0, **(kw | {"acceptance": 0.9})).tpot_s.item()
    assert higher < spec
    # Calibrated, every draft step also pays the framework's fixed time per pass (vLLM's
    # scheduler and sampler do not shrink with the draft model): less gain.
    cal = run(draft_tokens=[0.0, 4.0], **kw).tpot_s.values
    assert spec / base < cal[1] / cal[0] < 1.0


def test_continuous_batching_in_steady_state():
    kw = dict(tp=8, batch=64, prompt_tokens=2048, output_tokens=256)
    cont = run(batching="continuous", **kw)
    static = run(**kw)
    # 64 running sequences emit 64 tokens per round; a round is a decode pass plus the
    # prefill of the 64·2048/256 = 512 prompt tokens that enter: throughput = 64 / TPOT.
    assert float(cont.throughput_tokens_per_s) == pytest.approx(64 / float(cont.tpot_s), rel=1e-9)
    assert float(cont.tpot_s) > float(static.tpot_s)  # prefills stall the decode
    assert float(cont.ttft_s) < float(static.ttft_s) / 10  # no waiting for a whole batch's prompts
    assert float(cont.latency_s) == pytest.approx(float(cont.ttft_s) + 256 * float(cont.tpot_s), rel=1e-12)


def test_chunked_prefill_rides_along_and_caps_the_running_sequences():
    kw = dict(tp=8, batch=64, prompt_tokens=2048, output_tokens=256)
    cont = run(batching="continuous", **kw)
    ch = run(batching="chunked", chunk_tokens=[256.0, 512.0, 2048.0], **kw)
    # A budget of 512 tokens per round feeds 64 sequences (64·2048/256 = 512): merged into the
    # decode pass, the weights are read once: faster rounds than decode + a prefill pass.
    assert float(ch.tpot_s.sel(chunk_tokens=512)) < float(cont.tpot_s)
    # 256 tokens per round sustain only 256·256/2048 = 32 running sequences: lower throughput,
    # and a prompt needs 8 rounds before its first token (TTFT = (8 + 0.5) rounds).
    t256 = ch.sel(chunk_tokens=256)
    assert float(t256.throughput_tokens_per_s) == pytest.approx(32 / float(t256.tpot_s), rel=1e-9)
    assert float(t256.ttft_s) == pytest.approx(8.5 * float(t256.tpot_s), rel=1e-9)
    assert float(t256.throughput_tokens_per_s) < float(ch.sel(chunk_tokens=512).throughput_tokens_per_s)


def test_disaggregated_pools():
    kw = dict(tp=8, batch=64, prompt_tokens=2048, output_tokens=256, dp=4, platform="dgx-h100")
    ds = run(batching="disaggregated", prefill_share=[0.25, 0.5], **kw)
    # TPOT is a pure decode round of 64/4 = 16 sequences at the mean context 2048 + 128: the
    # static decode of 16 sequences (context 2048 to 2303) is within a few percent.
    static = run(tp=8, batch=16, prompt_tokens=2048, output_tokens=256, platform="dgx-h100")
    assert float(ds.tpot_s.isel(prefill_share=0)) == pytest.approx(float(static.tpot_s), rel=0.05)
    # One prefill replica of four is the bottleneck: throughput = 1 · 256 tokens per prefill.
    one = ds.isel(prefill_share=0)
    prefill_s = float(one.ttft_s)  # a request's prefill plus its KV transfer (small)
    assert float(one.throughput_tokens_per_s) == pytest.approx(256 / prefill_s, rel=0.1)
    # Two decode replicas of 16 sequences are the bottleneck of a 2:2 split: 32 / TPOT.
    two = ds.isel(prefill_share=1)
    assert float(two.throughput_tokens_per_s) == pytest.approx(32 / float(two.tpot_s), rel=1e-9)


def test_beam_search_shares_the_prompt_kv_cache():
    kw = dict(tp=1, batch=8, prompt_tokens=2048, output_tokens=512)
    ds = run("llama-3-8b", "a100-sxm4-80gb", beam=[1.0, 4.0], **kw)
    kv1, kv4 = ds.kv_bytes_per_chip.values
    # KV tokens: 8·(2048 + 512) with one beam, 8·(2048 + 4·512) with four.
    assert kv4 / kv1 == pytest.approx((2048 + 4 * 512) / (2048 + 512), rel=1e-9)
    assert ds.tpot_s.values[1] > ds.tpot_s.values[0]


def test_kv_offload_makes_a_long_context_fit_at_the_host_link_speed():
    kw = dict(tp=1, batch=256, prompt_tokens=2048, output_tokens=2048)
    ds = run("llama-3-8b", "a100-sxm4-80gb", "achievable", kv_offload_bytes=[0.0, 500e9], **kw)
    assert not bool(ds.feasible.isel(kv_offload_bytes=0))
    off = ds.isel(kv_offload_bytes=1)
    assert bool(off.feasible)
    assert float(off.memory_per_chip_bytes) <= 80e9
    # More host bandwidth, lower TPOT.
    fast = run(
        "llama-3-8b", "a100-sxm4-80gb", "achievable", kv_offload_bytes=500e9, host_bandwidth_bytes_per_s=450e9, **kw
    )
    assert float(fast.tpot_s) < float(off.tpot_s)


def test_serving_input_errors_are_one_line():
    with pytest.raises(SpecError, match="at most the prompt"):
        run(batch=8, prompt_tokens=512, batching="chunked", chunk_tokens=1024.0)
    with pytest.raises(SpecError, match="needs 'chunk_tokens'"):
        run(batch=8, batching="chunked")
    with pytest.raises(SpecError, match="dp >= 2"):
        run(batch=8, batching="disaggregated", prefill_share=0.5)
    with pytest.raises(SpecError, match="expected 0 to 1"):
        run(batch=8, draft_tokens=2.0, acceptance=np.asarray([0.5, 1.5]))


def test_curve_study_writes_what_evaluate_gives(tmp_path):
    from dse.analysis import run_curve_study

    spec = tmp_path / "study.yaml"
    spec.write_text(
        "study: curves\nname: mini\nmodels: [llama-3-8b]\nhardware: a100-sxm4-80gb\nbatching: chunked\n"
        "fixed: {batch: 16, prompt_tokens: 1024, output_tokens: 64}\nx: {chunk_tokens: [256, 512]}\n"
        "variants: [{tp: 1}, {tp: 2}]\nmetrics: [tpot_s, ttft_s]\n"
    )
    ds = run_curve_study(spec, tmp_path, quiet=True)
    for ext in ("txt", "zarr", "png", "svg"):
        assert (tmp_path / f"mini.{ext}").exists()
    direct = run(
        "llama-3-8b", "a100-sxm4-80gb", batching="chunked", tp=2, batch=16, prompt_tokens=1024, output_tokens=64,
        chunk_tokens=[256.0, 512.0],
    )  # fmt: skip
    assert ds.tpot_s.sel(variant="tp=2").values.ravel() == pytest.approx(direct.tpot_s.values, rel=1e-12)
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("metrics: [tpot_s, ttft_s]", "metrics: [tpot]"))
    with pytest.raises(SpecError, match="unknown metric 'tpot'"):
        run_curve_study(bad, tmp_path, quiet=True)
