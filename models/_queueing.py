"""Requests arriving at a rate: queueing, tail latency and the saturation rate of a deployment.

Two models of one scheduler, both on a deployment's *service curve* (what :func:`serve`
derives from its cost model, per replica):

* a decode iteration with ``n`` sequences running takes ``step_s + step_per_seq_s · (n − 1)``
  (interpolated between the engine's passes at 1 and at ``slots`` sequences);
* a prompt of ``s`` tokens costs ``token_s · s`` of prefill: in a pass of its own that stalls
  decode and costs ``pass_s`` more (``chunk_tokens = 0``: vLLM's default continuous batching;
  Orca, Yu et al. OSDI 2022), or in chunks of at most ``chunk_tokens`` prefill tokens per
  iteration that ride along in the decode pass (Sarathi-Serve, Agrawal et al. OSDI 2024);
* at most ``slots`` sequences run (prefilling or decoding); a request is admitted first come
  first served when a slot is free and the KV cache holds its whole prompt and output
  (``kv_tokens``: the reserving policy of TensorRT-LLM's "guaranteed no evict" scheduler, so
  nothing is ever preempted); a verify pass yields ``accepted`` tokens (speculative decoding).

:func:`simulate` follows every request through the scheduler exactly (a discrete-event
simulation over events with ``jax.lax.scan``: between two events, arrivals, prefill
completions and finishes, every iteration is the same, so they are taken at once).
:func:`open_queue` is its analytic (vectorizable, closed-form) approximation for Poisson
arrivals, used by the engine for every configuration:

* fluid mean iteration ``x`` from Little's law: ``n̄ = λ·L·x`` sequences decode, each iteration
  also carries the prefill of the λ·x prompts that arrived during the last one;
* the saturation rate: the λ where ``n̄`` reaches ``slots`` (or chunked prefill's token budget
  is used up);
* TTFT = the rest of the iteration under way + the prompt's own prefill (chunked: its
  ⌈s/chunk⌉ iterations) + the wait for a slot + (chunked) the wait behind other prompts'
  chunks. Continuous batching: the iteration under way is a decode step or a prefill pass of
  the prompts that arrived during the interval before it; these intervals are a Markov chain
  whose stationary, length-biased mixture, with the prompts arriving beside the request
  (they share its pass), gives the wait before its own prefill (:func:`pass_chain`). The
  slot (:func:`busy_slots`): a chain of the requests in the system whose iteration grows
  with the sequences running and with their own prompts' prefill (the slots fill up in
  bursts of arrivals that also slow the requests holding them), with the spread of a fixed
  stay; beyond 32 slots Halfin–Whitt's many-server normal (Halfin & Whitt, Oper. Res.
  1981); the Allen–Cunneen factor (1 + c_s²)/2 for nearly deterministic service, an
  exponential tail. The chunks: M/G/1, Pollaczek–Khinchine's mean, percentiles from
  Erlang's exact M/D/1 and the Cramér–Lundberg decay (:func:`mg1_wait_quantile`). The own
  prefill's spread is log-normal (the prompt lengths'); the parts' deviations from their
  means combine in quadrature, no lower than the requests that found a slot free put them;
* TPOT = the request's mean iteration; its spread a compound Poisson sum of what the others
  add over its stay (each arrival its prefill and, for the rest of the stay, one more
  sequence; those running at its start, one sequence for a uniform rest: the two parts
  covary), gated by the share of requests that find a slot free (the rest enter as the
  finishing leave); quantiles by Cornish–Fisher from its variance and third cumulant.

Its error against :func:`simulate` is measured by ``inferbench simulate --check``
(docs/concepts.md#serving-under-load).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats

from models._pytree import Array

PERCENTILES = (50.0, 90.0, 99.0)


class ServiceCurve(NamedTuple):
    """How fast one replica serves (see the module docstring); every field a scalar."""

    step_s: Array  # decode iteration with one sequence running
    step_per_seq_s: Array  # added per further running sequence
    pass_s: Array  # fixed time of a prefill pass of its own (chunked: 0)
    token_s: Array  # prefill time per prompt token
    slots: Array  # most sequences running
    chunk_tokens: Array  # prefill tokens per iteration (0: whole prompts in a pass of their own)
    kv_tokens: Array  # prompt + output tokens the KV cache holds
    accepted: Array  # tokens a decode iteration yields


class Served(NamedTuple):
    """Per request of :func:`simulate` (inf: not finished within the simulation)."""

    ttft_s: Array
    tpot_s: Array
    latency_s: Array
    queue_s: Array  # arrival to (first) admission
    preemptions: Array  # times preempted (on-demand KV admission)


def simulate(
    curve: ServiceCurve,
    arrival_s: Array,
    prompt_tokens: Array,
    output_tokens: Array,
    window: int | None = None,
    reserve: bool = True,
) -> Served:
    """Every request of a trace (sorted by arrival) through the scheduler, exactly.

    One event per scan step: admission at the iteration boundary, then either a prefill pass
    (whole prompts) or ``k`` identical iterations up to the next arrival, prefill completion
    or finish. At most three events per request (and an idle jump), so ``4·N`` steps.

    KV admission: ``reserve`` (TensorRT-LLM's "guaranteed no evict") admits a request when
    its whole prompt and output fit, so nothing is ever preempted; otherwise on demand
    (vLLM's): when its prompt fits with room for one more token of every running sequence;
    when the running sequences' next tokens do not fit, the latest to arrive is preempted:
    its KV is freed, it waits first in line, and when admitted again it prefills its prompt
    and the tokens it had generated (recomputation) and decodes on (``8·N`` steps).

    Each step looks at ``window`` requests from the oldest unfinished one (all N if None): the
    running and the next to admit are among them as long as requests finish roughly in the
    order they came (a fixed output length: exactly), and a step costs O(window), not O(N).
    If a request the scheduler would admit lies beyond the window, the trace's results are
    NaN (not exact; rerun it with a wider window)."""
    n = arrival_s.shape[0]
    w = n if window is None else min(int(window), n)
    f = jnp.result_type(float)
    inf = jnp.asarray(jnp.inf, f)
    acc = curve.accepted

    def pad(x: Array, v: float) -> Array:
        return jnp.concatenate([jnp.asarray(x, f), jnp.full((w + 1,), v, f)])

    arrival_s = pad(arrival_s, jnp.inf)
    prompt, output = pad(prompt_tokens, 0.0), pad(output_tokens, 1.0)
    iters = jnp.ceil(jnp.maximum(output - 1.0, 0.0) / acc)  # after the first token
    need = prompt + output
    chunked = curve.chunk_tokens > 0
    budget = jnp.where(chunked, curve.chunk_tokens, 1.0)

    def at(x: Array, i: Array) -> Array:
        return jax.lax.dynamic_slice(x, (i,), (w,))

    def step(state: Any, _: None) -> tuple[Any, None]:
        t, nxt, lo, over, per_request = state
        idx = lo + jnp.arange(w)
        arr, prm, nd, its = at(arrival_s, lo), at(prompt, lo), at(need, lo), at(iters, lo)
        pre, dec, held, done, back, admit, first, fin, preempted = (at(x, lo) for x in per_request)
        back = back > 0
        active = (pre > 0) | (dec > 0)
        n_active = active.sum()
        a_next = jnp.where(nxt < n, arrival_s[nxt], inf)
        t = jnp.where((n_active == 0) & (nxt < n) & ~back.any(), jnp.maximum(t, a_next), t)
        # Admission, first come first served (a preempted request first): a slot and its KV.
        waiting = back | ((idx >= nxt) & (arr <= t))
        rank = jnp.cumsum(waiting)
        kv_room = curve.kv_tokens - jnp.where(active, held, 0.0).sum()
        # What it holds when admitted: all it will need (reserve), or its prompt and the
        # tokens it generated before it was preempted (on demand).
        own = prm + jnp.where(back, 1.0 + done * acc, 0.0)
        holds = nd if reserve else own
        n_dec = (dec > 0).sum()
        ahead = 0.0 if reserve else acc * (n_dec + rank)  # one more token for all decoding
        fits = (jnp.cumsum(jnp.where(waiting, holds, 0.0)) + ahead <= kv_room) | ((n_active == 0) & (rank == 1))
        admitted = waiting & (rank <= curve.slots - n_active) & fits
        admitted = admitted & (jnp.cumsum(~admitted & waiting) == 0)  # FCFS: none overtakes
        # Every waiting request in the window admitted, a slot left and more waiting beyond it.
        room = (admitted.sum() == waiting.sum()) & (waiting.sum() + 1 <= curve.slots - n_active)
        over = over | (room & (arrival_s[lo + w] <= t) & (lo + w < n))
        admit = jnp.where(admitted & ~jnp.isfinite(admit), t, admit)
        pre = jnp.where(admitted, own, pre)
        held = jnp.where(admitted, holds, held)
        nxt = nxt + (admitted & ~back).sum(dtype=nxt.dtype)
        back = back & ~admitted
        active = (pre > 0) | (dec > 0)
        # On demand, the running sequences' next tokens must fit: else the latest is preempted
        # (not a sequence alone, which no preemption can help), and nothing else happens (no
        # prefill, no iteration: the event takes no time).
        used = jnp.where(active, held, 0.0).sum()
        evict = (not reserve) & (n_dec > 0) & (used + acc * n_dec > curve.kv_tokens) & (active.sum() > 1)
        victim = evict & (idx == jnp.max(jnp.where(active, idx, -1)))
        pre, dec, held = (jnp.where(victim, 0.0, x) for x in (pre, dec, held))
        back, preempted = back | victim, preempted + victim
        prefilling, decoding = (pre > 0) & ~evict, (dec > 0) & ~evict
        a_next = jnp.where(nxt < n, arrival_s[nxt], inf)
        backlog = jnp.where(prefilling, pre, 0.0).sum()
        n_dec = decoding.sum()
        base = curve.step_s + curve.step_per_seq_s * jnp.maximum(n_dec - 1.0, 0.0)
        k_fin = jnp.min(jnp.where(decoding, dec, inf))
        # On demand, the iterations until the running sequences' tokens fill the KV cache.
        k_kv = jnp.where(
            reserve | (n_dec == 0), inf, jnp.maximum(jnp.floor((curve.kv_tokens - used) / (acc * n_dec)), 1.0)
        )
        # Whole prompts (continuous): a prefill pass of every prompt admitted, decode stalled.
        whole = ~chunked & (backlog > 0)
        # Otherwise k identical iterations, each with up to ``budget`` prefill tokens.
        cum = jnp.cumsum(jnp.where(prefilling, pre, 0.0))
        k_pre = jnp.where(chunked & (backlog > 0), jnp.ceil(jnp.min(jnp.where(prefilling, cum, inf)) / budget), inf)
        it_s = base + curve.token_s * jnp.where(chunked, jnp.minimum(budget, backlog), 0.0)
        k_arr = jnp.where(a_next > t, jnp.maximum(jnp.ceil((a_next - t) / it_s), 1.0), inf)
        k = jnp.minimum(jnp.minimum(jnp.minimum(k_fin, k_pre), k_arr), k_kv)
        k = jnp.where((n_dec > 0) | (chunked & (backlog > 0)), k, 0.0)
        k = jnp.where(jnp.isfinite(k), k, 0.0)
        consumed = jnp.where(chunked, jnp.minimum(k * budget, backlog), backlog)
        dt = jnp.where(whole, curve.pass_s + curve.token_s * backlog, k * base + curve.token_s * consumed)
        t = t + dt
        pre_left = jnp.where(whole, 0.0, jnp.clip(cum - consumed, 0.0, pre))
        pre_left = jnp.where(prefilling, pre_left, pre)
        done_pre = prefilling & (pre_left == 0)
        stepped = jnp.where(decoding & ~whole, k, 0.0)
        # Prefilled again after a preemption, the pass also yields its next token.
        resumed = done_pre & (preempted > 0)
        dec = jnp.where(done_pre, jnp.maximum(its - done - resumed, 0.0), dec - stepped)
        done = done + stepped + resumed
        held = held + jnp.where(reserve, 0.0, stepped * acc)
        first = jnp.where(done_pre & ~jnp.isfinite(first), t, first)
        fin = jnp.where((done_pre | decoding) & (dec <= 0) & ~jnp.isfinite(fin), t, fin)
        per_request = tuple(
            jax.lax.dynamic_update_slice(a, b, (lo,))
            for a, b in zip(per_request, (pre_left, dec, held, done, back * 1.0, admit, first, fin, preempted))
        )
        # The window moves on to the oldest request not finished (never past the next to admit).
        unfinished = ~jnp.isfinite(fin)
        lo = jnp.minimum(jnp.where(unfinished.any(), lo + jnp.argmax(unfinished), lo + w), nxt).astype(lo.dtype)
        return (t, nxt, lo, over, per_request), None

    zeros, infs = jnp.zeros(n + w + 1, f), jnp.full(n + w + 1, jnp.inf, f)
    i0 = jnp.zeros((), jnp.int32)
    per_request = (zeros, zeros, zeros, zeros, zeros, infs, infs, infs, zeros)
    steps = (4 if reserve else 8) * n + 8
    (_, _, _, over, per_request), _ = jax.lax.scan(
        step, (jnp.zeros((), f), i0, i0, jnp.zeros((), bool), per_request), None, length=steps
    )
    admit, first, fin, preempted = (x[:n] for x in per_request[5:])
    arrival_s = arrival_s[:n]
    tpot = (fin - first) / jnp.maximum(output[:n] - 1.0, 1.0)
    served = (first - arrival_s, tpot, fin - arrival_s, admit - arrival_s, preempted)
    return Served(*(jnp.where(over, jnp.nan, x) for x in served))


class Queued(NamedTuple):
    """What :func:`open_queue` predicts for one replica at a rate (inf beyond saturation)."""

    ttft_s: Array  # mean
    tpot_s: Array  # mean
    ttft_pct_s: tuple[Array, ...]  # at PERCENTILES
    tpot_pct_s: tuple[Array, ...]
    latency_pct_s: tuple[Array, ...]
    queue_s: Array  # mean wait for a slot and behind other prompts
    saturation_rps: Array  # of the replica
    running: Array  # mean sequences decoding


_Z = tuple(float(jax.scipy.stats.norm.ppf(p / 100.0)) for p in PERCENTILES)


def exp_tail_quantile(p_wait: Array, mean_if_wait: Array, p: Array | float) -> Array:
    """Quantile at ``p`` of a wait that is 0 with probability 1 − p_wait, else exponential."""
    tail = 1.0 - jnp.asarray(p) / 100.0
    return jnp.where(p_wait > tail, mean_if_wait * jnp.log(jnp.maximum(p_wait, tail) / tail), 0.0)


# Servers up to which the waiting probability is summed exactly (beyond: a normal approximation).
EXACT_SERVERS = 32


def _waiting(offered: Callable[[Array], Array], mean: Array, var: Array, servers: Array, rho: Array) -> Array:
    """Probability that all ``servers`` are busy on arrival in a birth–death queue whose
    occupancy weights grow by ``offered(k)`` = λ/μ(k) from k − 1 to k (k ≤ c) and by ρ beyond.
    With E = π_c / Σ_{j≤c} π_j (Erlang B's recursion E_k = g_k·E_{k−1}/(1 + g_k·E_{k−1})), the
    probability is 1/(1 + (1 − ρ)(1/E − 1)). Up to EXACT_SERVERS servers by the recursion
    (a fractional c between its neighbours); beyond, E from a normal of the weights' ``mean``
    and ``var`` below c (with a continuity correction)."""
    c = jnp.maximum(servers, 1.0)

    def step(i: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
        # A loop, not unrolled: the program stays small (XLA's compile time grows with it).
        loss, loss_at_c = state
        k = i + 1.0
        g = offered(k)
        new = g * loss / (1.0 + g * loss)
        share = jnp.clip(c - (k - 1.0), 0.0, 1.0)  # c in (k − 1, k]: between E_{k−1} and E_k
        return new, jnp.where((c > k - 1.0) & (c <= k), loss + share * (new - loss), loss_at_c)

    _, loss_at_c = jax.lax.fori_loop(0, EXACT_SERVERS, step, (jnp.ones_like(rho), jnp.zeros_like(rho)))
    sd = jnp.sqrt(jnp.maximum(var, 1e-30))
    z = (c - mean) / sd
    # E ≈ pmf(c)/cdf(c) of the normal: φ(z)/sd / Φ(z + 1/(2 sd)).
    normal = jax.scipy.stats.norm.pdf(z) / jnp.maximum(jax.scipy.stats.norm.cdf(z + 0.5 / sd), 1e-30) / sd
    loss_at_c = jnp.where(c > EXACT_SERVERS, jnp.clip(normal, 1e-300, 1.0), loss_at_c)
    return jnp.where(rho < 1.0, 1.0 / (1.0 + (1.0 - jnp.minimum(rho, 1.0)) * (1.0 / loss_at_c - 1.0)), 1.0)


def busy_slots(lam: Array, life: Array, base_s: Array, per_seq_s: Array, slots: Array, rho: Array) -> Array:
    """Probability that every slot is taken when a request arrives: a chain of the requests in
    the system, arrivals λ, each staying L iterations of x(n) = base + per_seq·(n − 1), growing
    with the n running (c = slots). Below c its weights are a negative binomial's (the
    birth–death chain's mean, the spread of a fixed number of iterations: below), from c on a
    geometric series of ratio ρ = λ/λ_sat. With a constant iteration it is Erlang C."""
    w = jnp.clip(lam * life * per_seq_s, 0.0, 1.0 - 1e-6)
    r = base_s / jnp.maximum(per_seq_s, 1e-30)
    # The mean running (its Poisson limit, λ·L·base, without a slope).
    mean = jnp.where(w > 1e-9, r * w / (1.0 - w), lam * life * base_s)
    # Its spread: n is the arrivals within the last L iterations, which last longer the more run
    # (T = L·base + w/λ·n), so a fluctuation ξ of the count lengthens the window that counts it:
    # n − n̄ = ξ/(1 − w), a variance n̄/(1 − w)² (a birth–death chain with exponential service
    # forgets faster: n̄/(1 − w)). A negative binomial of that mean and variance, success w(2 − w).
    w2 = w * (2.0 - w)
    var = mean / (1.0 - w2)
    return _waiting(lambda k: (mean * (1.0 - w2) + w2 * (k - 1.0)) / k, mean, var, slots, rho)


def slot_wait(rho: Array, servers: Array, service_s: Array, cs2: Array) -> tuple[Array, Array]:
    """(probability of waiting, mean wait of those who wait) for ``servers`` servers of one
    service time at utilization ``rho``: Erlang C, and the M/M/c conditional mean
    service/(c(1 − ρ)) scaled by Allen–Cunneen's (1 + c_s²)/2. (Erlang C holds for nearly
    deterministic service within a few per cent against the exact simulation, 1 to 64 servers.)"""
    offered = rho * jnp.maximum(servers, 1.0)
    p_wait = _waiting(lambda k: offered / k, offered, offered, servers, rho)
    mean = service_s / jnp.maximum(servers * (1.0 - rho), 1e-30) * (1.0 + cs2) / 2.0
    return p_wait, mean


def mg1_wait_quantile(rho: Array, service_s: Array, cv2: Array, p: Array) -> Array:
    """Percentiles ``p`` of the wait in an M/G/1 queue at utilization ``rho`` (service of mean
    ``service_s``, squared coefficient of variation ``cv2``, as a gamma). Below one service
    D = service·(1 + c²) (the residual's scale), Erlang's exact M/D/1 P(W ≤ t) = (1 − ρ)·e^{λt};
    beyond, P(W > D)·e^{−θ(t − D)} with θ the Cramér–Lundberg decay, λ(E[e^{θS}] − 1) = θ
    (Newton from above, where the function is convex). Against Erlang's exact M/D/1 the
    p50/p90/p99 hold within 9 % from ρ = 0.05 to 0.8; heavy traffic's exponential of mean
    D/(2(1 − ρ)) from P(W > 0) = ρ holds near ρ = 1 only (at ρ = 0.2 its p99 is 1.87 services,
    the exact 1.44, this 1.31)."""
    lam = rho / jnp.maximum(service_s, 1e-30)
    c2 = jnp.maximum(cv2, 1e-6)  # the gamma's shape 1/c² (deterministic in the limit)
    top = 0.999 / (service_s * c2)  # the gamma's generating function is finite below 1/(D·c²)

    def excess(th: Array) -> tuple[Array, Array]:  # λ(E[e^{θS}] − 1) − θ and its derivative
        log_base = -jnp.log1p(-th * service_s * c2)
        return lam * (jnp.exp(log_base / c2) - 1.0) - th, lam * service_s * jnp.exp(log_base * (1.0 / c2 + 1.0)) - 1.0

    safe = jnp.maximum(rho, 1e-9)
    th = jnp.minimum(jnp.minimum(2.0 * (1.0 - safe) / safe, 2.0 * jnp.log(1.0 / safe) + 2.0) / service_s, top)
    for _ in range(6):
        f, df = excess(th)
        th = jnp.clip(th - f / jnp.maximum(df, 1e-12), 1e-12 / service_s, top)
    d = service_s * (1.0 + cv2)
    tail = 1.0 - jnp.asarray(p) / 100.0
    over_d = 1.0 - (1.0 - rho) * jnp.exp(rho)  # P(W > D)
    body = jnp.log(jnp.maximum((1.0 - tail) / (1.0 - rho), 1.0)) * d / jnp.maximum(rho, 1e-30)
    beyond = d + jnp.log(jnp.maximum(over_d, 1e-30) / tail) / th
    return jnp.where(tail >= over_d, body, beyond)


# Prefill passes of up to this many prompts are told apart (more: as many).
PASS_PROMPTS = 3


def pass_chain(lam: Array, step_s: Array, stall_s: Array, prompt_s: Array, busy: Array,
               p: Array) -> tuple[Array, Array]:  # fmt: skip
    """Continuous batching: the mean and the percentiles ``p`` of what a request arriving
    while the replica is busy waits before its own prompt's prefill, R + B: the rest R of
    the interval under way (a decode step, or a prefill pass of k prompts: length-biased,
    uniform within it) and the prefill B of the prompts that arrive during that interval
    (Poisson), which share the request's pass. The intervals are a Markov chain: a pass holds
    the prompts that arrived during the interval before it; none arrived, and the next is a
    decode step. Long passes thus beget long passes (at a high prefill share they chain),
    which a mean pass misses. Idle (probability 1 − busy): no wait."""
    k = jnp.arange(PASS_PROMPTS + 1.0)
    length = jnp.where(k == 0, step_s, stall_s + prompt_s * k)
    arrivals = lam * length
    # Poisson counts of arrivals during each interval: e^{−m}·m^j/j!, by the recurrence in j.
    ratio = jnp.concatenate([jnp.ones_like(arrivals)[:, None], arrivals[:, None] / k[None, 1:]], axis=1)
    count = jnp.exp(-arrivals)[:, None] * jnp.cumprod(ratio, axis=1)  # [interval, prompts]
    trans = count.at[:, -1].set(jnp.maximum(1.0 - count[:, :-1].sum(1), 0.0))
    for _ in range(4):  # trans^16: every row is the stationary distribution (products written
        trans = jnp.sum(trans[:, :, None] * trans[None, :, :], axis=1)  # out: XLA's CPU dot is slow this small)
    state = trans[0]
    seen = state * length / jnp.sum(state * length)  # the interval an arrival falls in
    mean = busy * jnp.sum(seen * length * (0.5 + lam * prompt_s))
    target = jnp.asarray(p) / 100.0

    def cdf(t: Array) -> Array:  # P(R + B ≤ t): piecewise linear in t
        within = jnp.clip((t[..., None, None] - prompt_s * k) / length[:, None], 0.0, 1.0)
        return (1.0 - busy) + busy * jnp.sum(seen[:, None] * count * within, axis=(-2, -1))

    def bisect(i: Array, bracket: tuple[Array, ...]) -> tuple[Array, ...]:
        lo, hi, at_lo, at_hi = bracket
        mid = (lo + hi) / 2.0
        at_mid = cdf(mid)
        low = at_mid < target
        return (jnp.where(low, mid, lo), jnp.where(low, hi, mid), jnp.where(low, at_mid, at_lo),
                jnp.where(low, at_hi, at_mid))  # fmt: skip

    zero, top = jnp.zeros_like(target), (length[-1] + prompt_s * PASS_PROMPTS) * jnp.ones_like(target)
    # A loop (a smaller program); then linear within the last bracket (exact but at a kink).
    lo, hi, at_lo, at_hi = jax.lax.fori_loop(0, 10, bisect, (zero, top, cdf(zero), jnp.ones_like(target)))
    return mean, lo + (hi - lo) * jnp.clip((target - at_lo) / jnp.maximum(at_hi - at_lo, 1e-30), 0.0, 1.0)


def _split(values: Array) -> tuple[Array, ...]:
    return tuple(values[..., i] for i in range(len(PERCENTILES)))


def open_queue(curve: ServiceCurve, rate_rps: Array, prompt_tokens: Array, prompt_cv: Array,
               output_tokens: Array) -> Queued:  # fmt: skip
    """Poisson arrivals at ``rate_rps`` on one replica of ``curve`` (the module docstring)."""
    lam = jnp.maximum(rate_rps, 0.0)
    s, d, cv2 = prompt_tokens, output_tokens, prompt_cv * prompt_cv
    t1, sd, p0, pt, slots = curve.step_s, curve.step_per_seq_s, curve.pass_s, curve.token_s, curve.slots
    chunked = curve.chunk_tokens > 0
    budget = jnp.where(chunked, curve.chunk_tokens, 1.0)
    stall = jnp.where(chunked, 0.0, p0)  # a pass of its own stalls the iteration
    life = jnp.maximum(d - 1.0, 0.0) / curve.accepted  # decode iterations of a request
    a_pre = pt * s  # prefill of a mean prompt
    per_rate = sd * life + a_pre  # what each request/s adds to an iteration, per second of it
    # Saturation: the running sequences reach the slots (λ·x = slots/L), or chunked prefill
    # uses its whole budget (λ·S·x = chunk).
    q_sat = 1.0 - jnp.exp(-slots / jnp.maximum(life, 1e-9))
    lam_slots = slots / (life * (t1 + q_sat * stall) + slots * per_rate)
    x_budget = t1 + sd * life * budget / s + pt * budget
    lam_sat = jnp.where(chunked, jnp.minimum(lam_slots, budget / (s * x_budget)), lam_slots)
    rho = lam / lam_sat
    under = rho < 1.0
    lam_u = jnp.where(under, lam, 0.0)  # keeps the saturated branch finite
    # The mean iteration, a fixed point in the chance q that prompts wait at its end.
    x = t1
    for _ in range(4):
        q = 1.0 - jnp.exp(-lam_u * x)
        x = (t1 + q * stall) / jnp.maximum(1.0 - lam_u * per_rate, 1e-6)
    q = 1.0 - jnp.exp(-lam_u * x)
    arrivals = lam_u * x  # prompts per iteration
    running = jnp.minimum(arrivals * life, slots)
    # Every slot taken when a request arrives (:func:`busy_slots`): the running requests' own
    # prompts stall them: with n running, about n prompts arrived during their stay of L
    # iterations, each lengthening an iteration by its share a_pass/L. (A mean stall instead
    # misses that the slots fill up in bursts of arrivals, which slow the very requests whose
    # finishing would free a slot.) Chunked, a request holds its slot through its own
    # prompt's ⌈s/chunk⌉ iterations too.
    stay = jnp.maximum(life, 1.0)
    a_pass = a_pre + stall * q / jnp.maximum(arrivals, 1e-9)  # an arrival's prefill and share of a pass
    per_seq = sd + a_pass / stay
    hold = life + jnp.where(chunked, s / budget, 0.0)
    p_slot = busy_slots(lam_u, hold, t1 + a_pass / stay, per_seq, slots, rho)
    # TPOT: the request's mean iteration over its L iterations, and its spread: what the
    # others add over its stay, a compound Poisson sum. An arrival at a uniform point of the
    # stay adds its prefill a and, for the rest of the stay, one more sequence (sd per
    # iteration); those running at its start add sd for a uniform rest. Per the TPOT's
    # iteration, with n = λ·x·L arrivals (as many running at the start):
    #   κ2 = n·(a²·E[S²]/L² + a·sd/L + (2/3)·sd²) (the running at most the slots),
    #   κ3 = n·(a³·E[S³]/L³ + (3/2)·a²·E[S²]·sd/L² + a·sd²/L + sd³/2) (S: prompt / mean);
    # percentiles by Cornish–Fisher. The prefill's part grows by 1/(1 − f)², f the share of
    # time in prefill (its stalls lengthen the stay, which lets more arrive); and only the
    # requests that find a slot free enter at random times (1 − P(full)); the others enter
    # as the finishing leave.
    decode_step = t1 + sd * running
    in_prefill = jnp.clip((x - decode_step) / x, 0.0, 0.99)
    n_ev = arrivals * stay
    # Per arrival: its prefill, the covariance of that with its sequence, its sequence.
    by_prompt, by_both, by_seq = a_pass**2 * (1.0 + cv2) / stay**2, a_pass * sd / stay, (2.0 / 3.0) * sd**2
    # The prefill's part exactly: a pass of its own stalls once however many prompts it holds.
    prompt_var = (
        stall**2 * q * (1.0 - q) + a_pre**2 * arrivals * (1.0 + cv2) + 2.0 * stall * a_pre * (1.0 - q) * arrivals
    )
    k2 = (1.0 - p_slot) * (prompt_var / stay / (1.0 - in_prefill) ** 2 + n_ev * by_both + by_seq * running)
    k3 = n_ev * (
        a_pass**3 * (1.0 + cv2) ** 3 / stay**3
        + 1.5 * a_pass**2 * (1.0 + cv2) * sd / stay**2
        + a_pass * sd**2 / stay
        + 0.5 * sd**3
    )
    skew = k3 / jnp.maximum(n_ev * (by_prompt + by_both + by_seq), 1e-300) ** 1.5
    tpot_sd = jnp.sqrt(k2) / curve.accepted
    tpot = x / curve.accepted
    pcts, zs = jnp.asarray(PERCENTILES), jnp.asarray(_Z)  # the percentiles as one axis: a smaller program
    z_decode = zs + (zs * zs - 1.0) * skew / 6.0
    tpot_pct = tpot + z_decode * tpot_sd
    # TTFT = own prefill F + the rest R of what runs when the request arrives + waits.
    # F: the prompt's chunks, or its pass (the prompts beside it are in R + B below).
    busy = 1.0 - jnp.exp(-lam_u * (life * x + stall + a_pre))
    x_full = decode_step + pt * jnp.minimum(budget, s)  # an iteration while prompts queue
    rho_b = jnp.where(chunked, jnp.minimum(lam_u * s * x_full / budget, 0.999), 0.0)
    # Chunked: its ⌈s/chunk⌉ iterations, their decode part growing with its own length too.
    # Behind other prompts' chunks its first chunk starts mid-budget (half an iteration more on
    # average); alone, a prompt of fixed length takes exactly ⌈s/chunk⌉.
    spill = jnp.where(cv2 > 0, 0.5, jnp.ceil(s / budget - 1e-9) - s / budget)
    fixed = stall + jnp.where(chunked, (spill + rho_b * (0.5 - spill)) * decode_step, 0.0)
    own = a_pre + jnp.where(chunked, s / budget * decode_step, 0.0)
    sigma = jnp.sqrt(jnp.log1p(cv2))
    f_mean = fixed + own
    f_pct = fixed + own * jnp.exp(zs * sigma - sigma * sigma / 2.0)
    # R + B: continuous, the chain of passes; chunked, nothing (idle) or the rest of an
    # iteration (uniform), its chunks in the wait behind other prompts' below.
    u = pcts / 100.0 - (1.0 - busy)
    c_mean, c_pct = pass_chain(lam_u, decode_step, stall, a_pre, busy, pcts)
    r_mean = jnp.where(chunked, busy * x / 2.0, c_mean)
    r_pct = jnp.where(chunked, jnp.where(u <= 0, 0.0, x * u / jnp.maximum(busy, 1e-30)), c_pct)
    # Waits: for a slot (many servers: p_slot above), and behind other prompts' chunks (one
    # server whose iterations carry a full chunk while it is busy).
    m_chunk = (s / budget) * (1.0 + cv2) * x_full / (2.0 * (1.0 - rho_b))
    m_slot = hold * (t1 + per_seq * slots) / (slots * (1.0 - rho)) / 2.0
    queue = p_slot * m_slot + rho_b * m_chunk
    queue = jnp.where(queue < 1e-9, 0.0, queue)  # below a nanosecond: the tails' underflow, no wait
    ttft = f_mean + r_mean + queue
    others = (
        f_pct - f_mean,
        r_pct - r_mean,
        jnp.where(chunked, mg1_wait_quantile(rho_b, s / budget * x_full, cv2, pcts), 0.0) - rho_b * m_chunk,
    )
    slot_dev = exp_tail_quantile(p_slot, m_slot, pcts) - p_slot * m_slot

    def combined(mean: Array, devs: tuple[Array, ...]) -> Array:
        # Deviations from the means combine in quadrature, each sign apart (exact for normal parts).
        up = jnp.sqrt(sum(jnp.maximum(dv, 0.0) ** 2 for dv in devs))
        return mean + up - jnp.sqrt(sum(jnp.minimum(dv, 0.0) ** 2 for dv in devs))

    # A slot wait is rare but long: below the p-th percentile are at least a share p/(1 − p_slot)
    # of the requests that found a slot free (their quantiles interpolated in z between ours).
    free = combined(ttft - p_slot * m_slot, others)
    z_free = jax.scipy.stats.norm.ppf(jnp.clip(pcts / 100.0 / jnp.maximum(1.0 - p_slot, 1e-9), 0.5, pcts[-1] / 100.0))
    ttft_pct = jnp.maximum(jnp.maximum(combined(ttft, (*others, slot_dev)), jnp.interp(z_free, zs, free)), stall)
    decode_s = jnp.maximum(d - 1.0, 0.0) * tpot
    dec_sd = jnp.maximum(d - 1.0, 0.0) * tpot_sd
    lat_pct = ttft_pct + decode_s + z_decode * dec_sd

    def bounded(v: Array) -> Array:
        return jnp.where(under, v, jnp.inf)

    return Queued(
        ttft_s=bounded(ttft),
        tpot_s=bounded(tpot),
        ttft_pct_s=_split(bounded(ttft_pct)),
        tpot_pct_s=_split(bounded(tpot_pct)),
        latency_pct_s=_split(bounded(lat_pct)),
        queue_s=bounded(queue),
        saturation_rps=lam_sat,
        running=jnp.where(under, running, slots),
    )


def poisson_requests(key: Array, n: int, rate_rps: Array, prompt_tokens: Array, prompt_cv: Array,
                     output_tokens: Array) -> tuple[Array, Array, Array]:  # fmt: skip
    """A synthetic trace: Poisson arrivals, log-normal prompt lengths of this mean and
    coefficient of variation (whole tokens, at least 1), a fixed output length."""
    k1, k2 = jax.random.split(key)
    arrival = jnp.cumsum(jax.random.exponential(k1, (n,)) / rate_rps)
    sigma2 = jnp.log1p(prompt_cv * prompt_cv)
    z = jax.random.normal(k2, (n,))
    prompt = jnp.maximum(jnp.round(prompt_tokens * jnp.exp(jnp.sqrt(sigma2) * z - sigma2 / 2.0)), 1.0)
    return arrival, prompt, jnp.full((n,), output_tokens, jnp.result_type(float))
