"""Units of spec-file values and their conversion to SI, applied once when specs are loaded.

Decimal prefixes for bandwidth, capacity and FLOP rates, as datasheets use them (SI
brochure, BIPM 2019, Table 7): 1 TB/s = 1e12 B/s, 1 GB = 1e9 B, 1 TFLOP/s = 1e12 FLOP/s.
A datasheet figure in binary units (GiB) is converted in the catalog file, with a comment.

Each unit a spec field declares (``models._pytree.spec_field``) maps here to its factor to
SI and the SI unit of the field; this is the only table of units.
"""

from __future__ import annotations

KILO, MEGA, GIGA, TERA, PETA = 1e3, 1e6, 1e9, 1e12, 1e15
MICRO, FEMTO = 1e-6, 1e-15

# spec-file unit → (factor to SI, SI unit)
UNITS: dict[str, tuple[float, str]] = {
    "1": (1.0, "1"),
    "TB/s": (TERA, "B/s"),
    "PB/s": (PETA, "B/s"),
    "GB/s": (GIGA, "B/s"),
    "TB": (TERA, "B"),
    "GB": (GIGA, "B"),
    "MB": (MEGA, "B"),
    "TFLOP/s": (TERA, "FLOP/s"),
    "TOP/s": (TERA, "OP/s"),
    "GHz": (GIGA, "Hz"),
    "us": (MICRO, "s"),
    "ms": (1e-3, "s"),
    "W": (1.0, "W"),
    "USD": (1.0, "USD"),
    "mm2": (1.0, "mm2"),
    "fJ": (FEMTO, "J"),
    # Power per unit of activity: W per TFLOP/s = 1e-12 J per FLOP; W per TB/s = 1e-12 J per byte.
    "W/(TFLOP/s)": (1.0 / TERA, "J/FLOP"),
    "W/(TB/s)": (1.0 / TERA, "J/B"),
    "year": (1.0, "year"),
    "USD/kWh": (1.0, "USD/kWh"),
    "g/kWh": (1.0, "g/kWh"),  # grid carbon intensity, kept per kWh as it is published
}


def to_si(unit: str) -> tuple[float, str]:
    """(factor, SI unit) of a spec-file unit."""
    return UNITS[unit]
