"""The output schema: every metric of a configuration declared once (like ``spec_field`` for
inputs) — name with its SI unit, description, kind, display unit and direction.

:class:`Metrics` (what :func:`models.serve` returns), the datasets' attributes, the stores'
dtypes, the command line's tables, JSON and CSV, the report and the plots derive from
:data:`METRICS`. Adding a metric is one annotated field of :class:`Metrics` here plus its formula
in ``serve``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, NamedTuple, get_type_hints

from models._pytree import Array

BOUND_NAMES = ("compute", "memory", "network", "overhead")


class Infeasible(enum.IntEnum):
    """Why a configuration cannot run (``infeasible_reason``; 0: it can)."""

    OK = 0
    MEMORY = 1
    TP_BEYOND_HEADS = 2
    PP_BEYOND_LAYERS = 3
    UNDEFINED = 4
    EP_BEYOND_EXPERTS = 5
    DIE_TOO_LARGE = 6
    HBM_SHORELINE = 7
    POWER_DENSITY = 8
    SATURATED = 9


_REASON_TEXT = {
    Infeasible.OK: "ok",
    Infeasible.MEMORY: "memory: model and KV cache exceed the chip capacity",
    Infeasible.TP_BEYOND_HEADS: "tp exceeds the attention heads",
    Infeasible.PP_BEYOND_LAYERS: "pp exceeds the layers",
    Infeasible.UNDEFINED: "undefined: a latency, energy or cost is not finite (inputs outside the model's range)",
    Infeasible.EP_BEYOND_EXPERTS: "ep exceeds the experts",
    Infeasible.DIE_TOO_LARGE: "die: beyond the reticle (858 mm^2), or a wafer-scale engine beyond its wafer",
    Infeasible.HBM_SHORELINE: "hbm: more HBM stacks than the dies' edges hold",
    Infeasible.POWER_DENSITY: "power: more W/mm^2 than the cooling removes (1 W/mm^2, or the base chip's own)",
    Infeasible.SATURATED: "rate: requests arrive at or beyond the saturation rate (the queue grows without bound)",
}
INFEASIBLE_REASONS = tuple(_REASON_TEXT[r] for r in Infeasible)


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """One output: ``name`` ends in its SI ``unit``; ``kind`` is ``float``, ``bool`` or
    ``code`` (an index into ``codes``); ``label`` heads a table column, ``display`` is the
    unit it is shown in (a key of ``dse.specs.UNITS``; None: the SI unit); ``better`` is
    ``min`` or ``max`` where smaller or larger is better (None: neither)."""

    name: str
    unit: str
    description: str
    kind: str = "float"
    codes: tuple[str, ...] = ()
    label: str | None = None
    display: str | None = None
    better: str | None = None

    @property
    def header(self) -> str:
        """Column header: the label and, when it is not the SI unit, the display unit."""
        label = self.label or self.name
        return f"{label} {self.display}" if self.display else label


def metric(
    unit: str,
    description: str,
    *,
    kind: str = "float",
    codes: tuple[str, ...] = (),
    label: str | None = None,
    display: str | None = None,
    better: str | None = None,
) -> MetricInfo:
    """A metric's declaration, in the annotation of its :class:`Metrics` field (which names it)."""
    return MetricInfo("", unit, description, kind, codes, label, display, better)


class Metrics(NamedTuple):
    """The outputs of one configuration, each declared once with :func:`metric` (whole
    request unless the name says a phase; counts of tokens are output tokens unless stated)."""

    ttft_s: Annotated[
        Array,
        metric(
            "s",
            "time to first token: prefill of the whole batch, pipeline fill included",
            label="TTFT",
            display="ms",
            better="min",
        ),
    ]
    tpot_s: Annotated[
        Array,
        metric(
            "s",
            "time per output token: mean decode step over the output tokens",
            label="TPOT",
            display="ms",
            better="min",
        ),
    ]
    tokens_per_s_per_user: Annotated[
        Array,
        metric("token/s", "output tokens per second one request sees while it decodes (1 / TPOT; 0: no decode)",
               label="tok/s/user", better="max"),
    ]  # fmt: skip
    latency_s: Annotated[
        Array,
        metric("s", "request latency: prefill plus all decode steps", label="latency", display="ms", better="min"),
    ]
    prefill_latency_s: Annotated[Array, metric("s", "prefill pass of the batch", display="ms", better="min")]
    decode_latency_s: Annotated[Array, metric("s", "all decode steps of the batch", display="ms", better="min")]
    throughput_tokens_per_s: Annotated[
        Array, metric("token/s", "output tokens per second of the replica", label="tok/s", better="max")
    ]
    throughput_tokens_per_s_per_chip: Annotated[
        Array, metric("token/s", "output tokens per second per chip", label="tok/s/chip", better="max")
    ]
    prefill_tokens_per_s: Annotated[
        Array, metric("token/s", "prompt tokens per second during prefill", label="prompt tok/s", better="max")
    ]
    decode_tokens_per_s_per_chip: Annotated[
        Array, metric("token/s", "output tokens per second per chip during decode", label="tok/s/chip", better="max")
    ]
    energy_j: Annotated[
        Array, metric("J", "energy of the whole request batch, all chips", label="energy J", better="min")
    ]
    prefill_energy_j: Annotated[Array, metric("J", "energy of the prefill pass, all chips", better="min")]
    decode_energy_j: Annotated[Array, metric("J", "energy of all decode steps, all chips", better="min")]
    j_per_token: Annotated[
        Array, metric("J/token", "energy per output token, prefill included", label="J/token", better="min")
    ]
    prefill_j_per_token: Annotated[
        Array, metric("J/token", "prefill energy per prompt token", label="J/prompt tok", better="min")
    ]
    decode_j_per_token: Annotated[
        Array, metric("J/token", "decode energy per output token", label="J/token", better="min")
    ]
    tokens_per_kwh: Annotated[Array, metric("token/kWh", "output tokens per kWh, prefill included", better="max")]
    average_power_w: Annotated[Array, metric("W", "average power of the replica over the request", better="min")]
    tdp_w: Annotated[
        Array,
        metric("W", "TDP of one chip of the design: follows its peak rate and bandwidth from the base's, or as given",
               label="TDP W", better="min"),
    ]  # fmt: skip
    chip_price_usd: Annotated[
        Array,
        metric("USD", "price of one chip of the design: the base's plus its margin on the silicon added, or as given",
               label="chip $", better="min"),
    ]  # fmt: skip
    die_area_mm2: Annotated[
        Array,
        metric("mm2", "die area of the design, per die (published for a catalog chip; 0: not published)",
               label="die mm2", better="min"),
    ]  # fmt: skip
    silicon_cost_usd: Annotated[
        Array,
        metric("USD", "good logic dies and HBM of one chip of the design (0: no published silicon to vary)",
               label="silicon $", better="min"),
    ]  # fmt: skip
    embodied_carbon_kg: Annotated[
        Array,
        metric("kg", "CO2e of making one chip's logic dies and HBM (ACT model; 0: not modelled)", label="kgCO2e",
               better="min"),
    ]  # fmt: skip
    die_fill: Annotated[
        Array,
        metric("1", "die area over the largest it may have: the reticle, or a wafer-scale engine's wafer (0: not "
               "modelled)", label="die fill", better="min"),
    ]  # fmt: skip
    hbm_stacks: Annotated[
        Array,
        metric("1", "whole HBM stacks of the design, of its base chip's kind (0: no HBM or not modelled)", label="stacks",
               better="min"),
    ]  # fmt: skip
    hbm_fill: Annotated[
        Array,
        metric("1", "HBM stacks over the sites along the dies' edges (0: no HBM or not modelled)", label="HBM fill",
               better="min"),
    ]  # fmt: skip
    power_density_w_mm2: Annotated[
        Array,
        metric("W/mm2", "TDP over the logic silicon area (0: area not published)", label="W/mm2", better="min"),
    ]
    power_density_fill: Annotated[
        Array,
        metric("1", "power density over the most the cooling removes: 1 W/mm^2, or the base chip's own where "
               "higher (0: not modelled)", label="W/mm2 fill", better="min"),
    ]  # fmt: skip
    usd_per_mtok: Annotated[
        Array,
        metric(
            "USD/1M token",
            "TCO cost per million output tokens (capex amortized + energy × PUE)",
            label="$/1M tok",
            better="min",
        ),
    ]
    gco2_per_mtok: Annotated[
        Array,
        metric("g/1M token", "operational CO2e per million output tokens (energy × PUE × grid intensity)",
               label="gCO2/1M tok", better="min"),
    ]  # fmt: skip
    memory_per_chip_bytes: Annotated[
        Array,
        metric("B", "weights + KV cache + activations held by one chip", label="mem/chip", display="GB", better="min"),
    ]
    memory_fill: Annotated[
        Array, metric("1", "memory held by one chip over its capacity (fits when <= 1)", better="min")
    ]
    weight_bytes_per_chip: Annotated[Array, metric("B", "weights held by one chip", display="GB", better="min")]
    kv_bytes_per_chip: Annotated[
        Array, metric("B", "KV cache held by one chip at the end of the request", display="GB", better="min")
    ]
    feasible: Annotated[
        Array,
        metric("1", "the configuration fits and respects its constraints", kind="bool", label="fits", better="max"),
    ]
    infeasible_reason: Annotated[
        Array, metric("1", "reason code, see flag_meanings", kind="code", codes=INFEASIBLE_REASONS)
    ]
    mfu: Annotated[Array, metric("1", "model FLOPs utilization over the request", label="MFU", better="max")]
    mbu: Annotated[Array, metric("1", "memory bandwidth utilization over the request", label="MBU", better="max")]
    prefill_mfu: Annotated[Array, metric("1", "model FLOPs utilization of prefill", label="MFU", better="max")]
    decode_mbu: Annotated[Array, metric("1", "memory bandwidth utilization of decode", label="MBU", better="max")]
    arithmetic_intensity_flop_per_byte: Annotated[Array, metric("FLOP/B", "FLOPs per byte moved, whole request")]
    prefill_arithmetic_intensity_flop_per_byte: Annotated[Array, metric("FLOP/B", "FLOPs per byte moved, prefill")]
    decode_arithmetic_intensity_flop_per_byte: Annotated[Array, metric("FLOP/B", "FLOPs per byte moved, decode")]
    flops: Annotated[Array, metric("FLOP", "FLOPs of the request, all chips")]
    prefill_flops: Annotated[Array, metric("FLOP", "FLOPs of prefill, all chips")]
    decode_flops: Annotated[Array, metric("FLOP", "FLOPs of all decode steps, all chips")]
    bound: Annotated[
        Array,
        metric(
            "1",
            "largest time component over the request, see flag_meanings",
            kind="code",
            codes=BOUND_NAMES,
            label="bound",
        ),
    ]
    prefill_bound: Annotated[
        Array,
        metric(
            "1", "largest time component of prefill, see flag_meanings", kind="code", codes=BOUND_NAMES, label="bound"
        ),
    ]
    decode_bound: Annotated[
        Array,
        metric(
            "1", "largest time component of decode, see flag_meanings", kind="code", codes=BOUND_NAMES, label="bound"
        ),
    ]
    network_s: Annotated[
        Array,
        metric(
            "s", "exposed network time: TP and SP all-reduces, EP all-to-alls, PP transfers", display="ms", better="min"
        ),
    ]
    n_chips: Annotated[Array, metric("1", "chips of the platform (tp · pp · ep · sp · dp)", better="min")]
    slo_attainment: Annotated[
        Array,
        metric("1", "share of requests meeting the TTFT and TPOT SLOs (1 without SLOs)", label="in SLO", better="max"),
    ]
    goodput_tokens_per_s: Annotated[
        Array,
        metric("token/s", "output tokens/s of the requests that meet both SLOs", label="goodput tok/s", better="max"),
    ]
    p50_ttft_s: Annotated[
        Array,
        metric(
            "s",
            "median TTFT of requests arriving at the rate (without a rate: the full batch's, no queue)",
            label="p50 TTFT",
            display="ms",
            better="min",
        ),
    ]
    p90_ttft_s: Annotated[Array, metric("s", "90th-percentile TTFT", label="p90 TTFT", display="ms", better="min")]
    p99_ttft_s: Annotated[
        Array,
        metric(
            "s", "99th-percentile TTFT (inf: beyond the saturation rate)", label="p99 TTFT", display="ms", better="min"
        ),
    ]
    p50_tpot_s: Annotated[
        Array, metric("s", "median of the requests' TPOT", label="p50 TPOT", display="ms", better="min")
    ]
    p90_tpot_s: Annotated[Array, metric("s", "90th-percentile TPOT", label="p90 TPOT", display="ms", better="min")]
    p99_tpot_s: Annotated[Array, metric("s", "99th-percentile TPOT", label="p99 TPOT", display="ms", better="min")]
    p50_latency_s: Annotated[
        Array,
        metric("s", "median request latency, arrival to last token", label="p50 latency", display="ms", better="min"),
    ]
    p90_latency_s: Annotated[
        Array, metric("s", "90th-percentile request latency", label="p90 latency", display="ms", better="min")
    ]
    p99_latency_s: Annotated[
        Array, metric("s", "99th-percentile request latency", label="p99 latency", display="ms", better="min")
    ]
    queue_delay_s: Annotated[
        Array,
        metric(
            "s",
            "mean wait for a free slot and behind other prompts (0 without a rate)",
            label="queue",
            display="ms",
            better="min",
        ),
    ]
    saturation_rate_rps: Annotated[
        Array,
        metric(
            "request/s",
            "the request rate the platform serves at most (beyond it the queue grows without bound)",
            label="sat req/s",
            better="max",
        ),
    ]
    running_sequences: Annotated[
        Array, metric("1", "mean sequences running at the rate (the batch without one)", label="running")
    ]
    step_s: Annotated[
        Array,
        metric("s", "service curve: a decode iteration of one request, one replica (0: static batches)", display="ms"),
    ]
    step_per_sequence_s: Annotated[
        Array, metric("s", "service curve: a decode iteration's time per further running sequence", display="ms")
    ]
    prefill_pass_s: Annotated[
        Array, metric("s", "service curve: fixed time of a prefill pass of its own (chunked: 0)", display="ms")
    ]
    prefill_per_token_s: Annotated[Array, metric("s", "service curve: prefill time per prompt token", display="ms")]
    kv_capacity_tokens: Annotated[
        Array, metric("token", "prompt and output tokens the KV cache of one replica holds (inf: no KV cache)")
    ]
    requests_per_s: Annotated[
        Array,
        metric(
            "request/s", "requests completed per second (images/s for image workloads)", label="images/s", better="max"
        ),
    ]
    j_per_request: Annotated[
        Array,
        metric(
            "J/request",
            "energy per request, prefill included (J per image for image workloads)",
            label="J/image",
            better="min",
        ),
    ]
    usd_per_k_requests: Annotated[
        Array,
        metric(
            "USD/1k request",
            "TCO cost per thousand requests ($ per 1k images for image workloads)",
            label="$/1k images",
            better="min",
        ),
    ]


METRICS: tuple[MetricInfo, ...] = tuple(
    dataclasses.replace(hint.__metadata__[0], name=name)
    for name, hint in get_type_hints(Metrics, include_extras=True).items()
)
METRIC: dict[str, MetricInfo] = {m.name: m for m in METRICS}
