"""Total cost of ownership: $ per million tokens from capex amortized plus energy.

cost rate = capex / lifetime + P_avg · PUE · electricity price
$/1M tokens = cost rate · wall time / tokens · 1e6

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
    """

    lifetime_years: Array = spec_field(unit="year", doc="amortization period")
    usd_per_kwh: Array = spec_field(unit="USD/kWh", doc="electricity price")
    pue: Array = spec_field(doc="power usage effectiveness, at least 1")
    capex_overhead: Array = spec_field(kind="nonnegative", doc="host, network and rack cost / chips' price")


def default_economics() -> EconomicsSpec:
    return EconomicsSpec(np.asarray(4.0), np.asarray(0.10), np.asarray(1.3), np.asarray(0.0))


def usd_per_million_tokens(
    econ: EconomicsSpec, capex_usd: Array, power_w: Array, wall_s: Array, tokens: Array
) -> Array:
    """$ per 1M tokens for a platform that cost ``capex_usd`` drawing ``power_w`` for ``wall_s``."""
    capex_rate = capex_usd * (1.0 + econ.capex_overhead) / (econ.lifetime_years * SECONDS_PER_YEAR)
    energy_rate = power_w * econ.pue * econ.usd_per_kwh / J_PER_KWH
    return (capex_rate + energy_rate) * wall_s / tokens * 1e6
