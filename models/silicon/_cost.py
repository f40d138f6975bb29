"""What the silicon of a packaged chip costs: its logic dies (or its wafer) and its HBM."""

from __future__ import annotations

from typing import NamedTuple

from models._pytree import Array

from ._process import RETICLE_MM2, Node, good_die_cost_usd, xp


class SiliconCost(NamedTuple):
    logic_usd: Array  # good logic dies, or the wafer of a wafer-scale engine
    hbm_usd: Array  # the HBM stacks' memory
    total_usd: Array


def silicon_cost_usd(
    die_mm2: Array | float,
    node: Node,
    dies: Array | float = 1.0,
    hbm_bytes: Array | float = 0.0,
    usd_per_gb: float = 0.0,
    wafer_scale: bool = False,
) -> SiliconCost:
    """Cost of a chip's silicon: ``dies`` good dies of ``die_mm2`` on ``node`` and ``hbm_bytes``
    of HBM at ``usd_per_gb``. A wafer-scale engine (Cerebras WSE: 46,225 mm^2 of one 300 mm
    wafer) yields by redundancy — spare cores and links route around defects — so it costs one
    processed wafer. Packaging, test, board and margin are not included."""
    m = xp(die_mm2, dies, hbm_bytes)  # numpy for a spec's numbers, jax.numpy when traced
    area = m.asarray(die_mm2, dtype=float)
    if wafer_scale:
        logic = dies * node.wafer_usd * m.ones_like(area)
    else:
        logic = dies * good_die_cost_usd(m.minimum(area, RETICLE_MM2), node)
    memory = m.asarray(hbm_bytes, dtype=float) / 1e9 * usd_per_gb
    return SiliconCost(logic, memory, logic + memory)
