"""Process nodes and what a die costs: dies per wafer, yield and cost per good die.

Pure functions of scalars or arrays (jit-, vmap- and grad-able): a design's die area is a
continuous knob, so dies per wafer and yield stay continuous too (no floor).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models._pytree import Array


def xp(*values: Any) -> ModuleType:
    """The array library of ``values``: jax.numpy inside the engine's traced programs, numpy
    for the plain numbers of a spec being loaded (an eager JAX op compiles a program: a chip's
    silicon at load took 0.8 s that way)."""
    return jnp if any(isinstance(v, jax.Array) for v in values) else np


WAFER_DIAMETER_MM = 300.0
# Largest field a lithography scanner exposes at once: 26 mm x 33 mm (ASML NXT/NXE full field).
RETICLE_MM2 = 26.0 * 33.0
# Heat a liquid cold plate removes from a die: about 1 W/mm^2 (estimate: H100 SXM5 dissipates
# 700 W over 814 mm^2, 0.86 W/mm^2, and direct-liquid-cooled parts reach about 1 W/mm^2).
COOLING_W_PER_MM2 = 1.0


@dataclasses.dataclass(frozen=True)
class Node:
    """A logic process: densities of logic and SRAM, the price of a processed 300 mm wafer
    and the density of killer defects at volume production."""

    name: str
    logic_mtr_per_mm2: float  # logic transistor density (million transistors per mm^2)
    sram_bitcell_um2: float  # high-density 6T SRAM bit cell
    wafer_usd: float  # foundry sale price of one processed 300 mm wafer
    defects_per_cm2: float  # D0, killer defects per cm^2
    fab_kwh_per_cm2: float  # fab electricity per cm^2 of processed wafer (embodied carbon)


# Densities: WikiChip's TSMC process pages (16FF+ 28.9, N7 91.2, N5 171.3 MTr/mm^2); N6 and N4
# from TSMC's stated gains over N7 (+18 % logic density) and N5 (+6 %), N3E from TSMC's 1.6x
# over N5. Bit cells: TSMC's IEDM papers (16FF+ 0.07 um^2, N7 0.027, N5 0.021; N3E's HD cell
# stays at 0.021). Wafer prices: Khan & Mann, "AI Chips: What They Are and Why They Matter"
# (CSET, 2020), foundry sale price per 300 mm wafer: 16/12 nm $3,984, 7 nm $9,346, 5 nm
# $16,988; N6 and N4 are taken at the price of the node they derive from (estimate); N3 at
# $20,000 (press reports of TSMC's 2022-23 quotes; estimate). D0: TSMC reported about 0.1
# defects/cm^2 for N7 and N5 at volume (2020 Technology Symposium); 0.07 for the mature
# 16/12 nm and 0.12 for N3 are estimates.
# Fab electricity per cm^2: read off the energy-per-area curve of the ACT carbon model (Gupta
# et al., "ACT: Designing Sustainable Computer Systems with an Architectural Carbon Modeling
# Tool", ISCA 2022, from imec and TSMC data): about 1.2 kWh/cm^2 at 16-12 nm, 1.5 at 7 nm, 2.0
# at 5 nm, 2.5 at 3 nm (approximate readings, estimate).
NODES = {
    "n16": Node("TSMC 16FF+/12FFC", 28.9, 0.070, 3984.0, 0.07, 1.2),
    "n7": Node("TSMC N7", 91.2, 0.027, 9346.0, 0.10, 1.5),
    "n6": Node("TSMC N6", 91.2 * 1.18, 0.027, 9346.0, 0.10, 1.5),
    "n5": Node("TSMC N5", 171.3, 0.021, 16988.0, 0.10, 2.0),
    "n4": Node("TSMC N4/4N", 171.3 * 1.06, 0.021, 16988.0, 0.10, 2.0),
    "n3": Node("TSMC N3E", 171.3 * 1.6, 0.021, 20000.0, 0.12, 2.5),
}


def dies_per_wafer(die_mm2: Array, wafer_mm: float = WAFER_DIAMETER_MM) -> Array:
    """Whole dies on a round wafer: wafer area over die area less the partial dies along the
    edge, pi d^2 / (4 A) - pi d / sqrt(2 A) (Hennessy & Patterson, Computer Architecture,
    6th ed., Sec. 1.6). Continuous in A; at least 0."""
    m = xp(die_mm2)
    a = m.asarray(die_mm2, dtype=float)
    return m.maximum(np.pi * wafer_mm**2 / (4.0 * a) - np.pi * wafer_mm / m.sqrt(2.0 * a), 0.0)


def die_yield(die_mm2: Array, defects_per_cm2: Array | float, clustering: float | None = None) -> Array:
    """Share of dies without a killer defect. Murphy's model ((1 - e^-AD) / AD)^2 by default
    (Murphy 1964); with ``clustering`` alpha the negative binomial (1 + AD / alpha)^-alpha
    (Stapper 1983; alpha of 2-4 is typical of logic, the ITRS uses 2)."""
    m = xp(die_mm2, defects_per_cm2)
    ad = m.asarray(die_mm2, dtype=float) / 100.0 * defects_per_cm2
    if clustering is not None:
        return (1.0 + ad / clustering) ** (-clustering)
    safe = m.where(ad > 0, ad, 1.0)
    return m.where(ad > 0, ((1.0 - m.exp(-safe)) / safe) ** 2, 1.0)


def good_die_cost_usd(die_mm2: Array, node: Node, clustering: float | None = None) -> Array:
    """Cost of one good die: the wafer's price over its good dies."""
    good = dies_per_wafer(die_mm2) * die_yield(die_mm2, node.defects_per_cm2, clustering)
    return node.wafer_usd / good


def sram_mm2(capacity_bytes: Array, node: Node, array_efficiency: float = 0.7) -> Array:
    """Area of an SRAM of ``capacity_bytes``: bit cells over the array efficiency (the share of
    a macro that is cells rather than decoders, sense amplifiers and wiring: about 0.6-0.8 for
    large high-density macros, CACTI's typical range; 0.7 is an estimate)."""
    bits = xp(capacity_bytes).asarray(capacity_bytes, dtype=float) * 8.0
    return bits * node.sram_bitcell_um2 * 1e-6 / array_efficiency
