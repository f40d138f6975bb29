"""The one table of spec keys: derived from the ``spec_field`` metadata of the model dataclasses.

Every continuous leaf of a chip, a workload, a platform, a scenario or the economics declares
its spec-file key and unit next to its SI field (``models._pytree.spec_field``). Loaders,
``--set``, sweep axes and store attributes all read :func:`keys_of`; descriptive keys (names,
sources) that fill no leaf are listed here once.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from models._pytree import spec_keys

from ._errors import SpecError, suggest
from ._units import to_si


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """A spec key: the SI field it fills (None: descriptive), its units and what it accepts."""

    key: str
    field: str | None
    unit: str = "1"
    factor: float = 1.0
    si_unit: str = "1"
    required: bool = True
    kind: str = "positive"  # positive | nonnegative | int | fraction | str | bool | choice | list
    choices: tuple[str, ...] = ()
    doc: str = ""
    limit: float = math.inf  # the largest value (file units) that can describe something real

    @property
    def expected(self) -> str:
        if self.kind == "int":
            what = "an integer > 0"
        elif self.kind == "fraction":
            what = "a fraction in [0, 1)"
        elif self.kind == "nonnegative":
            what = "a number >= 0"
        elif self.kind in ("str", "choice", "bool", "list"):
            return self.doc
        else:
            what = "a number > 0"
        unit = f" in {self.unit}" if self.unit != "1" else ""
        return f"{self.doc}{unit}, {what}" if self.doc else f"{what}{unit}"

    def check(self, where: str, v: Any) -> Any:
        """The value if it is acceptable, else a one-line SpecError naming ``where`` and the key."""
        bad = f"{where}: key '{self.key}' = {v!r}: expected {self.expected}"
        if self.kind in ("str", "choice"):
            if not isinstance(v, str) or (self.kind == "choice" and v not in self.choices):
                raise SpecError(f"{bad}, one of {', '.join(self.choices)}" if self.kind == "choice" else bad)
        elif self.kind == "bool":
            if not isinstance(v, bool):
                raise SpecError(bad)
        elif self.kind == "list":
            if not isinstance(v, list) or not v:
                raise SpecError(bad)
        else:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpecError(bad)
            if self.kind == "int" and v != int(v):
                raise SpecError(bad)
            if (
                v < 0
                or (v == 0 and self.kind not in ("nonnegative", "fraction"))
                or (self.kind == "fraction" and v >= 1)
            ):
                raise SpecError(bad)
            if v > self.limit:
                raise SpecError(f"{bad}, at most {self.limit:g}")
        return v


def keys_of(cls: type) -> dict[str, KeyInfo]:
    """Spec key → KeyInfo of every leaf of the dataclass ``cls`` (inherited fields included)."""
    out = {}
    for key, (name, meta) in spec_keys(cls).items():
        factor, si_unit = to_si(meta["unit"])
        limit = meta.get("limit")
        limit = math.inf if limit is None else float(limit)
        out[key] = KeyInfo(
            key, name, meta["unit"], factor, si_unit, meta["required"], meta["kind"], (), meta["doc"], limit
        )
    return out


def described(key: str, kind: str, doc: str, *, required: bool = False, choices: tuple[str, ...] = ()) -> KeyInfo:
    """A descriptive key (no leaf)."""
    return KeyInfo(key, None, required=required, kind=kind, choices=choices, doc=doc)


def check(path: Path | str, data: dict[str, Any], schema: dict[str, KeyInfo]) -> dict[str, Any]:
    """Validate ``data`` against ``schema``; returns the values (file units, not yet converted)."""
    for key in data:
        if key not in schema:
            raise SpecError(f"{path}: unknown key '{key}'{suggest(str(key), schema)}")
    out: dict[str, Any] = {}
    for key, info in schema.items():
        if key not in data or data[key] is None:
            if info.required:
                raise SpecError(f"{path}: missing key '{key}': expected {info.expected}")
            continue
        out[key] = info.check(str(path), data[key])
    return out


def to_si_values(values: dict[str, Any], schema: dict[str, KeyInfo]) -> dict[str, float]:
    """SI field → value of every leaf key in ``values``."""
    return {schema[k].field: float(v) * schema[k].factor for k, v in values.items() if schema[k].field}
