"""Serving dynamics (models.serve): continuous batching, chunked prefill, disaggregated pools,
speculative decoding, beam search and a KV offload tier, against hand derivations.

Single configurations are served eagerly (``helpers.serve_eager``); one test goes through
``dse.evaluate`` and the curve-study runner."""

from __future__ import annotations

import pytest
from helpers import f, serve_eager

import dse
from dse.specs import SpecError
from models._serve import expected_accepted_tokens

# Model functions called directly, outside the engine: in float64, as the engine calls them.
pytestmark = pytest.mark.usefixtures("float64")

L70 = dict(model="llama-3-70b", hardware="h100-sxm5-80gb", tp=8, prompt_tokens=2048, output_tokens=256)


def run(**kw):
    return serve_eager(**(L70 | kw))


def test_expected_accepted_tokens():
    # Leviathan et al. 2023, Eq. 1: (1 − α^{γ+1}) / (1 − α). α = 0.7, γ = 4: (1 − 0.16807)/0.3.
    assert float(expected_accepted_tokens(f(0.7), f(4))) == pytest.approx(0.83193 / 0.3, rel=1e-9)
    assert float(expected_accepted_tokens(f(1.0), f(4))) == 5.0  # every draft accepted
    assert float(expected_accepted_tokens(f(0.7), f(0))) == 1.0  # no drafting


def test_speculative_decoding_divides_tpot_by_the_accepted_tokens():
    # Level 'achievable': no framework time per pass, so a draft step is c of a verify pass.
    spec_kw = dict(batch=1, acceptance=0.7, draft_cost_ratio=0.1)
    base = run(level="achievable", batch=1).tpot_s
    assert run(level="achievable", draft_tokens=0.0, **spec_kw).tpot_s == pytest.approx(base, rel=1e-12)
    spec = run(level="achievable", draft_tokens=4.0, **spec_kw).tpot_s
    # At batch 1 a verify pass of 5 tokens costs about a decode step (weight-bound), the four
    # draft steps 0.4 of one: TPOT ≈ 1.4 / 2.773 = 0.50 of the baseline (a little more: the
    # verify pass reads 5 tokens' activations and KV).
    assert 0.50 <= spec / base <= 0.56
    assert run(level="achievable", draft_tokens=4.0, **(spec_kw | {"acceptance": 0.9})).tpot_s < spec
    # Calibrated, every draft step also pays the framework's fixed time per pass (vLLM's
    # scheduler and sampler do not shrink with the draft model): less gain.
    cal = run(draft_tokens=4.0, **spec_kw).tpot_s / run(batch=1).tpot_s
    assert spec / base < cal < 1.0


def test_continuous_batching_in_steady_state():
    cont = run(batch=64, batching="continuous")
    static = run(batch=64)
    # 64 running sequences emit 64 tokens per round; a round is a decode pass plus the
    # prefill of the 64·2048/256 = 512 prompt tokens that enter: throughput = 64 / TPOT.
    assert cont.throughput_tokens_per_s == pytest.approx(64 / cont.tpot_s, rel=1e-9)
    assert cont.tpot_s > static.tpot_s  # prefills stall the decode
    assert cont.ttft_s < static.ttft_s / 10  # no waiting for a whole batch's prompts
    assert cont.latency_s == pytest.approx(cont.ttft_s + 256 * cont.tpot_s, rel=1e-12)


def test_chunked_prefill_rides_along_and_caps_the_running_sequences():
    cont = run(batch=64, batching="continuous")
    ch = {c: run(batch=64, batching="chunked", chunk_tokens=c) for c in (256.0, 512.0)}
    # A budget of 512 tokens per round feeds 64 sequences (64·2048/256 = 512): merged into the
    # decode pass, the weights are read once: faster rounds than decode + a prefill pass.
    assert ch[512.0].tpot_s < cont.tpot_s
    # 256 tokens per round sustain only 256·256/2048 = 32 running sequences: lower throughput,
    # and a prompt needs 2048/256 = 8 rounds of a full chunk before its first token.
    t256 = ch[256.0]
    assert t256.throughput_tokens_per_s == pytest.approx(32 / t256.tpot_s, rel=1e-9)
    assert 8.5 * t256.tpot_s <= t256.ttft_s <= 8.5 * t256.tpot_s * 1.2
    assert t256.throughput_tokens_per_s < ch[512.0].throughput_tokens_per_s


def test_disaggregated_pools():
    kw = dict(batch=64, dp=4, platform="dgx-h100", batching="disaggregated")
    one = run(prefill_share=0.25, **kw)
    # TPOT is a pure decode round of 64/4 = 16 sequences at the mean context 2048 + 128: the
    # static decode of 16 sequences (context 2048 to 2303) is within a few percent.
    static = run(batch=16, platform="dgx-h100")
    assert one.tpot_s == pytest.approx(static.tpot_s, rel=0.05)
    # One prefill replica of four is the bottleneck: 256 output tokens per prefilled request.
    assert one.throughput_tokens_per_s == pytest.approx(256 / one.ttft_s, rel=0.1)
    # Two decode replicas of 16 sequences are the bottleneck of a 2:2 split: 32 / TPOT.
    two = run(prefill_share=0.5, **kw)
    assert two.throughput_tokens_per_s == pytest.approx(32 / two.tpot_s, rel=1e-9)


def test_beam_search_shares_the_prompt_kv_cache():
    kw = dict(model="llama-3-8b", hardware="a100-sxm4-80gb", tp=1, batch=8, prompt_tokens=2048, output_tokens=512)
    one, four = serve_eager(beam=1.0, **kw), serve_eager(beam=4.0, **kw)
    # KV tokens: 8·(2048 + 512) with one beam, 8·(2048 + 4·512) with four.
    assert four.kv_bytes_per_chip / one.kv_bytes_per_chip == pytest.approx((2048 + 4 * 512) / (2048 + 512), rel=1e-9)
    assert four.tpot_s > one.tpot_s


def test_kv_offload_makes_a_long_context_fit_at_the_host_link_speed():
    kw = dict(model="llama-3-8b", hardware="a100-sxm4-80gb", level="achievable", tp=1, batch=256)
    kw |= dict(prompt_tokens=2048, output_tokens=2048)
    assert not serve_eager(**kw).feasible
    off = serve_eager(kv_offload_bytes=500e9, **kw)
    assert off.feasible and off.memory_per_chip_bytes <= 80e9
    fast = serve_eager(kv_offload_bytes=500e9, host_bandwidth_bytes_per_s=450e9, **kw)
    assert fast.tpot_s < off.tpot_s  # more host bandwidth, lower TPOT
    # The prompt pass writes the host's share of its KV once over the link (not the
    # attention's reads of it): 256 prompts of 2,048 tokens at 128 KiB a token (32 layers x
    # 8 KV heads x 128 x K and V x 2 bytes); the host holds what the chip does not of
    # 256 x 4,096 tokens.
    slow = serve_eager(kv_offload_bytes=500e9, host_bandwidth_bytes_per_s=63e9, **kw)
    total = 256 * 4096 * 131072
    share = 1.0 - off.kv_bytes_per_chip / total
    written = share * 256 * 2048 * 131072
    assert slow.ttft_s - fast.ttft_s == pytest.approx(written * (1 / 63e9 - 1 / 450e9), rel=1e-9)
    # Attention on the host (GenZ Fig. 19, system C; an 8 TFLOP/s CPU): Llama-3-8B's GQA
    # attention does 4 FLOP per KV byte in bf16 (4 query heads per KV head, 2 FLOP each for the
    # score and the value), 2 TFLOP/s at 307 GB/s: memory-bound on the host, so the offloaded
    # share costs 1/307 GB/s per byte instead of 1/63 over PCIe. Doubling the host's memory
    # bandwidth halves that part, which gives the step without it.
    host = [serve_eager(kv_offload_bytes=500e9, host_flops_per_s=8e12, host_memory_bandwidth_bytes_per_s=bw, **kw)
            for bw in (307e9, 614e9)]  # fmt: skip
    on_host = 2.0 * (host[0].tpot_s - host[1].tpot_s)
    base = host[0].tpot_s - on_host
    assert (off.tpot_s - base) / on_host == pytest.approx(307 / 63, rel=1e-6)
    # A host too slow to compute it leaves the KV streaming over the link.
    assert serve_eager(kv_offload_bytes=500e9, host_flops_per_s=1e9, **kw).tpot_s == pytest.approx(
        off.tpot_s, rel=1e-12
    )


def test_goodput_counts_the_requests_within_the_slos():
    from math import erf, log, sqrt

    kw = dict(batch=32, batching="continuous")
    base = run(**kw)
    ttft, tpot = float(base.ttft_s), float(base.tpot_s)
    assert float(base.slo_attainment) == 1.0 and float(base.goodput_tokens_per_s) == float(base.throughput_tokens_per_s)
    # Same prompt length for all: every request meets an SLO above the mean and none one below.
    assert float(run(**kw, slo_ttft_s=1.1 * ttft, slo_tpot_s=1.1 * tpot).slo_attainment) > 0.999
    assert float(run(**kw, slo_ttft_s=0.9 * ttft).goodput_tokens_per_s) < 1e-6
    assert float(run(**kw, slo_tpot_s=0.9 * tpot).slo_attainment) < 1e-6
    # Log-normal prompts (CV 1): TTFT = half a round's wait (a round is one TPOT here: no
    # drafting) + the request's own prefill, which scales with its length X (mean 1), so
    # P(TTFT ≤ T) = P(X ≤ (T − wait)/prefill) = Φ((ln x + σ²/2)/σ), σ² = ln 2.
    limit, wait = 1.5 * ttft, 0.5 * tpot
    x, sigma = (limit - wait) / (ttft - wait), sqrt(log(2.0))
    expected = 0.5 * (1.0 + erf((log(x) + sigma**2 / 2.0) / sigma / sqrt(2.0)))
    spread = run(**kw, slo_ttft_s=limit, prompt_tokens_cv=1.0)
    assert float(spread.slo_attainment) == pytest.approx(expected, rel=1e-9)
    assert float(spread.goodput_tokens_per_s) == pytest.approx(expected * float(base.throughput_tokens_per_s))
    assert float(spread.throughput_tokens_per_s) == float(base.throughput_tokens_per_s)  # the mix's means serve alike


def test_serving_input_errors_are_one_line():
    ev = dict(levels=["calibrated"], batch=8)
    with pytest.raises(SpecError, match="at most the prompt"):
        dse.evaluate("llama-3-70b", "h100-sxm5-80gb", prompt_tokens=512, batching="chunked", chunk_tokens=1024.0, **ev)
    with pytest.raises(SpecError, match="needs 'chunk_tokens'"):
        dse.evaluate("llama-3-70b", "h100-sxm5-80gb", batching="chunked", **ev)
    with pytest.raises(SpecError, match="dp >= 2"):
        dse.evaluate("llama-3-70b", "h100-sxm5-80gb", batching="disaggregated", prefill_share=0.5, **ev)
    with pytest.raises(SpecError, match="expected 0 to 1"):
        dse.evaluate("llama-3-70b", "h100-sxm5-80gb", draft_tokens=2.0, acceptance=[0.5, 1.5], **ev)


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
    kw = dict(tp=2, batch=16, prompt_tokens=1024, output_tokens=64, batching="chunked")
    direct = [serve_eager("llama-3-8b", "a100-sxm4-80gb", chunk_tokens=c, **kw).tpot_s for c in (256.0, 512.0)]
    assert ds.tpot_s.sel(variant="tp=2").values.ravel() == pytest.approx(direct, rel=1e-9)
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("metrics: [tpot_s, ttft_s]", "metrics: [tpot]"))
    with pytest.raises(SpecError, match="unknown metric 'tpot'"):
        run_curve_study(bad, tmp_path, quiet=True)
