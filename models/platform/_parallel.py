"""Multi-chip platform: parallel degrees, their placement on the network levels, pipelines.

References:
  GenZ (docs/references.md#genz) §III-C: TP all-reduce after the attention and FFN blocks of every layer,
    EP all-to-all, PP send/recv at stage boundaries; parallelism order TP:EP:PP.
  Huang et al., "GPipe", NeurIPS 2019: pipeline with m micro-batches over p stages takes
    (m + p − 1) stage-times.
"""

from __future__ import annotations

import jax.numpy as jnp

from models._interface import Chip, SoftwareParams, Split
from models._pytree import Array, pytree_dataclass, spec_field, static_field

from ._network import Level, collective_s


@pytree_dataclass
class PlatformSpec:
    """How the chips of a platform are connected and how a model is split across them.

    Parallelisms (GenZ §III-C, placement order TP:SP:EP:PP:DP from the innermost, so TP
    groups are contiguous chips): tensor (tp: every layer's heads and FFN columns), sequence
    (sp: every prompt's tokens and every KV cache over sp groups of tp chips), expert (ep: MoE
    experts over ep groups of tp chips; attention is data-parallel over them, each with its
    own sequences), pipeline (pp: consecutive layers), data (dp: independent replicas, each
    serving batch/dp sequences). The network has up to three levels: the scale-up domain of
    ``scale_up_chips`` chips (its per-chip bandwidth and hop latency are the chip's
    ``link_*`` values), a scale-out network between domains, and (with ``pod_chips`` > 0) a
    network between pods of that many chips (GenZ Table IX).
    """

    tp: Array = spec_field(kind="int", doc="tensor-parallel degree (chips sharing every layer)")
    pp: Array = spec_field(kind="int", doc="pipeline-parallel degree (stages of consecutive layers)")
    ep: Array = spec_field(
        kind="int",
        required=False,
        doc="expert-parallel degree (groups sharing the experts)",
        value=1.0,
    )
    sp: Array = spec_field(
        kind="int",
        required=False,
        doc="sequence (context) parallel degree (groups sharing every prompt)",
        value=1.0,
    )
    dp: Array = spec_field(kind="int", required=False, doc="data-parallel replicas", value=1.0)
    overlap: Array = spec_field(
        kind="fraction",
        required=False,
        doc="share of communication that can overlap compute",
        value=0.0,
    )
    expert_imbalance: Array = spec_field(
        required=False,
        doc="tokens of the busiest expert group over the mean, >= 1",
        value=1.0,
    )
    expert_hot_share: Array = spec_field(
        kind="fraction",
        required=False,
        doc="share of tokens that all pick the same top-k experts (1: all tokens to one expert)",
        value=0.0,
    )
    scale_up_chips: Array = spec_field(kind="int", required=False, doc="chips per scale-up domain", value=8.0)
    scale_out_bandwidth_bytes_per_s: Array = spec_field(
        "scale_out_bandwidth_gb_s",
        "GB/s",
        required=False,
        doc="scale-out bandwidth per chip and direction",
        value=50e9,
    )
    scale_out_latency_s: Array = spec_field(
        "scale_out_latency_us",
        "us",
        required=False,
        doc="scale-out per-hop latency",
        value=5e-6,
    )
    pod_chips: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="chips of a pod: scale-up domains joined by the scale-out network, pods joined by a third level "
        "(0: no third level)",
        value=0.0,
    )
    inter_pod_bandwidth_bytes_per_s: Array = spec_field(
        "inter_pod_bandwidth_gb_s",
        "GB/s",
        required=False,
        doc="bandwidth between pods per chip and direction",
        value=50e9,
    )
    inter_pod_latency_s: Array = spec_field(
        "inter_pod_latency_us",
        "us",
        required=False,
        doc="per-hop latency between pods",
        value=5e-6,
    )
    prefill_share: Array = spec_field(
        kind="fraction",
        required=False,
        doc="share of the replicas in a disaggregated prefill pool (0: prefill and decode co-located)",
        value=0.0,
    )
    kv_offload_bytes: Array = spec_field(
        "kv_offload_gb",
        "GB",
        kind="nonnegative",
        required=False,
        doc="host (DRAM or CXL) memory per chip for KV cache that does not fit",
        value=0.0,
    )
    host_bandwidth_bytes_per_s: Array = spec_field(
        "host_bandwidth_gb_s",
        "GB/s",
        required=False,
        doc="chip-to-host bandwidth per direction",
        # PCI-SIG: PCIe 5.0 x16, 32 GT/s x 16 lanes x 128/130 = 63 GB/s per direction.
        value=63e9,
    )
    host_flops_per_s: Array = spec_field(
        "host_tflops",
        "TFLOP/s",
        kind="nonnegative",
        required=False,
        doc="host (CPU) compute per chip for the attention over offloaded KV (0: the KV streams to the chip)",
        value=0.0,
    )
    host_memory_bandwidth_bytes_per_s: Array = spec_field(
        "host_memory_bandwidth_gb_s",
        "GB/s",
        required=False,
        doc="host memory bandwidth per chip, read by host-computed attention",
        # JEDEC DDR5-4800: 38.4 GB/s per channel; 8 channels per socket = 307 GB/s.
        value=307e9,
    )
    host_power_w: Array = spec_field(
        "host_power_w",
        "W",
        kind="nonnegative",
        required=False,
        doc="power of hosts, switches and NICs per chip (a platform's power beyond its chips' TDP)",
        value=0.0,
    )
    scale_up_topology: str = static_field(default="switch")
    scale_out_topology: str = static_field(default="switch")
    inter_pod_topology: str = static_field(default="ring")  # GenZ §VII-C: a ring for the third dimension

    @property
    def split(self) -> Split:
        return Split(self.tp, self.ep, self.expert_imbalance, self.sp, self.pp, self.expert_hot_share)

    @property
    def stage_chips(self) -> Array:
        """Chips of one pipeline stage of one replica (tp · sp · ep)."""
        return self.tp * self.sp * self.ep

    @property
    def replica_chips(self) -> Array:
        return self.stage_chips * self.pp

    @property
    def n_chips(self) -> Array:
        return self.replica_chips * self.dp

    def levels(self, chip: Chip) -> tuple[Level, ...]:
        """The network's levels, innermost first (``n``: the chips of one domain): the scale-up
        domain, the scale-out network (up to a pod of ``pod_chips``), and between pods."""
        up = Level(self.scale_up_chips, chip.link_bandwidth_bytes_per_s, chip.link_latency_s, self.scale_up_topology)
        # Without pods the scale-out level spans every chip (a pod larger than any platform).
        pod = jnp.where(self.pod_chips > 0.0, jnp.maximum(self.pod_chips, self.scale_up_chips), 1e30)
        out = Level(pod, self.scale_out_bandwidth_bytes_per_s, self.scale_out_latency_s, self.scale_out_topology)
        between = Level(pod, self.inter_pod_bandwidth_bytes_per_s, self.inter_pod_latency_s, self.inter_pod_topology)
        return up, out, between

    def collective_s(
        self,
        chip: Chip,
        software: SoftwareParams,
        collective: str,
        message_bytes: Array | float,
        n: Array | float,
        stride: Array,
    ) -> Array:
        """One collective among ``n`` chips ``stride`` apart on this platform's network."""
        return collective_s(collective, message_bytes, n, stride, self.levels(chip), software)


def pipeline_fill_factor(micro_batches: Array, pp: Array) -> Array:
    """Wall time of a pipelined pass relative to running all stages back to back.

    m micro-batches over p stages take (m + p − 1) stage-times of 1/(m·p) of the whole pass
    each (GPipe), i.e. (m + p − 1)/(m·p); 1 when p = 1 or m = 1.
    """
    return (micro_batches + pp - 1.0) / (micro_batches * pp)
