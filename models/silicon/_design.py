"""A variant's silicon and price, measured from the published design it varies.

A catalog chip with a published die area and node (and, with HBM, its generation and stacks)
records its silicon at load (:class:`SiliconBase`). A variant — more compute, SRAM or HBM —
then has a die area, a silicon cost and a price that follow: the compute share of the base
die scales with the multiply-accumulate units, SRAM adds bit cells, HBM adds stacks of the
base's own kind (at its generation's top pin rate), the die cost follows area through dies per wafer and yield, and the price
moves by the base's price-over-silicon margin times the silicon added.
"""

from __future__ import annotations

import dataclasses

from models._pytree import Array

from ._cost import silicon_cost_usd
from ._process import Node, sram_mm2, xp

# Share of a die that its matrix units take: TPU v1's matrix multiply unit is 24 % of the die
# (Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017,
# Fig. 2) — the one published share for an inference chip; taken for every family (estimate).
COMPUTE_SHARE = 0.24


@dataclasses.dataclass(frozen=True)
class SiliconBase:
    """The published design a variant is measured from (hashable: a static part of a chip)."""

    node: Node
    die_mm2: float  # per die
    dies: float
    macs: float  # multiply-accumulate units, in the base's own measure (peak / clock, or peak)
    sram_bytes: float
    stack_bytes_per_s: float  # one HBM stack of the base at its generation's top speed (0: no HBM)
    stack_bytes: float
    usd_per_gb: float
    wafer_scale: bool  # one die is the wafer: it yields by redundancy and costs one wafer
    silicon_usd: float  # variant_silicon at the base's own values
    margin: float  # published (or estimated) price over silicon_usd


def variant_silicon(
    base: SiliconBase,
    macs: Array | float,
    sram_bytes: Array | float,
    hbm_bandwidth: Array | float,
    hbm_capacity: Array | float,
) -> tuple[Array, Array, Array]:
    """(die area per die in mm^2, HBM stacks, silicon cost in USD) of a variant of ``base``."""
    m = xp(macs, sram_bytes, hbm_bandwidth, hbm_capacity)  # numpy at load, jax.numpy when traced
    compute = base.die_mm2 * COMPUTE_SHARE * (m.asarray(macs) / base.macs - 1.0)
    sram = sram_mm2(m.asarray(sram_bytes) - base.sram_bytes, base.node) / base.dies
    area = m.maximum(base.die_mm2 + compute + sram, 1.0)
    stacks = m.zeros_like(area)
    if base.stack_bytes_per_s > 0:
        by_bandwidth = m.asarray(hbm_bandwidth) / base.stack_bytes_per_s
        stacks = m.maximum(by_bandwidth, m.asarray(hbm_capacity) / base.stack_bytes) * m.ones_like(area)
    cost = silicon_cost_usd(area, base.node, base.dies, stacks * base.stack_bytes, base.usd_per_gb, base.wafer_scale)
    return area, stacks, cost.total_usd
