"""Serving metrics of one configuration: a request batch on a platform of chips.

Prefill of S prompt tokens, then D decode steps with the context growing from S to
S + D − 1, summed in closed form (DESIGN rule 5): the operator table is affine in the
context, so each operator's compute and memory times are affine in the step index, and
the sum over steps of their maximum is the sum of a piecewise-linear function with one
kink (:func:`sum_max_affine`).

References:
  InferBench research note (seeds/000): roofline, power model, decode table.
  GenZ (seeds/003) §III (prefill/decode stages, TP/PP, collectives), Eq. 2 (energy).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from models._economics import EconomicsSpec, usd_per_million_tokens
from models._interface import Chip, Scenario, SoftwareParams, Workload, widest
from models.platform import PlatformSpec, pipeline_fill_factor
from models.workloads import gemm_operator

Array = jax.Array

BOUND_NAMES = ("compute", "memory", "network", "overhead")
INFEASIBLE_REASONS = (
    "ok",
    "memory: model and KV cache exceed the chip capacity",
    "tp exceeds the attention heads",
    "pp exceeds the layers",
    "undefined: a latency, energy or cost is not finite (inputs outside the model's range)",
    "ep exceeds the experts",
)


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


def _times(ph: PhaseCost, m: Array) -> PhaseCost:
    """The work of ``m`` executions of a phase (wall time is the caller's: it overlaps)."""
    return PhaseCost(*(x * m for x in ph))


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
) -> PhaseCost:
    """Cost of ``n_passes`` passes of ``new_tokens`` tokens with the context growing by
    ``new_tokens`` each pass from ``past_first``, summed in closed form. ``single`` (static)
    says that there is one pass, which skips the second table."""
    tp, pp, split = platform.tp, platform.pp, platform.split
    dt = (scenario.weight_dtype, scenario.act_dtype, scenario.kv_dtype)
    first = model.operator_table(scenario, split, new_tokens, past_first)
    c0 = chip.operator_cost(software, first, *dt)
    if single:
        last, c1 = first, c0
        op_roof = jnp.maximum(c0.compute_s, c0.memory_s) * n_passes
    else:
        last = model.operator_table(scenario, split, new_tokens, past_first + new_tokens * (n_passes - 1.0))
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
    mean = lambda x0, x1: n_passes * (x0 + x1) / 2.0  # noqa: E731
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
    # Communication per pass (GenZ §III-C) on the platform's network levels, TP innermost:
    # the workload's all-reduces of every layer among tp neighbours, its all-to-alls among
    # the ep groups (tp chips apart), and pp − 1 stage-to-stage transfers (tp·ep apart).
    comm = model.layer_comm(scenario, split, new_tokens)
    allreduce = platform.collective_s(chip, software, "all_reduce", comm.allreduce_bytes, tp, jnp.ones_like(tp))
    alltoall = platform.collective_s(chip, software, "all_to_all", comm.alltoall_bytes, platform.ep, tp)
    hop = platform.collective_s(
        chip, software, "send_recv", comm.stage_bytes, 2.0 * jnp.ones_like(pp), tp * platform.ep
    )
    net = model.n_layers * (comm.allreduces * allreduce + comm.alltoalls * alltoall) + (pp - 1.0) * hop
    framework_s = software.pass_overhead_s(scenario.batch / platform.ep)
    busy = op_time.sum()
    # A share ``overlap`` of the communication may run under the compute of the pass (GenZ
    # §III-C's overlap knob); what does not fit under it stays exposed.
    per_pass = busy / n_passes
    exposed = (1.0 - platform.overlap) * net + jnp.maximum(platform.overlap * net - per_pass, 0.0)
    return PhaseCost(
        busy_s=busy,
        compute_s=jnp.where(compute_bound, op_roof * rep, 0.0).sum(),
        memory_s=jnp.where(compute_bound, 0.0, op_roof * rep).sum(),
        overhead_s=(op_over * rep).sum() + n_passes * framework_s,
        network_s=n_passes * exposed,
        wall_s=busy + n_passes * (exposed + framework_s),
        chip_energy_j=energy.sum(),
        flops=(op_flops * rep).sum(),
        bytes=(op_bytes * rep).sum(),
    )


def _bound(ph: PhaseCost) -> Array:
    """Index into BOUND_NAMES of the largest time component."""
    return jnp.argmax(jnp.stack([ph.compute_s, ph.memory_s, ph.network_s, ph.overhead_s]))


class Metrics(NamedTuple):
    """Outputs of one configuration (whole request unless the name says a phase).

    Units are in the names; counts of tokens are output tokens unless stated.
    """

    ttft_s: Array
    tpot_s: Array
    latency_s: Array
    prefill_latency_s: Array
    decode_latency_s: Array
    throughput_tokens_per_s: Array
    throughput_tokens_per_s_per_chip: Array
    prefill_tokens_per_s: Array
    decode_tokens_per_s_per_chip: Array
    energy_j: Array
    prefill_energy_j: Array
    decode_energy_j: Array
    j_per_token: Array
    prefill_j_per_token: Array
    decode_j_per_token: Array
    tokens_per_kwh: Array
    average_power_w: Array
    usd_per_mtok: Array
    memory_per_chip_bytes: Array
    weight_bytes_per_chip: Array
    kv_bytes_per_chip: Array
    feasible: Array
    infeasible_reason: Array
    mfu: Array
    mbu: Array
    prefill_mfu: Array
    decode_mbu: Array
    arithmetic_intensity_flop_per_byte: Array
    prefill_arithmetic_intensity_flop_per_byte: Array
    decode_arithmetic_intensity_flop_per_byte: Array
    flops: Array
    prefill_flops: Array
    decode_flops: Array
    bound: Array
    prefill_bound: Array
    decode_bound: Array
    network_s: Array
    n_chips: Array


def serve(
    model: Workload,
    chip: Chip,
    platform: PlatformSpec,
    scenario: Scenario,
    economics: EconomicsSpec,
    software: SoftwareParams,
) -> Metrics:
    """Metrics of serving one request batch on one model replica (single configuration).

    Args:
        model: a workload (scalar leaves).
        chip: a chip of any family (scalar leaves; the class is the static family).
        platform: TP and PP degrees (chips = tp·pp).
        scenario: batch B, prompt S, output tokens D, dtypes.
        economics: TCO parameters.
        software: efficiency level (ideal, achievable or calibrated).

    Returns:
        :class:`Metrics`, every field a scalar.
    """
    if chip.chips_from_capacity:
        # SRAM-only chips: as many pipeline stages as the weights and KV cache need
        # (GenZ Table VII, "Multiple SRAM chips"); the chip count is an output.
        # Activations are those of one micro-batch (one sequence) once the model is pipelined.
        fp1 = model.footprint(scenario, platform.split, jnp.ones_like(platform.pp))
        room = chip.capacity_bytes - fp1.act_bytes * platform.ep / scenario.batch
        stages = jnp.where(
            room > 0, jnp.ceil((fp1.weight_bytes + fp1.kv_bytes) / jnp.maximum(room, 1.0)), model.n_layers + 1.0
        )  # not even one sequence fits: infeasible (pp > layers)
        stages = jnp.minimum(stages, model.n_layers + 1.0)
        platform = dataclasses.replace(platform, pp=jnp.maximum(platform.pp, stages))
    tp, pp, dp = platform.tp, platform.pp, platform.dp
    stage_chips = platform.stage_chips  # chips that each do one stage's share of every row
    n_chips = platform.n_chips
    replicas = dp  # independent replicas, each serving batch/dp sequences
    batch_all = scenario.batch
    scenario = dataclasses.replace(scenario, batch=batch_all / dp)
    b, s, d = scenario.batch, scenario.prompt_tokens, scenario.output_tokens
    zero = jnp.zeros_like(b)
    pre = _phase(model, chip, software, scenario, platform, s, zero, jnp.ones_like(b), single=True)
    # Decode keeps m = min(pp, B) micro-batches of B/m sequences in flight, one per stage in
    # steady state (as vLLM and TensorRT-LLM schedule pipeline-parallel decode).
    # (At least one micro-batch, so that pp = 1 has no kink at all; at b = pp the gradient is
    # that of pp's side, not split between both.)
    micro = jnp.where(b < pp, jnp.maximum(b, 1.0), pp)
    dec_micro = _phase(
        model, chip, software, dataclasses.replace(scenario, batch=b / micro), platform, jnp.ones_like(b), s, d
    )
    dec = _times(dec_micro, micro)

    # Wall time. Prefill: B sequences as micro-batches fill the pipeline (GPipe). Decode: a
    # round advances every sequence by one token; each micro-batch crosses all pp stages in
    # turn (a pass, stage hops included) and each stage serves the m micro-batches in turn,
    # so a round takes max(m, pp) stage-times of 1/pp pass: one pass of a micro-batch when
    # m = pp, and the per-token latency a sequence sees.
    ttft = pre.wall_s * pipeline_fill_factor(b, pp)
    dec_total = dec_micro.wall_s * jnp.maximum(micro, pp) / pp
    latency = ttft + dec_total

    # Energy of the whole platform: in each replica, tp·ep chips do every operator row of all
    # layers (each stage its share); the rest of the chip-time is idle (GenZ Eq. 2, U = 0).
    def platform_energy(ph: PhaseCost, wall: Array) -> Array:
        idle_chip_s = jnp.maximum(platform.replica_chips * wall - stage_chips * ph.busy_s, 0.0)
        return replicas * (stage_chips * ph.chip_energy_j + chip.idle_w * idle_chip_s)

    e_pre, e_dec = platform_energy(pre, ttft), platform_energy(dec, dec_total)
    energy = e_pre + e_dec
    b = batch_all  # from here on, the whole platform
    out_tokens = b * d
    # Memory and feasibility (infeasible is a value: outputs stay finite).
    fp = model.footprint(scenario, platform.split, pp)
    reason = jnp.where(fp.total_bytes > chip.capacity_bytes, 1, 0)
    reason = jnp.where(tp > model.max_tp, 2, reason)
    reason = jnp.where(pp > model.n_layers, 3, reason)
    reason = jnp.where(platform.ep > model.max_ep, 5, reason)
    avg_power = energy / latency
    usd = usd_per_million_tokens(economics, chip.price_usd * n_chips, avg_power, latency, out_tokens)
    defined = jnp.isfinite(ttft) & jnp.isfinite(latency) & jnp.isfinite(energy) & jnp.isfinite(usd)
    reason = jnp.where(defined, reason, 4)  # flagged with its reason, never a silent NaN
    gemm_dtype = widest(scenario.weight_dtype, scenario.act_dtype)
    peak = chip.peak_flops_per_s(gemm_dtype)
    bw = chip.memory_bandwidth_bytes_per_s
    work_chips = stage_chips * replicas  # layers are split over pp: tp·ep·dp copies in all
    flops_all = work_chips * (pre.flops + dec.flops)
    bytes_all = work_chips * (pre.bytes + dec.bytes)
    return Metrics(
        ttft_s=ttft,
        tpot_s=dec_total / d,
        latency_s=latency,
        prefill_latency_s=ttft,
        decode_latency_s=dec_total,
        throughput_tokens_per_s=out_tokens / latency,
        throughput_tokens_per_s_per_chip=out_tokens / latency / n_chips,
        prefill_tokens_per_s=b * s / ttft,
        decode_tokens_per_s_per_chip=out_tokens / dec_total / n_chips,
        energy_j=energy,
        prefill_energy_j=e_pre,
        decode_energy_j=e_dec,
        j_per_token=energy / out_tokens,
        prefill_j_per_token=e_pre / (b * s),
        decode_j_per_token=e_dec / out_tokens,
        tokens_per_kwh=out_tokens / energy * 3.6e6,
        average_power_w=avg_power,
        usd_per_mtok=usd,
        memory_per_chip_bytes=fp.total_bytes,
        weight_bytes_per_chip=fp.weight_bytes,
        kv_bytes_per_chip=fp.kv_bytes,
        feasible=reason == 0,
        infeasible_reason=reason,
        mfu=flops_all / (latency * n_chips * peak),
        mbu=bytes_all / (latency * n_chips * bw),
        prefill_mfu=work_chips * pre.flops / (ttft * n_chips * peak),
        decode_mbu=work_chips * dec.bytes / (dec_total * n_chips * bw),
        arithmetic_intensity_flop_per_byte=(pre.flops + dec.flops) / (pre.bytes + dec.bytes),
        prefill_arithmetic_intensity_flop_per_byte=pre.flops / pre.bytes,
        decode_arithmetic_intensity_flop_per_byte=dec.flops / dec.bytes,
        flops=flops_all,
        prefill_flops=work_chips * pre.flops,
        decode_flops=work_chips * dec.flops,
        bound=_bound(PhaseCost(*(a + c for a, c in zip(pre, dec, strict=True)))),
        prefill_bound=_bound(pre),
        decode_bound=_bound(dec),
        network_s=pre.network_s + dec.network_s,
        n_chips=n_chips,
    )


def gemm_cost(chip: Chip, software: SoftwareParams, m: Array, n: Array, k: Array, dtype: str) -> tuple[Array, Array]:
    """Latency (s) and energy (J) of one GEMM on one chip: roofline time plus launch overhead."""
    ops = gemm_operator(m, n, k, dtype)
    c = chip.operator_cost(software, ops, dtype, dtype, dtype)
    t = jnp.maximum(c.compute_s, c.memory_s) + c.overhead_s
    return t[0], chip.work_energy_j(t, ops.flops, ops.bytes, ops, dtype, dtype)[0]
