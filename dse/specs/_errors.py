"""User errors: one line naming the file or argument, the key, and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(ValueError):
    """A user error in a spec or an argument: one line naming the file, the key, what is expected."""


def suggest(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
