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
    serving batch/dp sequences). The network has two levels: the scale-up domain of
    ``scale_up_chips`` chips (its per-chip bandwidth and hop latency are the chip's
    ``link_*`` values) and a scale-out network between domains.
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

    @property
    def split(self) -> Split:
        return Split(self.tp, self.ep, self.expert_imbalance, self.sp, self.pp)

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

    def levels(self, chip: Chip) -> tuple[Level, Level]:
        """The scale-up and scale-out levels (``n`` = the scale-up domain size)."""
        up = Level(self.scale_up_chips, chip.link_bandwidth_bytes_per_s, chip.link_latency_s, self.scale_up_topology)
        out = Level(
            jnp.ones_like(self.scale_up_chips),
            self.scale_out_bandwidth_bytes_per_s,
            self.scale_out_latency_s,
            self.scale_out_topology,
        )
        return up, out

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
        up, out = self.levels(chip)
        return collective_s(collective, message_bytes, n, stride, up, out, software)


def pipeline_fill_factor(micro_batches: Array, pp: Array) -> Array:
    """Wall time of a pipelined pass relative to running all stages back to back.

    m micro-batches over p stages take (m + p − 1) stage-times of 1/(m·p) of the whole pass
    each (GPipe), i.e. (m + p − 1)/(m·p); 1 when p = 1 or m = 1.
    """
    return (micro_batches + pp - 1.0) / (micro_batches * pp)
