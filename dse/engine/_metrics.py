"""Units and descriptions of every output metric (CF-style attributes), and their storage types."""

from __future__ import annotations

from typing import Any

from dse.specs import to_si
from models import METRIC, METRICS

# Derived from the one output schema (models.METRICS).
METRIC_INFO: dict[str, tuple[str, str]] = {m.name: (m.unit, m.description) for m in METRICS}
BOOL_METRICS = tuple(m.name for m in METRICS if m.kind == "bool")
CODE_METRICS = tuple(m.name for m in METRICS if m.kind == "code")
STORAGE_DTYPES = {"float": "float32", "bool": "bool", "code": "int8"}  # in sweep stores


def storage_dtype(name: str) -> str:
    """The dtype a sweep store keeps ``name`` in (float32 metrics: 7 digits, within 1e-6)."""
    return STORAGE_DTYPES[METRIC[name].kind] if name in METRIC else "float32"


def display_scale(name: str) -> float:
    """What a metric's SI value is multiplied by to show it in its display unit (1 for none)."""
    unit = METRIC[name].display
    return 1.0 / to_si(unit)[0] if unit else 1.0


# One phase of a request (``evaluate --phase prefill|decode``) is described by these metrics,
# each read from the metric of that phase; the rest describe the whole request (its prefill,
# all its decode steps, its cost per request) and are left out, never shown under the phase.
PHASE_METRICS: dict[str, dict[str, str]] = {
    "prefill": {
        "latency_s": "prefill_latency_s",
        "ttft_s": "ttft_s",
        "energy_j": "prefill_energy_j",
        "prefill_j_per_token": "prefill_j_per_token",
        "prefill_tokens_per_s": "prefill_tokens_per_s",
        "mfu": "prefill_mfu",
        "arithmetic_intensity_flop_per_byte": "prefill_arithmetic_intensity_flop_per_byte",
        "flops": "prefill_flops",
        "bound": "prefill_bound",
    },
    "decode": {
        "latency_s": "decode_latency_s",
        "tpot_s": "tpot_s",
        "energy_j": "decode_energy_j",
        "j_per_token": "decode_j_per_token",
        "throughput_tokens_per_s_per_chip": "decode_tokens_per_s_per_chip",
        "mbu": "decode_mbu",
        "arithmetic_intensity_flop_per_byte": "decode_arithmetic_intensity_flop_per_byte",
        "flops": "decode_flops",
        "bound": "decode_bound",
    },
}
# What a configuration holds, the same in every phase.
STATE_METRICS = (
    "memory_per_chip_bytes",
    "memory_fill",
    "weight_bytes_per_chip",
    "kv_bytes_per_chip",
    "feasible",
    "infeasible_reason",
    "n_chips",
)


def phase_metrics(phase: str) -> dict[str, str]:
    """{shown name: metric it is read from} of ``phase`` (``request``: every metric as it is)."""
    if phase not in PHASE_METRICS:
        return {k: k for k in METRIC_INFO}
    return PHASE_METRICS[phase] | {k: k for k in STATE_METRICS}


def column(name: str, label: str | None = None) -> tuple[str, str, float | None]:
    """(metric, header, display scale; None for a code) of a table column, from the output
    schema; ``label`` replaces the metric's own (a decode step's TPOT is headed "step")."""
    m = METRIC[name]
    header = f"{label} {m.display}" if label and m.display else label or m.header
    return name, header, None if m.kind == "code" else display_scale(name)


def metric_attrs(name: str) -> dict[str, Any]:
    """``units``, ``description`` and, for codes, ``flag_values``/``flag_meanings`` of a metric."""
    m = METRIC[name]
    attrs: dict[str, Any] = {"units": m.unit, "description": m.description}
    if m.codes:
        sep = " | " if any(" " in c for c in m.codes) else " "  # CF flag_meanings: words, else phrases
        attrs |= {"flag_values": list(range(len(m.codes))), "flag_meanings": sep.join(m.codes)}
    return attrs
