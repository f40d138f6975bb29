"""Serving use cases (GenZ Table III): a request shape and its SLOs, by name."""

from __future__ import annotations

import dataclasses

from ._errors import SpecError, suggest
from ._files import CATALOG, read_mapping
from ._keys import check, described

USE_CASE_FILE = CATALOG / "use-cases.yaml"

USE_CASE_KEYS = {
    "description": described("description", "str", "text"),
    "prompt_tokens": described("prompt_tokens", "int", "prompt tokens, integer > 0", required=True),
    "output_tokens": described("output_tokens", "int", "output tokens, integer > 0", required=True),
    "beam": described("beam", "int", "beam width, integer > 0"),
    "ttft_s": described("ttft_s", "positive", "time to first token SLO in s > 0"),
    "tpot_s": described("tpot_s", "positive", "time per output token SLO in s > 0"),
}


@dataclasses.dataclass(frozen=True)
class UseCase:
    id: str
    description: str
    prompt_tokens: int
    output_tokens: int
    beam: int
    ttft_s: float | None
    tpot_s: float | None


def use_cases() -> dict[str, UseCase]:
    data = read_mapping(USE_CASE_FILE)
    out = {}
    for name, v in data.items():
        if not isinstance(v, dict):
            raise SpecError(f"{USE_CASE_FILE}: key '{name}': expected a mapping")
        c = check(f"{USE_CASE_FILE}: {name}", v, USE_CASE_KEYS)
        out[name] = UseCase(
            name,
            c.get("description", name),
            int(c["prompt_tokens"]),
            int(c["output_tokens"]),
            int(c.get("beam", 1)),
            c.get("ttft_s"),
            c.get("tpot_s"),
        )
    return out


def load_use_case(name: str) -> UseCase:
    table = use_cases()
    if name not in table:
        raise SpecError(
            f"--use-case: unknown use case '{name}'{suggest(name, list(table))} (known: {', '.join(table)})"
        )
    return table[name]
