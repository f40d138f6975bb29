"""Total cost of ownership: $ per million tokens from capex amortized plus energy; the
operational carbon of the same energy.

cost rate = capex / lifetime + P_avg · PUE · electricity price
$/1M tokens = cost rate · wall time / tokens · 1e6
gCO2e/1M tokens = energy / tokens · 1e6 · PUE · grid intensity (per kWh drawn)

Never API prices (docs/references.md#research-note, "Why every existing benchmark is wrong": API pricing includes
margin). Defaults are documented estimates, overridable per evaluation.
"""

from __future__ import annotations

import numpy as np

from models._pytree import Array, pytree_dataclass, spec_field

SECONDS_PER_YEAR = 365.25 * 24 * 3600.0
J_PER_KWH = 3.6e6


@pytree_dataclass
class EconomicsSpec:
    """TCO parameters.

    Attributes:
        lifetime_years: straight-line amortization period of the hardware (default 4: the
            common depreciation schedule of accelerator servers; estimate).
        usd_per_kwh: electricity price (default 0.10: US industrial average ≈ 0.08–0.10
            $/kWh, EIA Electric Power Monthly 2024; estimate).
        pue: power usage effectiveness of the data centre (default 1.3: between hyperscale
            ≈ 1.1–1.2 and the industry average ≈ 1.56, Uptime Institute survey 2024).
        capex_overhead: host, network and rack cost as a fraction of the chips' price
            (default 0.0: chips only; set e.g. 0.5 for a full server).
        grid_gco2_per_kwh: carbon intensity of the electricity drawn (default: the world's
            average, ``GRID_GCO2_PER_KWH["world"]``).
    """

    lifetime_years: Array = spec_field(unit="year", doc="amortization period")
    usd_per_kwh: Array = spec_field(unit="USD/kWh", doc="electricity price")
    pue: Array = spec_field(doc="power usage effectiveness, at least 1")
    capex_overhead: Array = spec_field(kind="nonnegative", doc="host, network and rack cost / chips' price")
    grid_gco2_per_kwh: Array = spec_field(
        unit="g/kWh", kind="nonnegative", doc="carbon intensity of the electricity (gCO2e per kWh)"
    )


# Grid carbon intensity by region, gCO2(e) per kWh generated:
#   world: 436, the 2022 average of the world's power sector, lifecycle CO2e (Ember, Global
#     Electricity Review 2023);
#   us: 366, 2023 U.S. utility-scale generation, 1.53 Gt CO2 over 4.18 PWh, direct CO2 at the
#     plants (EIA, "How much carbon dioxide is produced per kilowatthour of U.S. electricity
#     generation?", FAQ 74: 0.81 lb/kWh).
GRID_GCO2_PER_KWH = {"world": 436.0, "us": 366.0}


def default_economics() -> EconomicsSpec:
    return EconomicsSpec(
        np.asarray(4.0), np.asarray(0.10), np.asarray(1.3), np.asarray(0.0), np.asarray(GRID_GCO2_PER_KWH["world"])
    )


def usd_per_million_tokens(
    econ: EconomicsSpec, capex_usd: Array, power_w: Array, wall_s: Array, tokens: Array
) -> Array:
    """$ per 1M tokens for a platform that cost ``capex_usd`` drawing ``power_w`` for ``wall_s``."""
    capex_rate = capex_usd * (1.0 + econ.capex_overhead) / (econ.lifetime_years * SECONDS_PER_YEAR)
    energy_rate = power_w * econ.pue * econ.usd_per_kwh / J_PER_KWH
    return (capex_rate + energy_rate) * wall_s / tokens * 1e6


def gco2_per_million_tokens(econ: EconomicsSpec, energy_j: Array, tokens: Array) -> Array:
    """Operational gCO2e per 1M tokens: the energy of ``tokens`` drawn through the facility (PUE)
    from a grid of the economics' intensity."""
    return energy_j / tokens * 1e6 * econ.pue / J_PER_KWH * econ.grid_gco2_per_kwh
