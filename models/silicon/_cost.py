"""What the silicon of a packaged chip costs: its logic dies (or its wafer) and its HBM."""

from __future__ import annotations

import math
from typing import NamedTuple

from models._pytree import Array

from ._process import RETICLE_MM2, WAFER_DIAMETER_MM, Node, die_yield, good_die_cost_usd, xp


class SiliconCost(NamedTuple):
    logic_usd: Array  # good logic dies, or the wafer of a wafer-scale engine
    hbm_usd: Array  # the HBM stacks' memory
    total_usd: Array
    dram_usd: Array | float = 0.0  # off-package LPDDR or DDR


# Off-package LPDDR5X or DDR5 at about $4 per GB (estimate: 2024-25 contract prices reported by
# TrendForce range about $3-5/GB), a third of HBM's.
DRAM_USD_PER_GB = 4.0


def silicon_cost_usd(
    die_mm2: Array | float,
    node: Node,
    dies: Array | float = 1.0,
    hbm_bytes: Array | float = 0.0,
    usd_per_gb: float = 0.0,
    wafer_scale: bool = False,
    dram_bytes: Array | float = 0.0,
) -> SiliconCost:
    """Cost of a chip's silicon: ``dies`` good dies of ``die_mm2`` on ``node`` and ``hbm_bytes``
    of HBM at ``usd_per_gb``, and ``dram_bytes`` of off-package DRAM. A wafer-scale engine (Cerebras WSE: 46,225 mm^2 of one 300 mm
    wafer) yields by redundancy — spare cores and links route around defects — so it costs one
    processed wafer. Packaging, test, board and margin are not included."""
    m = xp(die_mm2, dies, hbm_bytes)  # numpy for a spec's numbers, jax.numpy when traced
    area = m.asarray(die_mm2, dtype=float)
    if wafer_scale:
        logic = dies * node.wafer_usd * m.ones_like(area)
    else:
        logic = dies * good_die_cost_usd(m.minimum(area, RETICLE_MM2), node)
    memory = m.asarray(hbm_bytes, dtype=float) / 1e9 * usd_per_gb
    dram = m.asarray(dram_bytes, dtype=float) / 1e9 * DRAM_USD_PER_GB
    return SiliconCost(logic, memory, logic + memory + dram, dram)


# Embodied carbon, after the ACT model (Gupta et al., ISCA 2022): a processed cm^2 carries its
# fab electricity at the fab's grid intensity (Taiwan, about 0.56 kg CO2e/kWh: Taiwan Bureau of
# Energy, 2021 electricity emission factor 0.509-0.56; 0.56 taken), its process gases (about
# 0.2 kg/cm^2) and its materials (about 0.5 kg/cm^2, ACT's wafer figure), over the good-die yield;
# DRAM carries about 0.3 kg CO2e per GB (ACT's DRAM range, mid value). Estimates, stated.
FAB_KG_PER_KWH = 0.56
GAS_KG_PER_CM2 = 0.2
MATERIALS_KG_PER_CM2 = 0.5
DRAM_KG_PER_GB = 0.3


def embodied_carbon_kg(
    die_mm2: Array | float,
    node: Node,
    dies: Array | float = 1.0,
    hbm_bytes: Array | float = 0.0,
    wafer_scale: bool = False,
    dram_bytes: Array | float = 0.0,
) -> Array:
    """kg CO2e of making a chip's silicon: its good logic dies (a wafer-scale engine: the
    whole wafer, it yields by redundancy), its HBM and its off-package DRAM."""
    m = xp(die_mm2, dies, hbm_bytes)
    area = m.asarray(die_mm2, dtype=float)
    per_cm2 = node.fab_kwh_per_cm2 * FAB_KG_PER_KWH + GAS_KG_PER_CM2 + MATERIALS_KG_PER_CM2
    if wafer_scale:
        logic = dies * per_cm2 * math.pi * (WAFER_DIAMETER_MM / 20.0) ** 2 * m.ones_like(area)
    else:
        logic = dies * per_cm2 * area / 100.0 / die_yield(m.minimum(area, RETICLE_MM2), node.defects_per_cm2)
    memory = m.asarray(hbm_bytes, dtype=float) + m.asarray(dram_bytes, dtype=float)
    return logic + memory / 1e9 * DRAM_KG_PER_GB
