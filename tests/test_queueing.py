"""Requests at a rate: the exact simulation by hand, the analytic model's limits, and the two
against each other; the rate through the engine (low-rate limit, saturation)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from dse.engine import make_config, run_designs, simulate_requests, software_levels
from dse.specs import load_hardware, load_model
from models import Infeasible, ServiceCurve, open_queue, simulate
from models._queueing import mg1_wait_quantile, pass_chain, slot_wait


def curve(**kw) -> dict[str, np.ndarray]:
    base = dict(step_s=0.01, step_per_seq_s=0.0, pass_s=0.005, token_s=1e-4, slots=4.0, chunk_tokens=0.0,
                kv_tokens=1e9, accepted=1.0)  # fmt: skip
    return {k: np.atleast_1d(float(v)) for k, v in (base | kw).items()}


def simulate_one(c, arrival, prompt, output):
    out = simulate_requests(c, *(np.atleast_2d(np.asarray(x, float)) for x in (arrival, prompt, output)))
    return {k: v[0] for k, v in out.items()}


def test_simulation_by_hand():
    # Alone: a prefill pass (5 ms + 100 tokens x 0.1 ms), then 10 decode iterations of 10 ms.
    one = simulate_one(curve(), [0.0], [100], [11])
    assert one["ttft_s"][0] == pytest.approx(0.015)
    assert one["tpot_s"][0] == pytest.approx(0.01)
    assert one["latency_s"][0] == pytest.approx(0.115)
    # One slot: the second request waits for the first to finish, then runs the same way.
    two = simulate_one(curve(slots=1.0), [0.0, 0.0], [100, 100], [11, 11])
    assert two["queue_s"][1] == pytest.approx(0.115)
    assert two["ttft_s"][1] == pytest.approx(0.13)
    # Two slots, both at once: one pass of both prompts (5 + 20 ms), then shared iterations
    # of 10 ms + 2 ms for the second sequence.
    both = simulate_one(curve(step_per_seq_s=0.002), [0.0, 0.0], [100, 100], [11, 11])
    assert both["ttft_s"] == pytest.approx([0.025, 0.025])
    assert both["tpot_s"] == pytest.approx([0.012, 0.012])
    # Chunked: 1,000 prompt tokens in chunks of 256 ride along four iterations (no pass time).
    chunked = simulate_one(curve(chunk_tokens=256.0), [0.0], [1000], [3])
    assert chunked["ttft_s"][0] == pytest.approx(4 * 0.01 + 1000 * 1e-4)
    # The analytic model at a rate near 0 takes the same ⌈1000/256⌉ = 4 iterations.
    c = ServiceCurve(**{k: jnp.asarray(v[0]) for k, v in curve(chunk_tokens=256.0).items()})
    alone = open_queue(c, jnp.asarray(1e-6), jnp.asarray(1000.0), jnp.asarray(0.0), jnp.asarray(3.0))
    assert float(alone.ttft_s) == pytest.approx(4 * 0.01 + 1000 * 1e-4, rel=1e-4)
    # An arrival during an iteration waits for its end: the first decodes from 15 ms in
    # steps of 10 ms; the second, at 20 ms, is admitted at 25 ms.
    mid = simulate_one(curve(), [0.0, 0.020], [100, 100], [11, 11])
    assert mid["queue_s"][1] == pytest.approx(0.005)
    assert mid["ttft_s"][1] == pytest.approx(0.005 + 0.015)
    # The KV cache holds one request at a time: the second waits though a slot is free.
    kv = simulate_one(curve(kv_tokens=150.0), [0.0, 0.0], [100, 100], [11, 11])
    assert kv["queue_s"][1] == pytest.approx(0.115)


def test_on_demand_kv_admission_preempts_the_latest_and_recomputes_it():
    # 215 KV tokens: reserving 111 a request, the second waits for the first (TTFT 130 ms).
    # On demand both prompts (100 + one token each) fit: one pass (5 + 20 ms), then 7
    # iterations until 214 tokens are held; the 8th token of both does not fit, so the
    # second is preempted at 95 ms. The first finishes its 3 left at 125 ms; the second is
    # admitted again, prefills 100 + 8 tokens (15.8 ms: the pass yields its 9th token) and
    # decodes its last 2: done at 160.8 ms, TPOT (160.8 - 25)/10 ms.
    arrival, prompt, output = (np.array([[0.0, 0.0]]), np.array([[100.0, 100.0]]), np.array([[11.0, 11.0]]))
    reserved = simulate_requests(curve(kv_tokens=215.0), arrival, prompt, output)
    assert reserved["ttft_s"][0] == pytest.approx([0.015, 0.13]) and not reserved["preemptions"].any()
    on_demand = simulate_requests(curve(kv_tokens=215.0), arrival, prompt, output, reserve=False)
    assert on_demand["ttft_s"][0] == pytest.approx([0.025, 0.025])
    assert on_demand["latency_s"][0] == pytest.approx([0.125, 0.1608])
    assert on_demand["tpot_s"][0] == pytest.approx([0.01, 0.01358])
    assert list(on_demand["preemptions"][0]) == [0.0, 1.0]
    # A cache that holds both whole requests: on demand is the same schedule, nothing preempted.
    roomy = [simulate_requests(curve(kv_tokens=400.0), arrival, prompt, output, reserve=r) for r in (True, False)]
    assert all(np.array_equal(roomy[0][k], roomy[1][k]) for k in roomy[0])


def test_a_window_of_requests_is_the_whole_trace_or_says_it_is_not():
    # Continuous and chunked, mixed prompts: finishing in arrival order, a window of 8 (twice
    # the slots) sees what all 300 would; very mixed outputs finish out of order and overflow
    # it (NaN, never a wrong number). simulate_requests reruns such traces over the whole trace.
    rng = np.random.default_rng(1)
    arrival = np.cumsum(rng.exponential(0.012, 300))
    prompt = np.round(rng.lognormal(5.0, 0.7, 300)) + 1
    for fixed, c in ((True, curve(step_per_seq_s=0.002)), (True, curve(chunk_tokens=64.0)), (False, curve())):
        output = np.full(300, 12.0) if fixed else rng.choice([2.0, 400.0], 300)
        c = ServiceCurve(**{k: jnp.asarray(v[0]) for k, v in c.items()})
        full, windowed = (
            simulate(c, jnp.asarray(arrival), jnp.asarray(prompt), jnp.asarray(output), w) for w in (None, 8)
        )
        if fixed:
            assert np.array_equal(np.asarray(windowed.ttft_s), np.asarray(full.ttft_s))
            assert np.array_equal(np.asarray(windowed.latency_s), np.asarray(full.latency_s))
        else:
            assert np.isnan(np.asarray(windowed.ttft_s)).all()
            c_dict = {k: np.atleast_1d(float(v)) for k, v in c._asdict().items()}
            again = simulate_one(c_dict, arrival, prompt, output)["ttft_s"]  # float64 there
            np.testing.assert_allclose(again, np.asarray(full.ttft_s), rtol=1e-4)


def test_erlang_c_and_pollaczek_khinchine_by_hand():
    # Erlang C: one server waits with probability rho; two servers at rho 1/2 with 1/3.
    p1, m1 = slot_wait(jnp.asarray(0.7), jnp.asarray(1.0), jnp.asarray(2.0), jnp.asarray(1.0))
    assert float(p1) == pytest.approx(0.7) and float(m1) == pytest.approx(2.0 / 0.3)  # M/M/1: service/(1 − ρ)
    p2, _ = slot_wait(jnp.asarray(0.5), jnp.asarray(2.0), jnp.asarray(1.0), jnp.asarray(0.0))
    assert float(p2) == pytest.approx(1.0 / 3.0)
    # Chunked prefill with a chunk the size of the prompt, no decode work, many slots: the
    # prompts queue as M/D/1 (x = step + S·token per prompt): mean wait ρ·x / (2(1 − ρ)).
    c = ServiceCurve(*(jnp.asarray(v) for v in (0.01, 0.0, 0.0, 1e-4, 1e6, 500.0, 1e12, 1.0)))
    x = 0.01 + 500 * 1e-4
    q = open_queue(c, jnp.asarray(0.6 / x), jnp.asarray(500.0), jnp.asarray(0.0), jnp.asarray(1.0))
    assert float(q.queue_s) == pytest.approx(0.6 * x / (2 * 0.4), rel=1e-6)


def test_the_wait_behind_other_prompts_chunks_is_erlangs_m_d_1(float64):
    # Erlang's exact M/D/1 (service 1, λ = ρ): P(W ≤ t) = (1 − ρ) Σ_{k ≤ t} (λ(k − t))^k/k! e^{−λ(k − t)}.
    t = np.linspace(0.0, 30.0, 30_001)
    for rho in (0.05, 0.2, 0.5, 0.8):
        cdf = (1 - rho) * sum(
            np.where(t >= k, (rho * (k - t)) ** k / math.factorial(k) * np.exp(-rho * (k - t)), 0.0) for k in range(31)
        )
        exact = [t[np.argmax(cdf >= p / 100)] for p in (50, 90, 99)]
        model = mg1_wait_quantile(jnp.asarray(rho), jnp.asarray(1.0), jnp.asarray(0.0), jnp.asarray([50.0, 90.0, 99.0]))
        assert np.asarray(model) == pytest.approx(exact, rel=0.09, abs=1e-3)


def test_the_chain_of_prefill_passes_by_hand_and_drawn(float64):
    pcts = jnp.asarray([50.0, 90.0, 99.0])
    # No arrivals: only decode steps, the rest of one uniform.
    mean, pct = pass_chain(
        jnp.asarray(0.0), jnp.asarray(0.01), jnp.asarray(0.005), jnp.asarray(0.02), jnp.asarray(1.0), pcts
    )
    assert float(mean) == pytest.approx(0.005) and np.asarray(pct) == pytest.approx([0.005, 0.009, 0.0099], rel=1e-3)
    # Prefill a third of the time: the intervals drawn one after another (a pass holds the
    # prompts that arrived during the interval before it), requests at Poisson times; each
    # waits the rest of its interval and the prefill of the others that arrived during it.
    lam, step, stall, a = 12.0, 0.01, 0.005, 0.03
    rng = np.random.default_rng(0)
    length, waits = step, []
    for _ in range(100_000):
        n = rng.poisson(lam * length)
        waits.append(length * rng.uniform(size=n) + a * (n - 1))
        length = step if n == 0 else stall + a * n
    waits = np.concatenate(waits)
    mean, pct = pass_chain(
        jnp.asarray(lam), jnp.asarray(step), jnp.asarray(stall), jnp.asarray(a), jnp.asarray(1.0), pcts
    )
    assert float(mean) == pytest.approx(waits.mean(), rel=0.02)
    assert np.asarray(pct) == pytest.approx(np.percentile(waits, [50, 90, 99]), rel=0.03)


@pytest.fixture(scope="module")
def llama_8b():
    model, hw = load_model("llama-3-8b"), load_hardware("h100-sxm5-80gb")
    return model, hw, software_levels(hw, ["calibrated"])


def _run(llama, mode, **knobs):
    model, hw, sw = llama
    cfg = make_config(model, hw, batching=mode, prompt_tokens=1024, output_tokens=128)
    n = max(np.size(v) for v in knobs.values())
    res = run_designs(cfg, {k: np.broadcast_to(np.asarray(v, float), (n,)) for k, v in knobs.items()}, sw)
    return {k: v[-1] for k, v in res.items()}


def test_a_low_rate_is_one_request_alone_and_the_tail_grows_without_bound_near_saturation(llama_8b):
    alone = _run(llama_8b, "static", batch=1.0)
    first = _run(llama_8b, "continuous", batch=32.0, rate_rps=[1e-4, 0.0])
    low = {k: v[:1] for k, v in first.items()}
    # A request alone: its own prefill pass and decode steps of one sequence (the static
    # batch of one averages its steps over the growing context; the service curve takes the mean).
    assert low["ttft_s"][0] == pytest.approx(alone["ttft_s"][0], rel=0.01)
    assert low["tpot_s"][0] == pytest.approx(alone["tpot_s"][0], rel=0.02)
    assert low["queue_delay_s"][0] < 1e-6 and low["running_sequences"][0] < 0.01
    # Without a rate, the closed steady state: its throughput is the saturation rate's.
    sat = float(first["saturation_rate_rps"][1])
    assert sat * 128 == pytest.approx(first["throughput_tokens_per_s"][1], rel=0.05)
    loads = np.array([0.2, 0.5, 0.8, 0.95, 0.99, 1.0, 1.5])
    res = _run(llama_8b, "continuous", batch=32.0, rate_rps=loads * sat)
    p99, ok = res["p99_ttft_s"], res["feasible"].astype(bool)
    assert np.all(np.diff(p99[:5]) > 0) and p99[4] > 10 * p99[1]
    assert ok[:5].all() and not ok[5:].any()
    assert (res["infeasible_reason"][5:] == Infeasible.SATURATED).all() and np.isinf(p99[5:]).all()
    # What is served is what arrives (at most the saturation rate); cost per token falls with load.
    assert res["requests_per_s"][:5] == pytest.approx(loads[:5] * sat, rel=1e-6)
    assert np.all(np.diff(res["usd_per_mtok"][:5]) < 0)
    # The percentiles are ordered.
    for m in ("ttft", "tpot", "latency"):
        assert np.all(res[f"p50_{m}_s"][:5] <= res[f"p90_{m}_s"][:5] + 1e-12)
        assert np.all(res[f"p90_{m}_s"][:5] <= res[f"p99_{m}_s"][:5] + 1e-12)


def test_evaluate_draws_tail_latency_against_the_rate(tmp_path, capsys):
    from dse.cli import main

    argv = ["evaluate", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--batching", "continuous",
            "--batch", "32", "--prompt-tokens", "1024", "--output-tokens", "128"]  # fmt: skip
    assert main([*argv, "--rate", "2,4,8", "--plot", str(tmp_path / "charts")]) == 0
    out = capsys.readouterr().out
    assert "p99 TTFT ms" in out and "sat req/s" in out
    assert (tmp_path / "charts" / "latency_vs_rate.png").stat().st_size > 0
    assert (tmp_path / "charts" / "latency_vs_rate.svg").read_text().count("<svg") == 1
    assert main([*argv, "--plot", str(tmp_path / "none")]) == 2  # no rate axis: a one-line refusal
    assert "--plot: expected --rate" in capsys.readouterr().err
