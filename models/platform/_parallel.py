"""Multi-chip platform: tensor and pipeline parallelism, collectives over the scale-up links.

References:
  GenZ (seeds/003) §III-C: TP all-reduce after the attention and FFN blocks of every layer,
    PP send/recv at stage boundaries, collective time from link bandwidth and latency.
  Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms", JPDC 2009: ring all-reduce
    moves 2(n−1)/n of the message over each link in 2(n−1) steps.
  Huang et al., "GPipe", NeurIPS 2019: pipeline with m micro-batches over p stages takes
    (m + p − 1) stage-times.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models._interface import Chip, SoftwareParams
from models._pytree import pytree_dataclass, spec_field

Array = jax.Array


@pytree_dataclass
class PlatformSpec:
    """How many chips serve one model replica and how the model is split across them."""

    tp: Array = spec_field(kind="int", doc="tensor-parallel degree (chips sharing every layer)")
    pp: Array = spec_field(kind="int", doc="pipeline-parallel degree (stages of consecutive layers)")

    @property
    def n_chips(self) -> Array:
        return self.tp * self.pp


def ring_allreduce_s(message_bytes: Array, n: Array, link_bytes_per_s: Array, step_latency_s: Array) -> Array:
    """Ring all-reduce time: 2(n−1)/n · bytes / link bandwidth + 2(n−1) · per-step latency.

    Zero for n = 1 (Patarasuk & Yuan 2009; GenZ §III-C).
    """
    steps = 2.0 * (n - 1.0)
    return steps / n * message_bytes / link_bytes_per_s + steps * step_latency_s


def send_recv_s(message_bytes: Array, link_bytes_per_s: Array, latency_s: Array) -> Array:
    """Point-to-point transfer between neighbouring pipeline stages: α + bytes/β."""
    return latency_s + message_bytes / link_bytes_per_s


def pipeline_fill_factor(micro_batches: Array, pp: Array) -> Array:
    """Wall time of a pipelined pass relative to running all stages back to back.

    m micro-batches over p stages take (m + p − 1) stage-times of 1/(m·p) of the whole pass
    each (GPipe), i.e. (m + p − 1)/(m·p); 1 when p = 1 or m = 1.
    """
    return (micro_batches + pp - 1.0) / (micro_batches * pp)


def collective_s(chip: Chip, software: SoftwareParams, collective: str, message_bytes: Array, n: Array) -> Array:
    """Time of one collective over the chip's scale-up links as a software stack runs it:
    link bandwidth × link efficiency, per-step latency = link latency + collective latency.

    ``collective`` (static) is ``all_reduce`` (ring, over ``n`` chips) or ``send_recv``.
    """
    link = chip.link_bandwidth_bytes_per_s * software.link_efficiency
    hop = chip.link_latency_s + software.collective_latency_s
    if collective == "all_reduce":
        return ring_allreduce_s(message_bytes, n, link, hop)
    if collective == "send_recv":
        return send_recv_s(message_bytes, link, hop) * jnp.ones_like(n)
    raise ValueError(f"collective: {collective!r}: expected all_reduce or send_recv")
