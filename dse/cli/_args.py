"""Parsing of numeric command-line values, with one-line errors naming the flag."""

from __future__ import annotations

from dse.specs import SpecError


def positive(text: str | None, flag: str, integer: bool = False) -> float | None:
    """A number > 0 (an integer with ``integer``) from ``text``, or None when not given."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf") or (integer and v != int(v)):
        raise SpecError(f"{flag}: '{text}': expected {'an integer' if integer else 'a number'} > 0")
    return v
