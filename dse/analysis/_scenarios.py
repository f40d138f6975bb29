"""Scenario rows of a CSV (``predict``'s input and ``calibrate``'s measurements): the columns,
their one-line errors, and each row as the knobs of one evaluation."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dse import specs
from dse.engine import MAX_COUNT
from dse.specs import SpecError, suggest
from models import BATCHING, DTYPES


def read_csv(
    path: Path, required: Sequence[str], optional: Sequence[str] = (), outputs: Sequence[str] = ()
) -> list[dict[str, str]]:
    """The rows of a CSV of scenarios: every column one of ``required`` or ``optional``, each
    once; a column the command writes (``outputs``) is refused, not silently replaced."""
    text = specs.read_input(path, "a CSV file")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        cols = reader.fieldnames or []
    except csv.Error as e:
        raise SpecError(f"{path}: not a valid CSV file ({e})") from None
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            raise SpecError(f"{path}: column '{c}' appears twice: expected each column once")
        seen.add(c)
        if c in outputs and c not in optional:
            raise SpecError(
                f"{path}: column '{c}' is one this command writes: expected an input without it (remove the "
                "output columns of an earlier run)"
            )
        if c not in required and c not in optional:
            known = [*required, *optional]
            raise SpecError(f"{path}: unknown column '{c}'{suggest(c, known)}: expected columns of {', '.join(known)}")
    for i, row in enumerate(rows):
        if None in row:  # csv.DictReader keeps the cells beyond the header under None
            raise SpecError(
                f"{path}: row {i + 2}: {len(cols) + len(row[None])} cells: expected {len(cols)} (the header's)"
            )
    for c in required:
        if c not in cols:
            raise SpecError(f"{path}: missing column '{c}': expected columns {', '.join(required)}")
    if not rows:
        raise SpecError(f"{path}: no rows: expected at least one scenario")
    return rows


def cell(path: Path, i: int, row: dict[str, str], col: str, kind: str = "int", default: str | None = None) -> Any:
    """A CSV cell: text (``str``), a number (``number``: the engine checks what it may be) or
    a GEMM dimension (``int``: a count of a kernel row, which is no knob)."""
    raw = (row.get(col) or "").strip() or default
    where = f"{path}: row {i + 2}: column '{col}'"
    if raw is None:
        raise SpecError(f"{where} is empty: expected a value")
    if kind == "str":
        return raw
    expected = "expected a number" if kind == "number" else f"expected an integer from 1 to {MAX_COUNT:,}"
    try:
        v = float(raw)
    except ValueError:
        raise SpecError(f"{where} = '{raw}': {expected}") from None
    if kind == "int" and (not np.isfinite(v) or v <= 0 or v != int(v) or v > MAX_COUNT):
        raise SpecError(f"{where} = '{raw}': {expected}")
    return v


# predict's phases: the metric of latency, of energy, of the bound, and the held-out error
# that gives the interval. A decode row is one step at the context; a request row is the
# prefill of the batch and its output_tokens decode steps.
PREDICT_PHASES = {
    "prefill": ("prefill_latency_s", "prefill_energy_j", "prefill_bound", "prefill"),
    "decode": ("decode_latency_s", "decode_energy_j", "decode_bound", "decode"),
    "request": ("latency_s", "energy_j", "bound", "latency"),
}


PREDICT_REQUIRED = ("model", "hardware", "phase", "batch", "prompt_tokens", "context_tokens", "tp")
PREDICT_OPTIONAL = ("pp", "ep", "sp", "dp", "dtype", "output_tokens", "framework", "batching", "chunk_tokens")
INTERVAL_COLUMNS = ("latency_lo_s", "latency_hi_s", "energy_lo_j", "energy_hi_j")


def parse_row(path: Path, i: int, r: dict[str, str]) -> dict[str, Any]:
    """One scenario row: its phase, dtype, batching and the counts of its evaluation (a
    decode row is one step at ``context_tokens``; prefill and decode rows have one output token)."""
    phase = cell(path, i, r, "phase", "str")
    if phase not in PREDICT_PHASES:
        raise SpecError(f"{path}: row {i + 2}: column 'phase' = '{phase}': expected one of {', '.join(PREDICT_PHASES)}")
    dtype = cell(path, i, r, "dtype", "str", "bf16")
    if dtype not in DTYPES:
        raise SpecError(f"{path}: row {i + 2}: column 'dtype' = '{dtype}': expected one of {', '.join(DTYPES)}")
    batching = cell(path, i, r, "batching", "str", "static")
    if batching not in BATCHING:
        raise SpecError(f"{path}: row {i + 2}: column 'batching' = '{batching}': expected one of {', '.join(BATCHING)}")
    return dict(
        phase=phase,
        dtype=dtype,
        batching=batching,
        batch=cell(path, i, r, "batch", "number"),
        tp=cell(path, i, r, "tp", "number"),
        pp=cell(path, i, r, "pp", "number", "1"),
        ep=cell(path, i, r, "ep", "number", "1"),
        sp=cell(path, i, r, "sp", "number", "1"),
        dp=cell(path, i, r, "dp", "number", "1"),
        chunk_tokens=cell(path, i, r, "chunk_tokens", "number", "0"),
        tokens=cell(path, i, r, "context_tokens" if phase == "decode" else "prompt_tokens", "number"),
        output=cell(path, i, r, "output_tokens", "number") if phase == "request" else 1.0,
    )


# The knobs of a parsed row (knob -> key of :func:`parse_row`).
ROW_KNOBS = (("batch", "batch"), ("tp", "tp"), ("pp", "pp"), ("ep", "ep"), ("sp", "sp"), ("dp", "dp"),
             ("prompt_tokens", "tokens"), ("output_tokens", "output"), ("chunk_tokens", "chunk_tokens"))  # fmt: skip


def row_labels(row: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """How each knob of a row is named in an error (its column)."""
    labels = {k: (f"column '{src if k not in ('prompt_tokens', 'output_tokens') else k}'", 1.0) for k, src in ROW_KNOBS}
    if row["phase"] == "decode":
        labels["prompt_tokens"] = ("column 'context_tokens'", 1.0)
    return labels
