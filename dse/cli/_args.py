"""Parsing of numeric command-line values, with one-line errors naming the flag."""

from __future__ import annotations

from dse.specs import SpecError


def positive(text: str | None, flag: str, integer: bool = False, at_most: float | None = None) -> float | None:
    """A number > 0 (an integer with ``integer``, at most ``at_most``) from ``text``, or None
    when not given."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf") or (integer and v != int(v)):
        raise SpecError(f"{flag}: '{text}': expected {'an integer' if integer else 'a number'} > 0")
    if at_most is not None:
        at_most_(v, flag, at_most)
    return v


def at_most_(value: float, flag: str, limit: float, why: str = "") -> float:
    """``value``, or a one-line error naming the bound: every size a user can type is bounded
    before the work starts (no runaway)."""
    if value > limit:
        raise SpecError(f"{flag}: {value:,.10g}: expected at most {limit:,.10g}{f' ({why})' if why else ''}")
    return value
