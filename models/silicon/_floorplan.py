"""A chip's die area and power from its microarchitecture: datapath, SRAM, PHYs, converters.

Area (per package, all logic dies): the datapath's 16-bit multiply-accumulate units at a
class's transistor cost per MAC — everything a MAC brings with it: operand registers, its
core's control and register files, its share of the NoC and the uncore — over the node's
logic density; SRAM as bit cells over an array efficiency that falls for small macros; an
HBM PHY and controller per stack, LPDDR/DDR PHYs per GB/s; SerDes area per GB/s of off-chip
link; the ADCs of an
in-memory-compute chip. The per-MAC cost is one number per class, fitted on the oldest
published die of each class (``calibration.silicon``) and checked on the rest.

Power (board TDP): the datapath at its dense peak rate at an energy per FLOP of the class
and node, main-memory traffic and link traffic at their energy per bit, leakage by area,
over the board's power delivery efficiency. Pure functions of scalars or arrays.
"""

from __future__ import annotations

from typing import NamedTuple

from models._pytree import Array

from ._memory import adc_area_mm2
from ._process import NODES, xp

# What a family's datapath is made of: SIMT cores with tensor units (the MAC pays for its SM:
# schedulers, register files, vector units), large systolic or streaming arrays (a MAC is
# little more than its multiplier and adder), or small tiles with their own router and SRAM
# each (a wafer's cores, a CGRA's units: control and routing per handful of MACs).
AREA_CLASS = {
    "simt": "simt",
    "systolic": "array",
    "sram_chiplet": "array",
    "imc": "array",
    "dataflow": "tile",
    "cgra": "tile",
}

# Million transistors (at the node's logic density) per 16-bit MAC of the datapath, by class:
# fitted by calibration.silicon.fit_floorplan on NVIDIA V100 (simt), Groq TSP (array) and
# Cerebras WSE-2 (tile) — the oldest published die of each class; `inferbench catalog
# --silicon` refits and prints the check on the others.
MTR_PER_MAC = {"simt": 0.5033, "array": 0.1534, "tile": 0.8257}

# An HBM PHY and its controller span a stack site's edge (7.75 mm, HBM_STACK_EDGE_MM) at about
# 1.5 mm deep (estimate from GPU die shots: the PHY strip along the HBM edges).
HBM_PHY_MM2 = 7.75 * 1.5
# Off-chip SerDes: about 0.5 mm^2 per 100 Gb/s lane and direction at 7-5 nm (estimate from
# published 112G PAM4 SerDes macros of 0.3-0.7 mm^2 per lane) -> 0.04 mm^2 per GB/s.
SERDES_MM2_PER_GB_S = 0.04
# LPDDR5X/DDR5 PHY and controller: about 1.5-2 mm^2 per 32-bit channel of ~34 GB/s at 7-5 nm
# (estimate) -> 0.05 mm^2 per GB/s.
DDR_PHY_MM2_PER_GB_S = 0.05
# Compute-in-memory cells: 8T-10T cells with their compute wiring take about twice the area of
# a 6T storage cell (estimate; digital SRAM-CIM macros report 1.5-2.5x).
CIM_CELL_FACTOR = 2.0

# Energy, board level. HBM: 3.9 pJ/bit for an HBM2 access including its I/O (O'Connor et al.,
# "Fine-Grained DRAM", MICRO 2017), taken for every HBM generation and off-chip DRAM (estimate).
DRAM_J_PER_BIT = 3.9e-12
# Long-reach SerDes at about 5 pJ/bit (estimate; NVLink-class links are quoted at 1.3-5 pJ/bit).
LINK_J_PER_BIT = 5e-12
# Leakage and always-on logic: 0.05 W/mm^2 of logic die (estimate: ~40 W idle over V100's 815 mm^2).
STATIC_W_PER_MM2 = 0.05
# Board power delivery: 90 % efficient voltage regulators between the TDP and the dies (estimate).
BOARD_EFFICIENCY = 0.9
# Dynamic energy of logic relative to TSMC N7 at the same performance: TSMC's stated power
# reductions — N7 -65 % vs 16FF+, N5 -30 % vs N7, N3E -34 % vs N5; N6 as N7; N4 -10 % vs N5
# (estimate).
NODE_ENERGY = {"n16": 1.0 / 0.35, "n7": 1.0, "n6": 1.0, "n5": 0.70, "n4": 0.63, "n3": 0.70 * 0.66}
# Energy per dense 16-bit FLOP at N7, by class: fitted with MTR_PER_MAC on the same chips — on
# V100's 300 W board, the Groq TSP's 270 W (the catalog's estimate from GenZ; ~300 W reported)
# and the CS-2's 23 kW system power (the wafer's own is not published: an upper bound).
J_PER_FLOP_N7 = {"simt": 0.5297e-12, "array": 0.3492e-12, "tile": 2.457e-12}


class Floorplan(NamedTuple):
    """What a package's logic silicon is built from (per package, summed over its dies)."""

    node: str  # key of NODES
    area_class: str  # key of MTR_PER_MAC
    macs: Array | float  # 16-bit MAC units of the datapath (8-bit: a quarter), spares included
    sram_bytes: Array | float
    sram_macro_bytes: Array | float  # SRAM per core: sets the array efficiency
    hbm_stacks: Array | float
    link_bytes_per_s: Array | float  # off-package links, per direction
    ddr_bytes_per_s: Array | float = 0.0  # off-package LPDDR/DDR interfaces (HBM: hbm_stacks)
    cim_bytes: Array | float = 0.0  # compute-in-memory arrays
    adcs: Array | float = 0.0
    adc_bits: Array | float = 8.0


class AreaParts(NamedTuple):
    datapath_mm2: Array
    sram_mm2: Array
    phy_mm2: Array
    converters_mm2: Array
    total_mm2: Array


def sram_efficiency(macro_bytes: Array | float) -> Array:
    """Share of an SRAM macro that is bit cells: about 0.75 for large macros (CACTI's range for
    MB-class arrays, estimate), falling as decoders and sense amplifiers weigh more in small
    ones: 0.56 at 48 KB, as a Cerebras core's 48 KB SRAM on half its 38,000 um^2 at N7 gives."""
    m = xp(macro_bytes)
    macro = m.asarray(macro_bytes, dtype=float)
    return 0.75 * macro / (macro + 16e3)


def floorplan_area(plan: Floorplan) -> AreaParts:
    """Silicon area of ``plan`` by part, mm^2 (per package)."""
    node = NODES[plan.node]
    m = xp(plan.macs, plan.sram_bytes, plan.hbm_stacks, plan.link_bytes_per_s, plan.adcs)
    datapath = m.asarray(plan.macs, dtype=float) * MTR_PER_MAC[plan.area_class] / node.logic_mtr_per_mm2
    cell_mm2 = node.sram_bitcell_um2 * 1e-6
    macro = m.maximum(m.asarray(plan.sram_macro_bytes, dtype=float), 1024.0)  # no SRAM: any macro
    sram = m.asarray(plan.sram_bytes, dtype=float) * 8.0 * cell_mm2 / sram_efficiency(macro)
    sram = sram + m.asarray(plan.cim_bytes, dtype=float) * 8.0 * cell_mm2 * CIM_CELL_FACTOR / sram_efficiency(4e6)
    phy = m.asarray(plan.hbm_stacks, dtype=float) * HBM_PHY_MM2
    phy = phy + m.asarray(plan.link_bytes_per_s, dtype=float) / 1e9 * SERDES_MM2_PER_GB_S
    phy = phy + m.asarray(plan.ddr_bytes_per_s, dtype=float) / 1e9 * DDR_PHY_MM2_PER_GB_S
    converters = m.asarray(plan.adcs, dtype=float) * adc_area_mm2(plan.adc_bits)
    return AreaParts(datapath, sram, phy, converters, datapath + sram + phy + converters)


class PowerParts(NamedTuple):
    compute_w: Array
    memory_w: Array
    link_w: Array
    static_w: Array
    tdp_w: Array


def floorplan_tdp(
    plan: Floorplan,
    dense_flops_per_s: Array | float,
    memory_bytes_per_s: Array | float,
    area_mm2: Array | float,
    converter_w: Array | float = 0.0,
) -> PowerParts:
    """Board TDP of ``plan`` running its datapath at ``dense_flops_per_s`` (16-bit), its main
    memory at ``memory_bytes_per_s``, its links both ways and its converters (``converter_w``:
    an in-memory-compute chip's ADCs and arrays) at full rate, W."""
    m = xp(dense_flops_per_s, memory_bytes_per_s, area_mm2, plan.link_bytes_per_s)
    j_per_flop = J_PER_FLOP_N7[plan.area_class] * NODE_ENERGY[plan.node]
    compute = m.asarray(dense_flops_per_s, dtype=float) * j_per_flop
    memory = m.asarray(memory_bytes_per_s, dtype=float) * 8.0 * DRAM_J_PER_BIT
    link = 2.0 * m.asarray(plan.link_bytes_per_s, dtype=float) * 8.0 * LINK_J_PER_BIT
    static = m.asarray(area_mm2, dtype=float) * STATIC_W_PER_MM2
    compute = compute + converter_w
    return PowerParts(compute, memory, link, static, (compute + memory + link + static) / BOARD_EFFICIENCY)
