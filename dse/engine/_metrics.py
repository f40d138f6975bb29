"""Units and descriptions of every output metric (CF-style attributes), and their storage types."""

from __future__ import annotations

from typing import Any

from models import BOUND_NAMES, INFEASIBLE_REASONS, Metrics

# Units and descriptions of every output (CF-style attrs).
METRIC_INFO: dict[str, tuple[str, str]] = {
    "ttft_s": ("s", "time to first token: prefill of the whole batch, pipeline fill included"),
    "tpot_s": ("s", "time per output token: mean decode step over the output tokens"),
    "latency_s": ("s", "request latency: prefill plus all decode steps"),
    "prefill_latency_s": ("s", "prefill pass of the batch"),
    "decode_latency_s": ("s", "all decode steps of the batch"),
    "throughput_tokens_per_s": ("token/s", "output tokens per second of the replica"),
    "throughput_tokens_per_s_per_chip": ("token/s", "output tokens per second per chip"),
    "prefill_tokens_per_s": ("token/s", "prompt tokens per second during prefill"),
    "decode_tokens_per_s_per_chip": ("token/s", "output tokens per second per chip during decode"),
    "prefill_j_per_token": ("J/token", "prefill energy per prompt token"),
    "decode_j_per_token": ("J/token", "decode energy per output token"),
    "energy_j": ("J", "energy of the whole request batch, all chips"),
    "prefill_energy_j": ("J", "energy of the prefill pass, all chips"),
    "decode_energy_j": ("J", "energy of all decode steps, all chips"),
    "j_per_token": ("J/token", "energy per output token, prefill included"),
    "tokens_per_kwh": ("token/kWh", "output tokens per kWh, prefill included"),
    "average_power_w": ("W", "average power of the replica over the request"),
    "usd_per_mtok": ("USD/1M token", "TCO cost per million output tokens (capex amortized + energy × PUE)"),
    "memory_per_chip_bytes": ("B", "weights + KV cache + activations held by one chip"),
    "memory_fill": ("1", "memory held by one chip over its capacity (fits when <= 1)"),
    "weight_bytes_per_chip": ("B", "weights held by one chip"),
    "kv_bytes_per_chip": ("B", "KV cache held by one chip at the end of the request"),
    "feasible": ("1", "the configuration fits and respects its constraints"),
    "infeasible_reason": ("1", "reason code, see flag_meanings"),
    "mfu": ("1", "model FLOPs utilization over the request"),
    "mbu": ("1", "memory bandwidth utilization over the request"),
    "prefill_mfu": ("1", "model FLOPs utilization of prefill"),
    "decode_mbu": ("1", "memory bandwidth utilization of decode"),
    "arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, whole request"),
    "prefill_arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, prefill"),
    "decode_arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, decode"),
    "flops": ("FLOP", "FLOPs of the request, all chips"),
    "prefill_flops": ("FLOP", "FLOPs of prefill, all chips"),
    "decode_flops": ("FLOP", "FLOPs of all decode steps, all chips"),
    "bound": ("1", "largest time component over the request, see flag_meanings"),
    "prefill_bound": ("1", "largest time component of prefill, see flag_meanings"),
    "decode_bound": ("1", "largest time component of decode, see flag_meanings"),
    "network_s": ("s", "exposed network time: TP and SP all-reduces, EP all-to-alls, PP transfers"),
    "n_chips": ("1", "chips of the platform (tp · pp · ep · sp · dp)"),
    "slo_attainment": ("1", "share of requests meeting the TTFT and TPOT SLOs (1 without SLOs)"),
    "goodput_tokens_per_s": ("token/s", "output tokens/s of the requests that meet both SLOs"),
    "requests_per_s": ("request/s", "requests completed per second (images/s for image workloads)"),
    "j_per_request": ("J/request", "energy per request, prefill included (J per image for image workloads)"),
    "usd_per_k_requests": ("USD/1k request", "TCO cost per thousand requests ($ per 1k images for image workloads)"),
}
assert set(METRIC_INFO) == set(Metrics._fields)

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


BOOL_METRICS = ("feasible",)
CODE_METRICS = ("infeasible_reason", "bound", "prefill_bound", "decode_bound")


def metric_attrs(name: str) -> dict[str, Any]:
    """``units``, ``description`` and, for codes, ``flag_values``/``flag_meanings`` of a metric."""
    units, desc = METRIC_INFO[name]
    attrs: dict[str, Any] = {"units": units, "description": desc}
    if name.endswith("bound"):
        attrs |= {"flag_values": list(range(len(BOUND_NAMES))), "flag_meanings": " ".join(BOUND_NAMES)}
    if name == "infeasible_reason":
        attrs |= {"flag_values": list(range(len(INFEASIBLE_REASONS))), "flag_meanings": " | ".join(INFEASIBLE_REASONS)}
    return attrs
