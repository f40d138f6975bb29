"""Collectives on a network hierarchy: the algorithms a library chooses among, per level.

A platform's network is a list of levels (:class:`Level`): a scale-up domain (NVLink and
NVSwitch, ICI torus, LPU chip-to-chip links, a wafer's fabric) and a scale-out network
(InfiniBand or Ethernet NICs). A collective over ``n`` chips placed ``stride`` chips apart
has ``n0`` participants inside each scale-up domain and ``n1 = n / n0`` domains.

Each algorithm is an α–β cost (Hockney): a fixed software launch, a number of sequential
steps each paying the hop latency plus a software step latency, and the bytes each chip
sends over its link divided by the link bandwidth times a software efficiency. A library
picks the fastest algorithm for the message size; we take a smooth minimum (a p-norm) so
that gradients flow to every parameter, and it never exceeds the fastest algorithm.

References:
  Thakur, Rabenseifner & Gropp, "Optimization of collective communication operations in
    MPICH", IJHPCA 2005: ring, recursive and direct algorithms and their α–β costs.
  Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms", JPDC 2009: ring all-reduce
    moves 2(n−1)/n of the message over each link in 2(n−1) steps.
  Sanders, Speck & Träff, "Two-tree algorithms for full bandwidth broadcast, reduction and
    scan", Parallel Computing 2009 (NCCL's double binary trees): 2·log2(n) steps.
  NVIDIA NVLink SHARP (NVLS, Hopper NVSwitch): the switch reduces, each GPU sends and
    receives the message once.
  vLLM custom all-reduce (vllm/distributed/device_communicators/custom_all_reduce.cuh) and
    TensorRT-LLM's: one-shot (every GPU reads all peers' buffers) and two-shot
    (reduce-scatter then all-gather through peer memory), one kernel, one or two barriers.
  GenZ (docs/references.md#genz) §III-C: collective patterns per parallelism, hierarchical platforms.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp

from models._interface import SoftwareParams
from models._pytree import Array

# Topologies of a network level (static structure).
#   switch         every chip one hop from every other through a switch (NVSwitch, IB, Ethernet)
#   switch_reduce  a switch that reduces in the network (NVLink SHARP, InfiniBand SHARP)
#   full           point-to-point links between every pair (MI300X xGMI, LPU chip-to-chip)
#   ring, torus2d, torus3d   direct links to neighbours only (TPU ICI, wafer meshes)
TOPOLOGIES = ("switch", "switch_reduce", "full", "ring", "torus2d", "torus3d")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")

# Exponent of the smooth minimum over algorithms: (Σ t_i^−p)^(−1/p) is below the fastest
# algorithm by at most a factor k^(1/p) where k algorithms tie (9 % for 2, p = 8).
SMOOTH_MIN_POWER = 8  # a power of two: the p-norm is squarings and square roots, no pow
_NEVER_S = 1e3  # the time of an algorithm a stack does not have (drops out of the minimum)


class Level(NamedTuple):
    """One level of a network as a collective sees it."""

    n: Array  # participants at this level
    bandwidth_bytes_per_s: Array  # per chip, per direction, at this level
    latency_s: Array  # hardware latency of one hop
    topology: str  # one of TOPOLOGIES (static)


def smooth_min(*times: Array) -> Array:
    """A differentiable minimum of positive times (p-norm), monotone in every argument."""
    p = SMOOTH_MIN_POWER
    # Times floored at 1e-30 s (a zero time, e.g. no collective, would give 0^−p = ∞ and a NaN
    # gradient); scaled by the smallest for numerical range.
    ts = [jnp.maximum(t, 1e-30) for t in jnp.broadcast_arrays(*times)]
    lo = functools.reduce(jnp.minimum, ts)  # elementwise: a stack and reduction would be stored
    # lo · (Σ (lo/t)^p)^(−1/p): (lo/t)^p by squarings and the p-th root by square roots (p a
    # power of two), what a float exponent's pow costs ~20× more for on CPUs.
    norm = sum((lo / t) ** p for t in ts)
    for _ in range(p.bit_length() - 1):
        norm = jnp.sqrt(norm)
    return lo / norm


def _dims(topology: str) -> float:
    return {"ring": 1.0, "torus2d": 2.0, "torus3d": 3.0}.get(topology, 0.0)


def _ring_steps(lv: Level) -> Array:
    """Sequential steps of a reduce-scatter or all-gather phase: n − 1 on a ring or through a
    switch; on a D-dimensional torus of side k = n^(1/D), D·(k − 1) (one ring per dimension)."""
    d = _dims(lv.topology)
    if d == 0.0:
        return lv.n - 1.0
    return d * (jnp.maximum(lv.n, 1.0) ** (1.0 / d) - 1.0)


def level_collective_s(
    collective: str, message_bytes: Array | float, lv: Level, sw: SoftwareParams, direct: bool = True
) -> Array:
    """Time of one collective among ``lv.n`` chips of one level.

    ``message_bytes`` is the buffer of one chip: the vector reduced (all-reduce), the result
    gathered (all-gather), the input scattered (reduce-scatter), everything a chip sends to
    all others including its own share (all-to-all), the payload (send/recv). Zero for n ≤ 1.
    ``direct`` (static): the one-kernel algorithms through peer memory exist on this level
    (a scale-up domain; not across NICs, where framework all-reduces fall back to the library).
    """
    n, bw, topo = lv.n, lv.bandwidth_bytes_per_s, lv.topology
    hop = lv.latency_s + sw.collective_latency_s
    copy_bw = bw * sw.link_efficiency
    reduce_bw = bw * sw.reduce_efficiency
    launch = sw.collective_launch_s
    frac = (n - 1.0) / jnp.maximum(n, 1.0)  # share of the buffer that leaves a chip
    steps = _ring_steps(lv)
    switched = topo in ("switch", "switch_reduce", "full")
    peer_memory = switched and direct
    # Direct (one-kernel) algorithms need every peer one hop away; their launch is a kernel's.
    direct_launch = sw.kernel_overhead_s + (1.0 - sw.direct_allreduce) * _NEVER_S
    if collective == "all_reduce":
        launch = launch + sw.reduce_launch_s
        algos = [launch + 2.0 * steps * hop + 2.0 * frac * message_bytes / reduce_bw]  # ring
        if switched:
            # Double binary tree: 2·log2 n steps; each chip sends and receives the message
            # about twice (up and down the trees).
            log_n = jnp.log2(jnp.maximum(n, 1.0))
            algos.append(launch + 2.0 * log_n * hop + 2.0 * message_bytes / reduce_bw)
        if peer_memory:
            # One-shot: each chip reads the n − 1 peer buffers, one barrier (two hops).
            algos.append(direct_launch + 2.0 * lv.latency_s + (n - 1.0) * message_bytes / reduce_bw)
            # Two-shot: reduce-scatter then all-gather through peer memory, two barriers.
            algos.append(direct_launch + 4.0 * lv.latency_s + 2.0 * frac * message_bytes / reduce_bw)
        if topo == "switch_reduce":
            # In-network reduction: the message goes up to the switch once and comes back once.
            algos.append(launch + 2.0 * hop + message_bytes / reduce_bw)
        t = smooth_min(*algos)
    elif collective in ("all_gather", "reduce_scatter"):
        reducing = collective == "reduce_scatter"
        link = reduce_bw if reducing else copy_bw
        launch = launch + (sw.reduce_launch_s if reducing else 0.0)
        algos = [launch + steps * hop + frac * message_bytes / link]  # ring
        if peer_memory:
            algos.append(direct_launch + 2.0 * lv.latency_s + frac * message_bytes / link)  # direct
        t = smooth_min(*algos)
    elif collective == "all_to_all":
        # Through a switch or full mesh every pair exchanges at once: one step. On a ring or
        # torus a byte crosses on average k/4 links of each of the D rings (bidirectional),
        # sharing the links with other pairs' traffic.
        d = _dims(topo)
        if d == 0.0:
            t = launch + hop + frac * message_bytes / copy_bw
        else:
            side = jnp.maximum(n, 1.0) ** (1.0 / d)
            t = launch + d * side / 2.0 * hop + frac * message_bytes / copy_bw * jnp.maximum(side / 4.0, 1.0)
    elif collective == "send_recv":
        t = launch + hop + message_bytes / copy_bw
    else:
        raise ValueError(f"collective: {collective!r}: expected one of {', '.join(COLLECTIVES)}")
    return jnp.where(n > 1.0, t, 0.0)


def collective_s(
    collective: str,
    message_bytes: Array | float,
    n: Array | float,
    stride: Array,
    levels: Sequence[Level],
    sw: SoftwareParams,
    direct: bool = True,
) -> Array:
    """Time of one collective over ``n`` chips placed ``stride`` chips apart on a network of
    nested levels (GenZ Table IX: e.g. a scale-up switch, a scale-out switch, a ring of pods).
    ``levels[k].n`` is the chips of one domain of level k (nested: a level-k domain holds whole
    level-(k−1) domains); the last level joins the domains of the one before (its ``n`` unused).

    Members of the collective inside one domain of level k: m_k = clip(n_k / stride, 1, n).
    Hierarchical algorithms (NCCL's for multi-node, GenZ §III-C), level by level:
      all-reduce = reduce-scatter in the innermost domain + all-reduce of 1/m_0 over the
                   domains + all-gather (costed as the domain's all-reduce plus the outer one,
                   itself hierarchical on the outer levels);
      all-gather, reduce-scatter = the domain's and the outer one of 1/m_0;
      all-to-all = each level's share of the destinations sent concurrently;
      send/recv  = for ``n = 2`` neighbours ``stride`` apart: the share of such pairs whose
                   domains differ first at level k (clip(stride / n_{k−1}) − clip(stride / n_k))
                   crosses level k.
    ``direct`` (static): the one-kernel peer-memory algorithms exist in the innermost domain
    (the outer levels are reached through NICs).
    """
    n_all = jnp.maximum(n, 1.0)
    stride = jnp.maximum(stride, 1.0)
    if collective == "send_recv":
        pair = 2.0 * jnp.ones_like(n_all)
        crossing = [jnp.clip(stride / lv.n, 0.0, 1.0) for lv in levels[:-1]] + [jnp.zeros_like(n_all)]
        t, inside = jnp.zeros_like(n_all), jnp.ones_like(n_all)
        for lv, p in zip(levels, crossing, strict=True):
            t = t + (inside - p) * level_collective_s("send_recv", message_bytes, lv._replace(n=pair), sw)
            inside = p
        return jnp.where(n > 1.0, t, 0.0)
    up = levels[0]
    n0 = jnp.clip(up.n / stride, 1.0, n_all) if len(levels) > 1 else n_all
    one = level_collective_s(collective, message_bytes, up._replace(n=n0), sw, direct=direct)
    if len(levels) == 1:
        return one
    n1 = n_all / n0
    if collective in ("all_reduce", "all_gather", "reduce_scatter"):
        # Across domains each chip handles its 1/n0 share, on the outer levels (a flat ring over
        # all n chips is bound by the outer link: never faster while the inner one is faster).
        across_s = collective_s(collective, message_bytes / n0, n1, stride * n0, levels[1:], sw, direct=False)
        return jnp.where(n1 > 1.0, one + across_s, one)
    elif collective == "all_to_all":
        members = [n0] + [jnp.clip(lv.n / stride, 1.0, n_all) for lv in levels[1:-1]] + [n_all]
        share_s = [(members[0] - 1.0) / n_all * message_bytes / (up.bandwidth_bytes_per_s * sw.link_efficiency)]
        hops = up.latency_s + 2.0 * sw.collective_latency_s
        for lv, inner, outer in zip(levels[1:], members[:-1], members[1:], strict=True):
            share_s.append((outer - inner) / n_all * message_bytes / (lv.bandwidth_bytes_per_s * sw.link_efficiency))
            hops = hops + jnp.where(outer > inner, lv.latency_s, 0.0)
        multi = sw.collective_launch_s + hops + functools.reduce(jnp.maximum, share_s)
        return jnp.where(n1 > 1.0, multi, one)
    raise ValueError(f"collective: {collective!r}: expected one of {', '.join(COLLECTIVES)}")
