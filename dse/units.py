"""Unit conversions, applied once when specs are loaded (everything inside is SI).

Decimal prefixes for bandwidth, capacity and FLOP rates, as datasheets use them
(SI brochure, BIPM 2019, Table 7): 1 TB/s = 1e12 B/s, 1 GB = 1e9 B, 1 TFLOP/s = 1e12 FLOP/s.
Binary prefixes (IEC 80000-13) only where a key says so (``_gib``).
"""

KILO = 1e3
MEGA = 1e6
GIGA = 1e9
TERA = 1e12
PETA = 1e15
GIB = 2.0**30  # IEC 80000-13 gibibyte
MICRO = 1e-6
NANO = 1e-9
PICO = 1e-12
MILLI = 1e-3
