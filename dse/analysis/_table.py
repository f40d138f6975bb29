"""Plain-text tables for the terminal: aligned columns, engineering formatting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt(x: Any) -> str:
    """Format a number the one way every table does: 4 significant digits below 1,000, whole
    numbers with thousands separators from 1,000 to 10^12, exponents only beyond (or below 10^-4)."""
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10_000 else str(x)
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e12 or ax < 1e-4):
        return f"{x:.3e}"
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.1f}"
    return f"{x:.4g}"


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows under headers, numbers right-aligned, text left-aligned."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(not isinstance(r[i], str) for r in rows) if rows else False for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric, strict=True))

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(s.rstrip() for s in out)
