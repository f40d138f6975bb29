"""Serving metrics of one configuration: a request batch on a platform of chips.

Prefill of S prompt tokens, then D decode steps with the context growing from S to
S + D − 1, summed in closed form (docs/architecture.md#rules, rule 5): the operator table is affine in the
context, so each operator's compute and memory times are affine in the step index, and
the sum over steps of their maximum is the sum of a piecewise-linear function with one
kink (:func:`sum_max_affine`).

References:
  InferBench research note (docs/references.md#research-note): roofline, power model, decode table.
  GenZ (docs/references.md#genz) §III (prefill/decode stages, TP/PP, collectives), Eq. 2 (energy).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats

from models._economics import EconomicsSpec, gco2_per_million_tokens, usd_per_million_tokens
from models._interface import Chip, LayerComm, Scenario, SoftwareParams, Workload, widest
from models._metrics import Infeasible, Metrics
from models._pytree import Array
from models._queueing import PERCENTILES, Queued, ServiceCurve, exp_tail_quantile, open_queue, slot_wait
from models.platform import PlatformSpec, pipeline_fill_factor
from models.silicon import COOLING_W_PER_MM2, RETICLE_MM2, hbm_sites
from models.workloads import gemm_operator


def sum_max_affine(p: Array, q: Array, r: Array, s: Array, n: Array) -> Array:
    """Σ_{i=0}^{n−1} max(p + q·i, r + s·i), in closed form.

    max(f, g) = g + max(f − g, 0), and f − g = d0 + ds·i is linear, so it is positive on one
    contiguous run of indices [lo, hi] that we find from its root; the sum of a linear
    function over a run is count·(first + last)/2. Exact for integer n ≥ 1.
    """
    d0, ds = p - r, q - s
    sum_g = n * r + s * n * (n - 1.0) / 2.0
    # A slope below the smallest normal float is a zero slope: CPUs flush subnormals to zero
    # in division, so treating them as slopes would give 0/0.
    tiny = jnp.finfo(jnp.result_type(ds)).tiny
    ds = jnp.where(jnp.abs(ds) < tiny, 0.0, ds)
    safe = jnp.where(ds == 0, 1.0, ds)
    root = -d0 / safe  # d(i) = 0
    lo = jnp.where(ds > 0, jnp.clip(jnp.floor(root) + 1.0, 0.0, n), 0.0)
    hi = jnp.where(ds < 0, jnp.clip(jnp.ceil(root) - 1.0, -1.0, n - 1.0), n - 1.0)
    hi = jnp.where((ds == 0) & (d0 <= 0), -1.0, hi)
    count = jnp.maximum(hi - lo + 1.0, 0.0)
    pos = count * (2.0 * d0 + ds * (lo + jnp.maximum(hi, lo))) / 2.0
    return sum_g + pos


class PhaseCost(NamedTuple):
    """Totals of a phase (summed over its passes) for one model replica."""

    busy_s: Array  # Σ operator time on one chip (all layers), = time at pp = 1
    compute_s: Array  # of which compute-bound operator time
    memory_s: Array  # of which memory-bound operator time
    overhead_s: Array  # kernel + framework overhead
    network_s: Array  # exposed TP all-reduces, EP all-to-alls and PP transfers
    wall_s: Array  # the passes back to back: operators + network + framework overhead
    chip_energy_j: Array  # Σ operator energy on one chip (all layers)
    flops: Array  # per chip, all layers
    bytes: Array  # per chip, all layers
    kv_bytes: Array  # of which KV-cache reads and writes
    kv_flops: Array  # FLOPs of the operators that read the KV cache (attention)


def _times(ph: PhaseCost, m: Array) -> PhaseCost:
    """The work of ``m`` executions of a phase (wall time is the caller's: it overlaps)."""
    return PhaseCost(*(x * m for x in ph))


def _pass_comm(
    model: Workload,
    scenario: Scenario,
    platform: PlatformSpec,
    new_tokens: Array,
    chunk: tuple[Array, Array, Array] | None = None,
) -> LayerComm:
    """What one pass sends per layer (prefill chunks riding along add their tokens)."""
    tokens = new_tokens if chunk is None else new_tokens + chunk[0] * chunk[1] / scenario.batch
    return model.layer_comm(scenario, platform.split, tokens)


def _network_s(
    model: Workload, chip: Chip, software: SoftwareParams, platform: PlatformSpec, comms: list[LayerComm]
) -> list[Array]:
    """Network time of one pass for each of ``comms`` (GenZ §III-C), on the platform's levels
    with TP innermost: the workload's all-reduces of every layer among tp neighbours, SP's
    gather and all-reduce among sp groups (tp apart), EP's all-to-alls among ep groups (tp·sp
    apart), and pp − 1 stage-to-stage transfers (tp·sp·ep apart). The passes (and the TP and
    SP all-reduces) each as its own scalar per design."""
    tp, pp, sp, ep = platform.tp, platform.pp, platform.sp, platform.ep
    one = jnp.ones_like(tp)
    nets = []
    for c in comms:
        # Each pass's collectives as scalars per design: a vector over the passes would put a
        # short axis innermost, which CPUs then evaluate one element at a time.
        allreduce = platform.collective_s(chip, software, "all_reduce", c.allreduce_bytes, tp, one)
        sp_reduce = platform.collective_s(chip, software, "all_reduce", c.sp_reduce_bytes, sp, tp)
        sp_gather = platform.collective_s(chip, software, "all_gather", c.sp_gather_bytes, sp, tp)
        alltoall = platform.collective_s(chip, software, "all_to_all", c.alltoall_bytes, ep, tp * sp)
        hop = platform.collective_s(chip, software, "send_recv", c.stage_bytes, 2.0 * one, tp * sp * ep)
        per_layer = c.allreduces * allreduce + c.alltoalls * alltoall + sp_gather + sp_reduce
        nets.append(model.n_layers * per_layer + (pp - 1.0) * hop)
    return nets


def _phase(
    model: Workload,
    chip: Chip,
    software: SoftwareParams,
    scenario: Scenario,
    platform: PlatformSpec,
    new_tokens: Array,
    past_first: Array,
    n_passes: Array,
    single: bool = False,
    growth: Array | None = None,
    chunk: tuple[Array, Array, Array] | None = None,
    net: Array | None = None,
) -> PhaseCost:
    """Cost of ``n_passes`` passes of ``new_tokens`` tokens with the context growing by
    ``growth`` (default ``new_tokens``) each pass from ``past_first``, summed in closed form.
    ``single`` (static) says that there is one pass, which skips the second table.
    ``chunk = (sequences, tokens, past)``: prefill chunks that ride along in the same single
    pass (chunked prefill), merged into its operator table. ``net``: the pass's network time
    when the caller has computed it (:func:`_network_s` of :func:`_pass_comm`)."""
    split = platform.split
    growth = new_tokens if growth is None else growth
    dt = (scenario.weight_dtype, scenario.act_dtype, scenario.kv_dtype)
    first = model.operator_table(scenario, split, new_tokens, past_first)
    if chunk is not None:
        seqs, tokens, past = chunk
        first = first.merged(model.operator_table(dataclasses.replace(scenario, batch=seqs), split, tokens, past))
    c0 = chip.operator_cost(software, first, *dt)
    if single:
        last, c1 = first, c0
        op_roof: Array = jnp.maximum(c0.compute_s, c0.memory_s) * n_passes
    else:
        last = model.operator_table(scenario, split, new_tokens, past_first + growth * (n_passes - 1.0))
        c1 = chip.operator_cost(software, last, *dt)
        steps = jnp.maximum(n_passes - 1.0, 1.0)
        # Per-operator sums over passes: max(compute, memory) summed exactly; linear terms
        # by the arithmetic-series mean (first + last)/2.
        op_roof = sum_max_affine(
            c0.compute_s,
            (c1.compute_s - c0.compute_s) / steps,
            c0.memory_s,
            (c1.memory_s - c0.memory_s) / steps,
            n_passes,
        )

    def mean(x0: Array, x1: Array) -> Array:
        return n_passes * (x0 + x1) / 2.0

    op_compute, op_memory = mean(c0.compute_s, c1.compute_s), mean(c0.memory_s, c1.memory_s)
    op_over = n_passes * c0.overhead_s
    op_flops, op_bytes = mean(first.flops, last.flops), mean(first.bytes, last.bytes)
    rep = first.repeat
    op_time = (op_roof + op_over) * rep
    # Energy per operator row over all its executions; the TDP cap is applied to the row's
    # totals (exact when the row is always or never at the cap).
    energy = chip.work_energy_j(
        op_time, op_flops * rep, op_bytes * rep, first, scenario.weight_dtype, scenario.act_dtype
    )
    compute_bound = op_compute >= op_memory
    if net is None:
        net = _network_s(model, chip, software, platform, [_pass_comm(model, scenario, platform, new_tokens, chunk)])[0]
    seqs_in_pass = scenario.batch + (chunk[0] if chunk is not None else 0.0)
    framework_s = software.pass_overhead_s(seqs_in_pass / platform.ep, platform.stage_chips)
    busy = op_time.sum()
    # A share ``overlap`` of the communication may run under the compute of the pass (GenZ
    # §III-C's overlap knob); what does not fit under it stays exposed.
    per_pass = busy / jnp.where(n_passes > 0, n_passes, 1.0)  # an encoder's decode has no pass
    exposed = (1.0 - platform.overlap) * net + jnp.maximum(platform.overlap * net - per_pass, 0.0)
    # GenZ Eq. 2's network term: the links draw P_icn while they carry the pass's collectives
    # (hidden under compute or not).
    icn_j = n_passes * net * ICN_POWER_SHARE * chip.design_tdp_w
    return PhaseCost(
        busy_s=busy,
        compute_s=jnp.where(compute_bound, op_roof * rep, 0.0).sum(),
        memory_s=jnp.where(compute_bound, 0.0, op_roof * rep).sum(),
        overhead_s=(op_over * rep).sum() + n_passes * framework_s,
        network_s=n_passes * exposed,
        wall_s=busy + n_passes * (exposed + framework_s),
        chip_energy_j=energy.sum() + icn_j,
        flops=(op_flops * rep).sum(),
        bytes=(op_bytes * rep).sum(),
        kv_bytes=(mean(first.kv_bytes, last.kv_bytes) * rep).sum(),
        kv_flops=jnp.where(first.kv_bytes > 0, op_flops * rep, 0.0).sum(),
    )


def _bound(ph: PhaseCost) -> Array:
    """Index into BOUND_NAMES of the largest time component (the first on a tie, as argmax;
    by selects rather than an argmax reduction, which CPUs run element by element)."""
    best, index = ph.compute_s, jnp.zeros((), jnp.int32)
    for i, t in enumerate((ph.memory_s, ph.network_s, ph.overhead_s), start=1):
        index = jnp.where(t > best, i, index)
        best = jnp.maximum(best, t)
    return index


BATCHING = ("static", "continuous", "chunked", "disaggregated")

# Power of a chip's network links while they carry a collective, as a share of its TDP: GenZ
# (docs/references.md#genz) §VII-B splits peak power P_static : P_C : P_mem : P_icn = 3 : 4 : 2 : 1 (Eq. 2).
ICN_POWER_SHARE = 0.1


def expected_accepted_tokens(acceptance: Array, draft_tokens: Array) -> Array:
    """Tokens a speculative verify pass yields on average: E = Σ_{i=0}^{γ} α^i =
    (1 − α^{γ+1}) / (1 − α) for γ drafted tokens each accepted with probability α
    (Leviathan et al., ICML 2023, Eq. 1; GenZ §IV-B); γ + 1 at α = 1, 1 without drafting."""
    a = jnp.clip(acceptance, 0.0, 1.0)
    near_one = a > 1.0 - 1e-6
    safe = jnp.where(near_one, 0.5, a)  # keeps the unused branch finite (and its gradient)
    return jnp.where(near_one, draft_tokens + 1.0, (1.0 - safe ** (draft_tokens + 1.0)) / (1.0 - safe))


# Relative width (log-normal σ) over which an SLO met by every request or by none switches
# on: a step for any reading of the result, smooth enough for gradients.
SLO_SHARPNESS = 0.01


def _share_within(limit: Array, fixed_s: Array, scaled_s: Array, cv: Array) -> Array:
    """Share of requests whose time ``fixed_s + scaled_s · X`` is within ``limit`` (0: no
    limit), X the request's length over the mean: log-normal, mean 1, coefficient of
    variation ``cv``: P(X ≤ x) = Φ((ln x + σ²/2)/σ), σ² = ln(1 + cv²)."""
    sigma = jnp.maximum(jnp.sqrt(jnp.log1p(cv * cv)), SLO_SHARPNESS)
    room = (limit - fixed_s) / scaled_s
    x = jnp.log(jnp.maximum(room, 1e-30)) + sigma * sigma / 2.0
    share = jnp.where(room > 0.0, jax.scipy.stats.norm.cdf(x / sigma), 0.0)
    return jnp.where(limit > 0.0, share, 1.0)


@dataclasses.dataclass(frozen=True)
class _Serving:
    """What every schedule shares: the configuration (one of the dp replicas' scenario),
    the request's shape, its memory and the pass costs' helpers."""

    model: Workload
    chip: Chip
    platform: PlatformSpec
    scenario: Scenario  # one replica's: batch = the platform's batch / dp
    software: SoftwareParams
    batch_all: Array  # the platform's batch
    d_passes: Array  # decode (or denoising) passes of a request
    outputs: Array  # what a request yields, in the metrics' unit
    accepted: Array  # tokens a verify pass yields
    new_dec: Array  # tokens per sequence in a decode (verify) pass
    fp: Any  # the footprint of one chip
    kv: Array  # KV cache bytes per chip (the prompt's shared by the beams)
    kv_host: Array  # of which spilled to the host tier
    depth: Array  # decode pipeline depth (stages, or layer regions of a chip in space)
    s_new: Array  # prompt tokens a request prefills (past its cached prefix)
    s_past: Array  # of which found in the prefix cache

    def prompt_context(self, chunk: Array) -> Array:
        # The mean context of a prompt's chunks: the cached prefix, then half the rest before.
        return self.s_past + (self.s_new - chunk) / 2.0

    @property
    def one(self) -> Array:
        return jnp.ones_like(self.scenario.batch)

    @property
    def zero(self) -> Array:
        return jnp.zeros_like(self.scenario.batch)

    def with_draft(self, ph: PhaseCost, passes: Array, seqs: Array) -> PhaseCost:
        # γ draft steps before each verify pass: each costs ``draft_cost_ratio`` of the verify
        # pass's operator work (a smaller model over the same tokens) plus the framework's
        # fixed time per pass, which does not shrink with the model.
        gamma, platform = self.scenario.draft_tokens, self.platform
        c = gamma * self.scenario.draft_cost_ratio
        fixed = gamma * passes * self.software.pass_overhead_s(seqs / platform.ep, platform.stage_chips)
        scaled = PhaseCost(*(x * (1.0 + c) for x in ph))
        return scaled._replace(
            network_s=ph.network_s,
            overhead_s=scaled.overhead_s + fixed,
            wall_s=ph.wall_s + c * ph.busy_s + fixed,
        )

    def micro_batches(self, seqs: Array) -> Array:
        # Decode keeps m = min(depth, B) micro-batches of B/m sequences in flight, one per
        # stage (or layer region of a chip that lays its layers out in space) in steady state,
        # as vLLM and TensorRT-LLM schedule pipeline-parallel decode. (At least one, so
        # depth = 1 has no kink; at B = depth the gradient is that of depth's side.)
        return jnp.where(seqs < self.depth, jnp.maximum(seqs, 1.0), self.depth)

    def round_s(self, ph: PhaseCost, m: Array) -> Array:
        # A round advances every sequence once: each micro-batch crosses all pp stages in turn
        # and each stage serves the m micro-batches in turn: max(m, pp) stage-times of 1/pp
        # of a micro-batch's pass (the per-token latency a sequence sees, stage hops included).
        # Layers laid out in space: a stage's work on a micro-batch takes its layers in turn,
        # each on its region of the chip: max(m, depth) region-times of the busy work.
        pp = self.platform.pp
        spatial = ph.busy_s * (jnp.maximum(m, self.depth) - jnp.maximum(m, pp)) / pp
        return ph.wall_s * jnp.maximum(m, pp) / pp + spatial

    def platform_energy(self, ph: PhaseCost, wall: Array, replicas: Array) -> Array:
        # In each replica tp·ep chips do every operator row of all layers (each stage its
        # share); the rest of the chip-time is idle (GenZ Eq. 2 with U = 0).
        platform = self.platform
        idle_chip_s = jnp.maximum(platform.replica_chips * wall - platform.stage_chips * ph.busy_s, 0.0)
        return replicas * (platform.stage_chips * ph.chip_energy_j + self.chip.idle_w * idle_chip_s)

    def with_offload(self, ph: PhaseCost, crossing: Array | None = None) -> PhaseCost:
        # The host share of the KV cache crosses the host link on every pass that reads it
        # (``crossing``: the pass's KV bytes, unless given); or, where the host computes (GenZ
        # Fig. 19, system C: attention on the CPU, the KV cache in its memory), the host runs
        # that share of the attention from its own memory and only queries and outputs cross:
        # the runtime takes the faster of the two.
        platform = self.platform
        host_share = self.kv_host / jnp.maximum(self.kv, 1.0)
        crossing = ph.kv_bytes if crossing is None else crossing
        stream = host_share * crossing / platform.host_bandwidth_bytes_per_s
        on_host = host_share * jnp.maximum(
            ph.kv_flops / jnp.maximum(platform.host_flops_per_s, 1.0),
            ph.kv_bytes / platform.host_memory_bandwidth_bytes_per_s,
        )
        extra = jnp.where(platform.host_flops_per_s > 0.0, jnp.minimum(stream, on_host), stream)
        return ph._replace(wall_s=ph.wall_s + extra, memory_s=ph.memory_s + extra)

    def network(self, *passes: tuple[Scenario, Array, Any]) -> list[Array]:
        # The network time of every pass of the mode, in one vectorized evaluation.
        comms = [_pass_comm(self.model, sc_, self.platform, new_, chunk_) for sc_, new_, chunk_ in passes]
        return _network_s(self.model, self.chip, self.software, self.platform, comms)

    def phase(self, sc: Scenario, new: Array, ctx: Array, passes: Array, **kw: Any) -> PhaseCost:
        return _phase(self.model, self.chip, self.software, sc, self.platform, new, ctx, passes, **kw)

    def prompt_pass(self, net: Array) -> PhaseCost:
        # The prompt pass of the batch (every mode reports it: prefill throughput, MFU, energy).
        pass_ = self.phase(self.scenario, self.s_new, self.s_past, self.one, single=True, net=net)
        return self.hosted(pass_, self.scenario.batch)

    def hosted(self, ph: PhaseCost, prompts: Array) -> PhaseCost:
        # A pass of whole prompts writes their KV once where the cache keeps it: the host's
        # share crosses the host link (not the attention's reads of it, which stay on the
        # chip), or the host computes that share of the prompts' attention (GenZ Fig. 19's
        # prefill). A prefill pool keeps no cache: it sends each request's KV on.
        sc = self.scenario
        written = self.fp.kv_bytes / (sc.batch * (sc.prompt_tokens + sc.output_tokens)) * prompts * self.s_new
        return ph if sc.batching == "disaggregated" else self.with_offload(ph, written)


class _Schedule(NamedTuple):
    """What a batching schedule yields for the shared accounting of :func:`serve`."""

    pre: PhaseCost  # the prompt pass of the batch
    dec: PhaseCost  # decode work (per round in the steady-state modes)
    rounds: Array  # rounds of a replica for the batch's output tokens
    ttft: Array
    ttft_static: Array  # the batch's prompt pass with its pipeline fill
    ttft_wait: Array  # the part of a request's TTFT that does not scale with its prompt
    ttft_prompt: Array  # the part that does
    tpot: Array
    dec_total: Array
    latency: Array
    e_pre: Array
    e_dec: Array
    out_tokens: Array
    throughput: Array
    decode_rate: Array
    curve: ServiceCurve | None = None  # the steady-state modes' service curve, per replica


def _static(c: _Serving) -> _Schedule:
    """One batch of requests from the first prompt token to the last output token: prefill,
    then decode steps with the context growing, summed in closed form."""
    sc, platform = c.scenario, c.platform
    b, s, one, zero = sc.batch, sc.prompt_tokens, c.one, c.zero
    dec_seqs = b * sc.beam
    micro = c.micro_batches(dec_seqs)
    dec_sc = dataclasses.replace(sc, batch=dec_seqs / micro)
    # Prompts in chunks of ``chunk_tokens`` (0: whole), one pass per chunk: an engine's prompt
    # batch size (llama.cpp's n_batch) re-reads the weights per chunk. Every pass is costed at
    # the mean context (s - chunk)/2: exact for the work, which is linear in the context, and
    # one operator table as for a whole prompt (the same pass when there is one chunk).
    s_new = c.s_new
    chunk = jnp.where((sc.chunk_tokens > 0) & (sc.chunk_tokens < s_new), sc.chunk_tokens, s_new)
    net_pre, net_dec = c.network((sc, chunk * one, None), (dec_sc, c.new_dec, None))
    pre = c.phase(sc, chunk, c.prompt_context(chunk), jnp.ceil(s_new / chunk), single=True, net=net_pre)
    pre = c.hosted(pre, b)
    ttft = pre.wall_s * pipeline_fill_factor(b, platform.pp)
    passes = c.d_passes / c.accepted
    dec_micro = c.phase(dec_sc, c.new_dec, s, passes, growth=c.accepted, net=net_dec)
    dec_micro = c.with_offload(c.with_draft(dec_micro, passes, dec_seqs / micro))
    dec = _times(dec_micro, micro)
    dec_total = c.round_s(dec_micro, micro)
    e_pre, e_dec = c.platform_energy(pre, ttft, platform.dp), c.platform_energy(dec, dec_total, platform.dp)
    out_tokens = c.batch_all * c.outputs
    throughput = out_tokens / (ttft + dec_total)
    tpot = dec_total / jnp.where(c.d_passes > 0, c.d_passes, 1.0)
    decode_rate = jnp.where(dec_total > 0, out_tokens / jnp.where(dec_total > 0, dec_total, 1.0), 0.0)
    # One pass for the batch: every request sees the same TTFT (no wait, no own prompt).
    return _Schedule(pre, dec, one, ttft, ttft, zero, zero, tpot, dec_total, ttft + dec_total, e_pre, e_dec,
                     out_tokens, throughput, decode_rate)  # fmt: skip


class _Round(NamedTuple):
    """One round of a steady-state schedule: every running sequence advances once."""

    pre: PhaseCost
    ttft_static: Array
    work: PhaseCost  # the round's operator work (decode, and the prompts it absorbs)
    t_round: Array
    tpot: Array
    tokens_round: Array  # output tokens per round, one replica
    chunk: Array  # prompt tokens per chunk (the whole prompt without chunking)
    t_prompt: Array  # a new prompt's own time: its pass (continuous) or its chunks' rounds
    curve: ServiceCurve
    one_prompt: PhaseCost  # the prefill pass of one prompt


def _round(c: _Serving, mode: str) -> _Round:
    """Continuous batching in steady state (Orca, Yu et al. OSDI 2022; vLLM): a round is one
    decode pass of the ``running`` sequences at the mean context S + D/2, plus the prefill of
    the prompts that replace the sequences finishing in it (b·S/D tokens): as a pass of its
    own that stalls the round (``continuous``), or in chunks of at most ``chunk_tokens`` that
    ride along in the decode pass (``chunked``: Sarathi-Serve, Agrawal et al. OSDI 2024; GenZ
    Fig. 9; a budget below b·S/D caps the sequences that keep running)."""
    sc, platform = c.scenario, c.platform
    b, s, d, one = sc.batch, sc.prompt_tokens, sc.output_tokens, c.one
    life = d / c.accepted  # iterations a sequence runs
    ctx = s + d / 2.0  # mean context of the running sequences
    s_new = c.s_new  # what a prompt prefills (past its cached prefix)
    if mode == "chunked":
        chunk: Array = jnp.minimum(sc.chunk_tokens, s_new)
        running: Array = jnp.minimum(b, sc.chunk_tokens * life / s_new)
    else:
        chunk = s_new
        running = b
    fed = running * s_new / life  # prompt tokens an iteration absorbs in steady state
    micro = c.micro_batches(running * sc.beam)
    dec_sc = dataclasses.replace(sc, batch=running * sc.beam / micro)
    entering = fed / s_new
    arrivals_sc = dataclasses.replace(sc, batch=jnp.maximum(entering, 1.0))
    one_sc = dataclasses.replace(sc, batch=one)
    # On average a round carries ``fed`` prompt tokens (chunks at their mean prefix);
    # while a new prompt is being fed a round carries a full chunk of it.
    ride = (fed / chunk / micro, chunk, c.prompt_context(chunk)) if mode == "chunked" else None
    full = (jnp.maximum(fed / chunk, 1.0) / micro, chunk, c.prompt_context(chunk))
    # The service curve of requests arriving at a rate (models._queueing): a decode iteration
    # of one request, the prefill pass of one prompt (disaggregated: the prefill pool's pass),
    # and (chunked) decode without chunks; then the pass the mode adds.
    one_dec_sc = dataclasses.replace(sc, batch=sc.beam * one)
    passes = [(sc, s_new * one, None), (dec_sc, c.new_dec, ride), (one_dec_sc, c.new_dec, None),
              (one_sc, s_new * one, None)]  # fmt: skip
    if mode == "chunked":
        passes += [(dec_sc, c.new_dec, None), (dec_sc, c.new_dec, full)]
    elif mode == "continuous":
        passes.append((arrivals_sc, s_new * one, None))
    net_pre, net_it, net_one_dec, net_one_pre, *net_plain = c.network(*passes)
    net_extra = net_plain[-1] if net_plain else c.zero
    pre = c.prompt_pass(net_pre)
    ttft_static = pre.wall_s * pipeline_fill_factor(b, platform.pp)
    it = c.phase(dec_sc, c.new_dec, ctx, one, single=True, chunk=ride, net=net_it)
    t_prompt = c.zero
    if mode == "chunked":
        feeding = c.phase(dec_sc, c.new_dec, ctx, one, single=True, chunk=full, net=net_extra)
        t_prompt = (
            s_new / chunk * c.round_s(c.with_offload(c.with_draft(feeding, one, running * sc.beam / micro)), micro)
        )
    it = c.with_offload(c.with_draft(it, one, running * sc.beam / micro))
    t_round = c.round_s(it, micro)
    work = _times(it, micro)
    if mode == "continuous":
        # The prompts entering run as their own pass and stall the decode: fed/s prompts a
        # round, in one pass of max(fed/s, 1) prompts every min(fed/s, 1) rounds.
        arrivals = c.phase(arrivals_sc, s_new, c.s_past, one, single=True, net=net_extra)
        arrivals = c.hosted(arrivals, arrivals_sc.batch)
        t_prompt = arrivals.wall_s * pipeline_fill_factor(jnp.maximum(entering, 1.0), platform.pp)
        share = jnp.minimum(entering, 1.0)
        t_round = t_round + share * t_prompt
        work = PhaseCost(*(x + share * y for x, y in zip(work, arrivals, strict=True)))
    tokens_round = running * c.accepted
    curve, one_prompt = _service_curve(c, mode, ctx, pre, it, dec_sc, micro, running, net_one_dec, net_one_pre,
                                       net_plain)  # fmt: skip
    return _Round(pre, ttft_static, work, t_round, t_round / c.accepted, tokens_round, chunk, t_prompt, curve,
                  one_prompt)  # fmt: skip


def _service_curve(c: _Serving, mode: str, ctx: Array, pre: PhaseCost, it: PhaseCost, dec_sc: Scenario, micro: Array,
                   running: Array, net_one_dec: Array, net_one_pre: Array,
                   net_plain: list[Array]) -> tuple[ServiceCurve, PhaseCost]:  # fmt: skip
    """The replica's service curve: decode iterations at one request and at ``running``
    sequences (a line between), and prefill passes of one prompt and of the batch's prompts
    (a fixed pass time and a time per prompt token)."""
    sc, one, zero = c.scenario, c.one, c.zero
    s, b = sc.prompt_tokens, sc.batch
    micro_one = c.micro_batches(sc.beam * one)
    one_dec = c.phase(dataclasses.replace(sc, batch=sc.beam / micro_one), c.new_dec, ctx, one, single=True,
                      net=net_one_dec)  # fmt: skip
    step_one = c.round_s(c.with_offload(c.with_draft(one_dec, one, sc.beam / micro_one)), micro_one)
    if mode == "chunked":
        it = c.phase(dec_sc, c.new_dec, ctx, one, single=True, net=net_plain[0])
        it = c.with_offload(c.with_draft(it, one, running * sc.beam / micro))
    step_full = c.round_s(it, micro)
    per_seq = jnp.where(running > 1.0, jnp.maximum(step_full - step_one, 0.0) / jnp.maximum(running - 1.0, 1e-9), 0.0)
    s_new = c.s_new  # the service curve's prompt tokens are those prefilled
    one_prompt = c.phase(dataclasses.replace(sc, batch=one), s_new, c.s_past, one, single=True, net=net_one_pre)
    one_prompt = c.hosted(one_prompt, one)
    p_one, p_all = one_prompt.wall_s, pre.wall_s
    per_token = jnp.where(b > 1.0, jnp.maximum(p_all - p_one, 0.0) / jnp.maximum((b - 1.0) * s_new, 1e-9),
                          p_one / s_new)  # fmt: skip
    pass_s = jnp.maximum(p_one - per_token * s_new, 0.0)
    # Admission reserves a request's whole KV: the tokens the memory beside the weights holds.
    room = jnp.maximum(c.chip.capacity_bytes - c.fp.weight_bytes - c.fp.act_bytes, 0.0) + c.platform.kv_offload_bytes
    kv_tokens = jnp.where(c.kv > 0, room / jnp.maximum(c.kv, 1e-30) * b * (s + sc.output_tokens), jnp.inf)
    curve = ServiceCurve(
        step_s=step_one,
        step_per_seq_s=per_seq,
        pass_s=jnp.where(mode == "chunked", zero, pass_s),
        token_s=per_token,
        slots=b,
        chunk_tokens=jnp.where(mode == "chunked", jnp.minimum(sc.chunk_tokens, s_new), zero),
        kv_tokens=kv_tokens,
        accepted=c.accepted,
    )
    return curve, one_prompt


def _colocated(c: _Serving, r: _Round) -> tuple[Array, Array, Array, Array, Array]:
    """(ttft, wait, prompt part, throughput, J per output token) when prefill and decode share
    the replicas: a request waits half a round on average, then its prompt is fed."""
    ttft_wait = 0.5 * r.t_round
    ttft = ttft_wait + r.t_prompt
    throughput = c.platform.dp * r.tokens_round / r.t_round
    return ttft, ttft_wait, r.t_prompt, throughput, c.platform_energy(r.work, r.t_round, c.one) / r.tokens_round


def _disaggregated(c: _Serving, r: _Round) -> tuple[Array, Array, Array, Array, Array]:
    """(ttft, wait, prompt part, throughput, J per output token) with prefill and decode on
    separate pools (DistServe, Zhong et al. OSDI 2024; Splitwise): ``prefill_share`` of the dp
    replicas prefill one request per pass and send its KV cache over the scale-out network;
    the rest only decode; throughput is that of the slower pool."""
    chip, platform, sc = c.chip, c.platform, c.scenario
    s, d = sc.prompt_tokens, sc.output_tokens
    one_req = r.one_prompt
    kv_request = c.fp.kv_bytes / sc.batch * c.s_new / (s + d)  # the decode pool caches the prefix too
    send = platform.collective_s(chip, c.software, "send_recv", kv_request, 2.0 * c.one, platform.replica_chips)
    ttft = one_req.wall_s + send
    prefill_replicas = platform.dp * platform.prefill_share
    decode_replicas = platform.dp - prefill_replicas
    rate_decode = decode_replicas * r.tokens_round / r.t_round
    rate_prefill = prefill_replicas * d / one_req.wall_s
    throughput = jnp.minimum(rate_decode, rate_prefill)
    busy_p = throughput / jnp.maximum(rate_prefill, 1e-30)
    busy_d = throughput / jnp.maximum(rate_decode, 1e-30)
    # Energy per second of each pool: its work at its utilization, idle otherwise.
    p_pre = c.platform_energy(one_req, one_req.wall_s, prefill_replicas) / one_req.wall_s
    p_dec = c.platform_energy(r.work, r.t_round, decode_replicas) / r.t_round
    idle_w = chip.idle_w * platform.replica_chips
    power = busy_p * p_pre + (1.0 - busy_p) * prefill_replicas * idle_w
    power = power + busy_d * p_dec + (1.0 - busy_d) * decode_replicas * idle_w
    # A request's prefill and KV transfer scale with its prompt; it does not wait for a round.
    return ttft, c.zero, ttft, throughput, power / throughput


def _steady(c: _Serving, mode: str) -> _Schedule:
    """A steady-state schedule: its round, then how its prompts are served."""
    r = _round(c, mode)
    ttft, ttft_wait, ttft_prompt, throughput, j_token = (_disaggregated if mode == "disaggregated" else _colocated)(
        c, r
    )
    out_tokens = c.batch_all * c.scenario.output_tokens
    dec_total = c.scenario.output_tokens * r.tpot
    e_dec = j_token * out_tokens
    e_pre = c.platform_energy(r.pre, r.ttft_static, c.platform.dp)
    rounds = out_tokens / c.platform.dp / r.tokens_round
    return _Schedule(r.pre, r.work, rounds, ttft, r.ttft_static, ttft_wait, ttft_prompt, r.tpot, dec_total,
                     ttft + dec_total, e_pre, e_dec, out_tokens, throughput, throughput, r.curve)  # fmt: skip


def _sram_pipeline(model: Workload, chip: Chip, platform: PlatformSpec, scenario: Scenario) -> PlatformSpec:
    """SRAM-only chips: as many pipeline stages as the weights and KV cache need (GenZ Table
    VII, "Multiple SRAM chips"); the chip count is an output. Activations are those of one
    micro-batch (one sequence) once the model is pipelined."""
    fp1 = model.footprint(scenario, platform.split, jnp.ones_like(platform.pp))
    room = chip.capacity_bytes - fp1.act_bytes * platform.ep / scenario.batch
    stages = jnp.where(
        room > 0, jnp.ceil((fp1.weight_bytes + fp1.kv_bytes) / jnp.maximum(room, 1.0)), model.n_layers + 1.0
    )  # not even one sequence fits: infeasible (pp > layers)
    stages = jnp.minimum(stages, model.n_layers + 1.0)
    return dataclasses.replace(platform, pp=jnp.maximum(platform.pp, stages))


def serve(
    model: Workload,
    chip: Chip,
    platform: PlatformSpec,
    scenario: Scenario,
    economics: EconomicsSpec,
    software: SoftwareParams,
) -> Metrics:
    """Metrics of serving requests on a platform (single configuration).

    ``scenario.batching`` (static) chooses what is served:

    * ``static``: one batch of ``batch`` requests from the first prompt token to the last
      output token (prefill, then decode steps with the context growing, in closed form);
    * ``continuous``: continuous batching in steady state with ``batch`` sequences running
      (Orca, Yu et al. OSDI 2022; vLLM): an iteration is one decode pass of the running
      sequences at the mean context S + D/2, plus the prefill pass of the prompts that replace
      the sequences finishing in it (b·S/D tokens), which stalls that iteration's decode;
    * ``chunked``: as continuous, but prompts enter in chunks of at most ``chunk_tokens``
      tokens that ride along in the decode pass (Sarathi-Serve, Agrawal et al. OSDI 2024; GenZ
      Fig. 9); a budget below b·S/D tokens caps the sequences that can keep running;
    * ``disaggregated``: prefill and decode on separate pools (DistServe, Zhong et al. OSDI
      2024; Splitwise): ``prefill_share`` of the dp replicas prefill one request per pass and
      send its KV cache over the scale-out network; the rest only decode; throughput is that
      of the slower pool.

    Every mode takes speculative decoding (``draft_tokens`` γ, ``acceptance`` α,
    ``draft_cost_ratio``: a draft step's time in verify passes; a verify pass runs γ + 1
    tokens and yields :func:`expected_accepted_tokens`), beam search (``beam`` sequences per
    request in decode; the prompt's KV cache is shared) and a KV offload tier
    (``kv_offload_bytes`` of host memory per chip at ``host_bandwidth_bytes_per_s``: KV that
    does not fit in the chip's memory is read from the host every decode pass, or, with
    ``host_flops_per_s`` > 0, its share of the attention is computed by the host, whichever
    is faster).

    Returns:
        :class:`Metrics`, every field a scalar. In the steady-state modes ``latency_s`` is a
        request's (TTFT + D·TPOT), throughput and energy are per output token of the running
        system, and ``energy_j`` is that of ``batch`` requests' output tokens.
    """
    mode = scenario.batching
    if mode not in BATCHING:
        raise ValueError(f"batching: {mode!r}: expected one of {', '.join(BATCHING)}")
    # What a request yields (output tokens, or one image) and whether it decodes at all
    # (an encoder is one pass; a diffusion model's "decode" passes are its denoising steps).
    unit, decodes = getattr(model, "output_unit", "token"), getattr(model, "decodes", True)
    if unit != "token" and mode != "static":
        raise ValueError(f"batching: {mode!r}: image workloads are served in static batches")
    if hasattr(model, "request_tokens"):  # a VLM's image tokens join the prompt; a ViT's patches
        scenario = dataclasses.replace(scenario, prompt_tokens=model.request_tokens(scenario))
    if chip.chips_from_capacity:
        platform = _sram_pipeline(model, chip, platform, scenario)
    batch_all = scenario.batch
    scenario = dataclasses.replace(scenario, batch=batch_all / platform.dp)  # one of dp replicas
    b, s, d = scenario.batch, scenario.prompt_tokens, scenario.output_tokens
    one, zero = jnp.ones_like(b), jnp.zeros_like(b)
    # Memory: weights, the KV cache (the prompt's shared by the beams) and activations; KV
    # beyond the chip's capacity spills to the host tier, up to its size.
    fp = model.footprint(scenario, platform.split, platform.pp)
    # Speculative decoding holds the draft model beside the target (GenZ §IV-B): its weights and
    # KV cache, split over the chips as the target's.
    drafting = scenario.draft_tokens > 0
    fp = fp._replace(
        weight_bytes=fp.weight_bytes * (1.0 + jnp.where(drafting, scenario.draft_weight_share, 0.0)),
        kv_bytes=fp.kv_bytes * (1.0 + jnp.where(drafting, scenario.draft_kv_share, 0.0)),
    )
    # A prefix every request shares (prefix caching) is held once per replica, not per sequence.
    s_past = jnp.clip(scenario.prefix_tokens, 0.0, s - 1.0)
    kv = fp.kv_bytes * (s - s_past + scenario.beam * d) / (s + d) + fp.kv_bytes / b * s_past / (s + d)
    layers_per_stage = model.n_layers / platform.pp
    depth = platform.pp * chip.layers_in_space(fp.weight_bytes, kv, layers_per_stage)  # decode pipeline depth
    room = jnp.maximum(chip.capacity_bytes - fp.weight_bytes - fp.act_bytes, 0.0)
    c = _Serving(
        model=model,
        chip=chip,
        platform=platform,
        scenario=scenario,
        software=software,
        batch_all=batch_all,
        d_passes=d if decodes else zero,
        outputs=d if unit == "token" else one,
        accepted=expected_accepted_tokens(scenario.acceptance, scenario.draft_tokens),
        new_dec=(1.0 + scenario.draft_tokens) * one,
        fp=fp,
        kv=kv,
        kv_host=jnp.clip(kv - room, 0.0, platform.kv_offload_bytes),
        depth=depth,
        s_new=s - s_past,
        s_past=s_past,
    )
    schedule = _static(c) if mode == "static" else _steady(c, mode)
    # The queue's model only where requests arrive at a rate (a static choice: it triples the
    # compile time of a program); otherwise the saturation rate is the full batch's.
    queue = _under_load(c, schedule, mode) if scenario.arrivals else _closed_queue(c, schedule)
    return _account(c, schedule, queue, economics, mode == "static")


def _closed_queue(c: _Serving, sc: _Schedule) -> Queued:
    """Without arrivals: the running batch always full, no queue; the saturation rate is what
    the full batch serves (requests/s)."""
    sat = sc.throughput / c.outputs
    return Queued(sc.ttft, sc.tpot, (sc.ttft,) * 3, (sc.tpot,) * 3, (sc.latency,) * 3, c.zero, sat, c.batch_all)


def _under_load(c: _Serving, sc: _Schedule, mode: str) -> Queued:
    """The deployment with requests arriving at ``rate_rps`` (Poisson; models._queueing).
    Without a rate: the running batch always full, no queue (the steady state itself)."""
    scenario, platform = c.scenario, c.platform
    lam = scenario.rate_rps
    s, cv, d = c.s_new, scenario.prompt_tokens_cv, scenario.output_tokens  # the prompt tokens prefilled
    if sc.curve is None:
        # Static batches: one batch of ``batch`` at a time per replica; a request waits for the
        # batch under way (uniform, while busy), and for the batches queued before its own: the
        # batches as the customers of one deterministic server (M/D/1: a wait with probability ρ,
        # of mean T/(2(1 − ρ)) then), then sees the batch's own TTFT and TPOT.
        t = sc.latency
        sat = platform.dp * scenario.batch / t
        rho = lam / sat
        p_batch, m_batch = jnp.minimum(rho, 1.0), t / (2.0 * jnp.maximum(1.0 - rho, 1e-30))
        ttft_pct = tuple(
            sc.ttft + t * jnp.clip(p / 100.0 - (1.0 - rho), 0.0, 1.0) + exp_tail_quantile(p_batch, m_batch, p)
            for p in PERCENTILES
        )
        queue = p_batch * m_batch
        ttft = sc.ttft + rho * t / 2.0 + queue
        q = Queued(ttft, sc.tpot, ttft_pct, (sc.tpot,) * 3, tuple(v + sc.dec_total for v in ttft_pct), queue, sat,
                   scenario.batch * jnp.minimum(rho, 1.0))  # fmt: skip
    elif mode == "disaggregated":
        # Prefill pool: prefill_share·dp servers of one prompt each; decode pool: its slots.
        prefill, decode = platform.dp * platform.prefill_share, platform.dp * (1.0 - platform.prefill_share)
        p_one = sc.ttft  # the prompt's pass and its KV transfer
        dec = open_queue(sc.curve._replace(pass_s=c.zero, token_s=c.zero, chunk_tokens=c.zero), lam / decode, s, cv, d)
        rho_p = lam * p_one / prefill
        p_wait, m_wait = slot_wait(jnp.minimum(rho_p, 1.0), prefill, p_one, c.zero)
        extra = tuple(p_one + exp_tail_quantile(p_wait, m_wait, p) for p in PERCENTILES)
        sat = jnp.minimum(dec.saturation_rps * decode, prefill / p_one)
        under = lam < sat
        q = Queued(
            ttft_s=jnp.where(under, dec.ttft_s + p_one + p_wait * m_wait, jnp.inf),
            tpot_s=dec.tpot_s,
            ttft_pct_s=tuple(jnp.where(under, a + b, jnp.inf) for a, b in zip(dec.ttft_pct_s, extra, strict=True)),
            tpot_pct_s=dec.tpot_pct_s,
            latency_pct_s=tuple(
                jnp.where(under, a + b, jnp.inf) for a, b in zip(dec.latency_pct_s, extra, strict=True)
            ),
            queue_s=jnp.where(under, dec.queue_s + p_wait * m_wait, jnp.inf),
            saturation_rps=sat,
            running=dec.running,
        )
    else:
        per_replica = open_queue(sc.curve, lam / platform.dp, s, cv, d)
        q = per_replica._replace(saturation_rps=per_replica.saturation_rps * platform.dp)
    return q


def _attainment(scenario: Scenario, sc: _Schedule, static: bool, zero: Array) -> Array:
    """Share of requests within both SLOs (goodput). A request's TTFT is the wait plus its own
    prompt's time, which scales (to first order) with its length; TPOT is the running batch's,
    the same for every request."""
    ttft_ok = jnp.where(
        static,
        _share_within(scenario.slo_ttft_s, zero, sc.ttft, zero),
        _share_within(scenario.slo_ttft_s, sc.ttft_wait, jnp.maximum(sc.ttft_prompt, 1e-30), scenario.prompt_tokens_cv),
    )
    return ttft_ok * _share_within(scenario.slo_tpot_s, zero, sc.tpot, zero)


# A base's own design sits exactly at its limits; float32 sweeps compute it to about 1e-7.
_SLACK = 1e-5


class _Silicon(NamedTuple):
    die_mm2: Array  # per die
    usd: Array
    die_limit: Array  # the largest die the design may have
    stacks: Array  # HBM stacks (0: none, or not modelled)
    sites: Array  # stacks the dies' edges hold
    density_w_mm2: Array  # TDP over all logic dies (0: no area)
    density_limit: Array  # the most the cooling removes
    carbon_kg: Array  # embodied CO2e of one chip's silicon (0: not modelled)


def _silicon(chip: Chip, zero: Array) -> _Silicon:
    """The design's silicon: modelled from its published silicon, else the published area, no
    cost, and no limit."""
    silicon = chip.design_silicon()
    if silicon is None or chip.silicon is None:
        die = chip.die_area_mm2 + zero
        density = jnp.where(die > 0, chip.design_tdp_w / jnp.where(die > 0, die, 1.0), 0.0)
        return _Silicon(die, zero, jnp.inf + zero, zero, jnp.inf + zero, density, jnp.inf + zero, zero)
    area, stacks, usd, carbon = silicon.die_mm2, silicon.hbm_stacks, silicon.cost_usd, silicon.carbon_kg
    base = chip.silicon
    limit = base.die_mm2 if base.wafer_scale else RETICLE_MM2
    sites = hbm_sites(area, base.dies) if base.stack_bytes_per_s > 0 else jnp.inf
    density = jnp.asarray(chip.design_tdp_w / (area * base.dies))
    # A catalog chip is built and cooled: a variant may reach its base's density, or the cooling's.
    density_limit = max(COOLING_W_PER_MM2, base.density_w_mm2) * (1.0 + _SLACK)
    return _Silicon(
        area + zero,
        usd + zero,
        limit * (1.0 + _SLACK) + zero,
        stacks + zero,
        sites + zero,
        density + zero,
        density_limit + zero,
        carbon + zero,
    )


def _percentile_share(limit: Array, p50: Array, p99: Array) -> Array:
    """Share of requests within ``limit`` (0: none) of a log-normal through the p50 and p99."""
    sigma = jnp.maximum(jnp.log(jnp.maximum(p99, 1e-30) / jnp.maximum(p50, 1e-30)) / _Z99, SLO_SHARPNESS)
    x = (jnp.log(jnp.maximum(limit, 1e-30)) - jnp.log(jnp.maximum(p50, 1e-30))) / sigma
    share = jnp.where(jnp.isfinite(p99), jax.scipy.stats.norm.cdf(x), 0.0)
    return jnp.where(limit > 0.0, share, 1.0)


_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def _closed_percentiles(scenario: Scenario, sc: _Schedule) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """(TTFT, TPOT) at PERCENTILES without arrivals: the running batch full, no queue; a
    request waits up to a round (uniform), then its own prompt (log-normal lengths)."""
    cv2 = scenario.prompt_tokens_cv**2
    sigma = jnp.sqrt(jnp.log1p(cv2))
    z = (0.0, 1.2815515655446004, _Z99)
    ttft = tuple(
        2.0 * sc.ttft_wait * p / 100.0
        + sc.ttft_prompt * jnp.exp(zi * sigma - sigma * sigma / 2.0)
        + (sc.ttft - sc.ttft_wait - sc.ttft_prompt)
        for p, zi in zip(PERCENTILES, z, strict=True)
    )
    return ttft, (sc.tpot,) * len(PERCENTILES)


def _account(c: _Serving, sc: _Schedule, q: Queued, economics: EconomicsSpec, static: bool) -> Metrics:
    """The accounting every schedule shares: energy with the hosts, feasibility, cost,
    goodput and the utilization and intensity of the work."""
    model, chip, platform, scenario = c.model, c.chip, c.platform, c.scenario
    s, zero, fp, kv, kv_host = scenario.prompt_tokens, c.zero, c.fp, c.kv, c.kv_host
    n_chips, batch_all, pre, dec = platform.n_chips, c.batch_all, sc.pre, sc.dec
    ttft, tpot, latency, out_tokens, throughput = sc.ttft, sc.tpot, sc.latency, sc.out_tokens, sc.throughput
    # Hosts, switches and NICs of the platform draw their power whenever it serves.
    host_w = platform.host_power_w * n_chips
    e_pre = sc.e_pre + host_w * (ttft if static else sc.ttft_static)
    e_dec = sc.e_dec + host_w * (sc.dec_total if static else out_tokens / throughput)
    energy = e_pre + e_dec if static else e_dec
    # Feasibility (infeasible is a value: outputs stay finite).
    memory = fp.weight_bytes + kv - kv_host + fp.act_bytes
    reason = jnp.where(memory > chip.capacity_bytes, Infeasible.MEMORY, 0)
    reason = jnp.where(platform.tp > model.max_tp, Infeasible.TP_BEYOND_HEADS, reason)
    reason = jnp.where(platform.pp > model.n_layers, Infeasible.PP_BEYOND_LAYERS, reason)
    reason = jnp.where(platform.ep > model.max_ep, Infeasible.EP_BEYOND_EXPERTS, reason)
    si = _silicon(chip, zero)
    die = si.die_mm2
    reason = jnp.where(jnp.ceil(si.stacks * (1.0 - _SLACK)) > si.sites, Infeasible.HBM_SHORELINE, reason)
    reason = jnp.where(die > si.die_limit, Infeasible.DIE_TOO_LARGE, reason)
    reason = jnp.where(si.density_w_mm2 > si.density_limit, Infeasible.POWER_DENSITY, reason)
    price = chip.design_price_usd
    span = out_tokens / throughput  # seconds the platform takes for the batch's output tokens
    busy_span = latency if static else span
    avg_power = energy / busy_span
    usd = usd_per_million_tokens(economics, price * n_chips, avg_power, busy_span, out_tokens)
    defined = jnp.isfinite(ttft) & jnp.isfinite(latency) & jnp.isfinite(energy) & jnp.isfinite(usd)
    reason = jnp.where(defined, reason, Infeasible.UNDEFINED)  # flagged with its reason, never a silent NaN
    attainment = _attainment(scenario, sc, static, zero)
    ttft_pct, tpot_pct = _closed_percentiles(scenario, sc)
    latency_pct = tuple(t + sc.dec_total for t in ttft_pct)
    queue = zero
    # Requests arriving at a rate: the latencies of the queue, the tokens it is given (at most
    # the saturation rate's), power between idle and the full batch's by the utilization.
    lam = scenario.rate_rps
    loaded = lam > 0
    reason = jnp.where((reason == 0) & loaded & (lam >= q.saturation_rps), Infeasible.SATURATED, reason)
    rate_tokens = jnp.minimum(lam, q.saturation_rps) * c.outputs
    utilization = jnp.clip(rate_tokens / throughput, 0.0, 1.0)
    idle_w = (chip.idle_w + platform.host_power_w) * n_chips
    power = idle_w + jnp.maximum(avg_power - idle_w, 0.0) * utilization
    safe_tokens = jnp.where(loaded, rate_tokens, 1.0)
    ttft = jnp.where(loaded, q.ttft_s, ttft)
    tpot = jnp.where(loaded, q.tpot_s, tpot)
    latency = jnp.where(loaded, q.ttft_s + c.d_passes * q.tpot_s, latency)
    energy = jnp.where(loaded, power / safe_tokens * out_tokens, energy)
    usd = jnp.where(
        loaded, usd_per_million_tokens(economics, price * n_chips, power, jnp.ones_like(power), safe_tokens), usd
    )
    avg_power = jnp.where(loaded, power, avg_power)
    throughput = jnp.where(loaded, rate_tokens, throughput)
    ttft_pct, tpot_pct, latency_pct = (
        tuple(jnp.where(loaded, a, b) for a, b in zip(qs, cs, strict=True))
        for qs, cs in ((q.ttft_pct_s, ttft_pct), (q.tpot_pct_s, tpot_pct), (q.latency_pct_s, latency_pct))
    )
    queue = jnp.where(loaded, q.queue_s, queue)
    attainment = jnp.where(
        loaded,
        _percentile_share(scenario.slo_ttft_s, ttft_pct[0], ttft_pct[-1])
        * _percentile_share(scenario.slo_tpot_s, tpot_pct[0], tpot_pct[-1]),
        attainment,
    )
    curve = sc.curve if sc.curve is not None else ServiceCurve(*(zero,) * len(ServiceCurve._fields))
    peak = chip.peak_flops_per_s(widest(scenario.weight_dtype, scenario.act_dtype))
    bw = chip.memory_bandwidth_bytes_per_s  # type: ignore[attr-defined]  # every family declares it
    work_chips = platform.stage_chips * platform.dp  # layers are split over pp: tp·ep·dp copies in all
    dec_flops = work_chips * dec.flops * sc.rounds
    dec_bytes = work_chips * dec.bytes * sc.rounds
    flops_all = work_chips * pre.flops + dec_flops
    bytes_all = work_chips * pre.bytes + dec_bytes
    return Metrics(
        ttft_s=ttft,
        tpot_s=tpot,
        tokens_per_s_per_user=jnp.where(tpot > 0, 1.0 / jnp.where(tpot > 0, tpot, 1.0), 0.0),
        latency_s=latency,
        prefill_latency_s=ttft,
        decode_latency_s=sc.dec_total,
        throughput_tokens_per_s=throughput,
        throughput_tokens_per_s_per_chip=throughput / n_chips,
        prefill_tokens_per_s=batch_all * s / sc.ttft_static,
        decode_tokens_per_s_per_chip=sc.decode_rate / n_chips,
        energy_j=energy,
        prefill_energy_j=e_pre,
        decode_energy_j=e_dec,
        j_per_token=energy / out_tokens,
        prefill_j_per_token=e_pre / (batch_all * s),
        decode_j_per_token=e_dec / out_tokens,
        tokens_per_kwh=out_tokens / energy * 3.6e6,
        average_power_w=avg_power,
        tdp_w=chip.design_tdp_w * jnp.ones_like(avg_power),
        chip_price_usd=price + zero,
        die_area_mm2=die,
        silicon_cost_usd=si.usd,
        embodied_carbon_kg=si.carbon_kg,
        die_fill=die / si.die_limit,
        hbm_stacks=si.stacks,
        hbm_fill=si.stacks / si.sites,
        power_density_w_mm2=si.density_w_mm2,
        power_density_fill=jnp.where(jnp.isfinite(si.density_limit), si.density_w_mm2 / si.density_limit, 0.0),
        usd_per_mtok=usd,
        gco2_per_mtok=gco2_per_million_tokens(economics, energy, out_tokens),
        memory_per_chip_bytes=memory,
        memory_fill=memory / chip.capacity_bytes,
        weight_bytes_per_chip=fp.weight_bytes,
        kv_bytes_per_chip=kv - kv_host,
        feasible=reason == 0,
        infeasible_reason=reason,
        mfu=flops_all / (busy_span * n_chips * peak),
        mbu=bytes_all / (busy_span * n_chips * bw),
        prefill_mfu=work_chips * pre.flops / (sc.ttft_static * n_chips * peak),
        decode_mbu=dec_bytes / ((sc.dec_total if static else span) * n_chips * bw),
        arithmetic_intensity_flop_per_byte=flops_all / bytes_all,
        prefill_arithmetic_intensity_flop_per_byte=pre.flops / pre.bytes,
        decode_arithmetic_intensity_flop_per_byte=dec.flops / dec.bytes,
        flops=flops_all,
        prefill_flops=work_chips * pre.flops,
        decode_flops=dec_flops,
        bound=_bound(PhaseCost(*(a + c for a, c in zip(pre, dec, strict=True)))),
        prefill_bound=_bound(pre),
        decode_bound=_bound(dec),
        network_s=pre.network_s + dec.network_s,
        n_chips=n_chips,
        slo_attainment=attainment,
        goodput_tokens_per_s=throughput * attainment,
        p50_ttft_s=ttft_pct[0],
        p90_ttft_s=ttft_pct[1],
        p99_ttft_s=ttft_pct[2],
        p50_tpot_s=tpot_pct[0],
        p90_tpot_s=tpot_pct[1],
        p99_tpot_s=tpot_pct[2],
        p50_latency_s=latency_pct[0],
        p90_latency_s=latency_pct[1],
        p99_latency_s=latency_pct[2],
        queue_delay_s=queue,
        saturation_rate_rps=q.saturation_rps,
        running_sequences=jnp.where(loaded, q.running * platform.dp, batch_all),
        step_s=curve.step_s,
        step_per_sequence_s=curve.step_per_seq_s,
        prefill_pass_s=curve.pass_s,
        prefill_per_token_s=curve.token_s,
        kv_capacity_tokens=curve.kv_tokens,
        requests_per_s=throughput / c.outputs,
        j_per_request=energy / batch_all,
        usd_per_k_requests=usd * c.outputs / 1e3,
    )


def gemm_cost(chip: Chip, software: SoftwareParams, m: Array, n: Array, k: Array, dtype: str) -> tuple[Array, Array]:
    """Latency (s) and energy (J) of one GEMM on one chip: roofline time plus launch overhead."""
    ops = gemm_operator(m, n, k, dtype)
    c = chip.operator_cost(software, ops, dtype, dtype, dtype)
    t = jnp.maximum(c.compute_s, c.memory_s) + c.overhead_s
    return t[0], chip.work_energy_j(t, ops.flops, ops.bytes, ops, dtype, dtype)[0]
