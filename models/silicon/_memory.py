"""HBM as stacks of a generation, and the converters of in-memory compute: what a memory
bandwidth or capacity, or an ADC resolution, takes in parts, area, energy and money."""

from __future__ import annotations

import dataclasses

from models._pytree import Array

from ._process import xp


@dataclasses.dataclass(frozen=True)
class HbmGeneration:
    """One HBM stack of a generation at its top speed grade."""

    name: str
    bus_bits: int  # data pins per stack
    pin_gbit_s: float  # data rate per pin
    capacity_gb: float  # largest stack in volume (dies x die density)
    usd_per_gb: float  # price of the memory (estimate, see HBM)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bus_bits * self.pin_gbit_s * 1e9 / 8.0


# Bus and pin rates: JEDEC JESD235C (HBM2E, 1024 bits; SK hynix ships 3.6 Gb/s), JESD238
# (HBM3, 6.4 Gb/s), SK hynix HBM3E (9.6 Gb/s), JESD270-4 (HBM4, 2048 bits at 8 Gb/s, April
# 2025). Capacities: 8-high 16 Gb (HBM2E), 12-high 16 Gb (HBM3), 12-high 24 Gb (HBM3E),
# 16-high 32 Gb (HBM4). Prices are estimates: HBM sells at about five times DDR5 per bit
# (TrendForce, May 2024); HBM3 at $12/GB is assumed, HBM2E below it, and TrendForce's steps
# applied on top: HBM3E +20 % over HBM3, HBM4 at least +30 % over HBM3E (TrendForce, 2025).
HBM = {
    "hbm2e": HbmGeneration("HBM2E", 1024, 3.6, 16.0, 10.0),
    "hbm3": HbmGeneration("HBM3", 1024, 6.4, 24.0, 12.0),
    "hbm3e": HbmGeneration("HBM3E", 1024, 9.6, 36.0, 12.0 * 1.2),
    "hbm4": HbmGeneration("HBM4", 2048, 8.0, 64.0, 12.0 * 1.2 * 1.3),
}


# An HBM stack's outline is 7.75 mm x 11.87 mm (HBM2/HBM2E known-good stack die, JEDEC MO-316);
# stacks sit along two opposite edges of a logic die, short edge to it: H100 and A100 place six
# stack sites along their ~28.5 mm edges, as this gives.
HBM_STACK_EDGE_MM = 7.75


def hbm_sites(die_mm2: Array | float, dies: Array | float = 1.0) -> Array:
    """HBM stacks the package's shoreline holds: along two edges of each (square) logic die."""
    m = xp(die_mm2, dies)
    return dies * 2.0 * m.floor(m.sqrt(m.asarray(die_mm2, dtype=float)) / HBM_STACK_EDGE_MM)


def hbm_stacks(bandwidth_bytes_per_s: Array, capacity_bytes: Array, generation: HbmGeneration) -> Array:
    """Whole stacks that give at least the bandwidth and the capacity."""
    needed = stacks_needed(bandwidth_bytes_per_s, capacity_bytes, generation)
    return xp(needed).ceil(needed - 1e-9)


def stacks_needed(bandwidth_bytes_per_s: Array, capacity_bytes: Array, generation: HbmGeneration) -> Array:
    """Stacks as a continuous quantity (for gradients): the larger of bandwidth and capacity
    over one stack's."""
    m = xp(bandwidth_bytes_per_s, capacity_bytes)
    by_bw = m.asarray(bandwidth_bytes_per_s, dtype=float) / generation.bandwidth_bytes_per_s
    by_cap = m.asarray(capacity_bytes, dtype=float) / (generation.capacity_gb * 1e9)
    return m.maximum(by_bw, by_cap)


def hbm_cost_usd(stacks: Array, generation: HbmGeneration) -> Array:
    """Memory cost of ``stacks`` full stacks of the generation's largest height."""
    return xp(stacks).asarray(stacks, dtype=float) * generation.capacity_gb * generation.usd_per_gb


# A reference ADC: ISAAC's 8-bit 1.28 GS/s SAR ADC (Shafiee et al., ISCA 2016, Table 1; from
# Kull et al., ISSCC 2013): 2 mW and 0.0012 mm^2 each at 32 nm.
ADC_REF_BITS = 8.0
ADC_REF_AREA_MM2 = 0.0012
ADC_REF_RATE_HZ = 1.28e9


def adc_area_mm2(bits: Array | float) -> Array:
    """Area of one SAR ADC of ``bits`` at the reference's rate and node: its capacitive DAC
    doubles with every bit (unit capacitors 2^bits; the comparator and logic are a small
    share at 8 bits), so the area scales as 2^(bits - 8) from the reference (the scaling
    ISAAC and its successors use). Analog area scales little with the node: kept at 32 nm
    (an upper bound for newer nodes)."""
    return ADC_REF_AREA_MM2 * 2.0 ** (xp(bits).asarray(bits, dtype=float) - ADC_REF_BITS)


def adc_energy_j(bits: Array | float, walden_fom_j: Array | float) -> Array:
    """Energy of one conversion from Walden's figure of merit: FoM x 2^bits (Murmann, ADC
    Performance Survey; ENOB taken as the resolution)."""
    return walden_fom_j * 2.0 ** xp(bits).asarray(bits, dtype=float)
