"""A variant's silicon and price, measured from the design it varies.

A catalog chip whose node and microarchitecture are known records its silicon at load
(:class:`SiliconBase`): its published die area where there is one, else the floorplan
model's (``_floorplan``). A variant — more compute, SRAM, HBM, link bandwidth or ADC bits —
then has a die area that moves by what the floorplan model says its parts add or remove, HBM
stacks of the base's own kind (at its generation's top pin rate), a die cost that follows
area through dies per wafer and yield, and a price that moves by the base's price-over-silicon
margin times the silicon added.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from models._pytree import Array

from ._cost import embodied_carbon_kg, silicon_cost_usd
from ._floorplan import Floorplan, floorplan_area
from ._process import Node, xp


@dataclasses.dataclass(frozen=True)
class SiliconBase:
    """The design a variant is measured from (hashable: a static part of a chip)."""

    node: Node
    die_mm2: float  # per die: published, or the floorplan model's (``area_source``)
    dies: float
    plan: Floorplan  # the base's microarchitecture
    macs: float  # the base's MAC units in the chip's own measure (Chip.mac_units)
    stack_bytes_per_s: float  # one HBM stack of the base at its generation's top speed (0: no HBM)
    stack_bytes: float
    usd_per_gb: float
    wafer_scale: bool  # one die is the wafer: it yields by redundancy and costs one wafer
    silicon_usd: float  # variant_silicon at the base's own values
    margin: float  # (price - DRAM) over (silicon - DRAM): off-package DRAM passes at its cost
    area_source: str  # "published" or "modelled"
    dram_usd: float  # of silicon_usd, the off-package DRAM's
    density_w_mm2: float  # the base's datasheet TDP over its logic silicon: it is built and cooled
    dense_flops_per_s: float  # the base's datapath at its dense 16-bit rate (floorplan power)
    datapath_flops_per_s: float  # the rate that dense rate follows (Chip.datapath_flops_per_s)
    tdp_model_w: float  # the floorplan model's TDP of the base (a variant's TDP moves from it)
    # Whole HBM stacks (what is built); False relaxes them to a continuous count, as a gradient
    # search relaxes an integer knob before it evaluates designs exactly.
    whole_stacks: bool = True


def variant_plan(
    base: SiliconBase,
    macs: Array | float,
    hbm_bandwidth: Array | float,
    hbm_capacity: Array | float,
    **parts: Array | float,
) -> Floorplan:
    """The floorplan of a variant: ``macs`` datapath MACs, its HBM as whole stacks of the base's
    kind (the larger of bandwidth and capacity over one stack's, rounded up: a partly used stack
    is bought, placed and wired whole), and ``parts`` (SRAM, links, converters) as given."""
    m = xp(macs, hbm_bandwidth, hbm_capacity, *parts.values())
    stacks = m.asarray(0.0)
    if base.stack_bytes_per_s > 0:
        by_bandwidth = m.asarray(hbm_bandwidth) / base.stack_bytes_per_s
        stacks = m.maximum(by_bandwidth, m.asarray(hbm_capacity) / base.stack_bytes)
        if base.whole_stacks:  # a float32 sweep computes a base's own count to about 1e-7
            stacks = m.ceil(stacks * (1.0 - 1e-5))
    return base.plan._replace(macs=m.asarray(macs), hbm_stacks=stacks, **parts)  # type: ignore[arg-type]


class VariantSilicon(NamedTuple):
    die_mm2: Array  # per die
    hbm_stacks: Array
    cost_usd: Array  # good logic dies, HBM and off-package DRAM
    dram_usd: Array | float  # of which off-package DRAM
    carbon_kg: Array  # embodied CO2e of the same


def variant_silicon(base: SiliconBase, plan: Floorplan, dram_bytes: Array | float = 0.0) -> VariantSilicon:
    """The silicon of the variant ``plan`` of ``base``: the base's die plus what the floorplan
    model says the variant adds, its HBM stacks, and the cost and embodied carbon of both with
    ``dram_bytes`` of off-package DRAM."""
    m = xp(*plan[2:])
    added = floorplan_area(plan).total_mm2 - floorplan_area(base.plan).total_mm2
    area = m.maximum(base.die_mm2 + added / base.dies, 1.0)
    stacks = m.asarray(plan.hbm_stacks, dtype=float) * m.ones_like(area)
    hbm_bytes = stacks * base.stack_bytes
    cost = silicon_cost_usd(area, base.node, base.dies, hbm_bytes, base.usd_per_gb, base.wafer_scale, dram_bytes)
    carbon = embodied_carbon_kg(area, base.node, base.dies, hbm_bytes, base.wafer_scale, dram_bytes)
    return VariantSilicon(area, stacks, cost.total_usd, cost.dram_usd, carbon)
