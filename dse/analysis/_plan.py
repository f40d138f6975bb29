"""Deployment search: the best (tp, pp, ep, dp, batch, chunk, batching) of a model on a chip.

Every candidate layout that fits in ``max_chips`` chips is evaluated in steady-state serving
(continuous batching, and chunked prefill at several chunk sizes) over a ladder of batch
sizes, vectorized: one compiled program per batching mode. Candidates that break the memory
or an SLO (the mean TTFT or TPOT, or, for a spread of prompt lengths, fewer than 90 % of the
requests within both) are rejected with the reason; the rest are ranked by the objective (ties,
such as every deployment of as many chips at a given rate, by $/1M tokens). The answer is
the best candidate, the best candidate of every other parallel layout (why it loses: its
objective relative to the best), and the layouts that never meet the SLOs (why: the
constraint that excludes their closest candidate, and by how much).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from dse.engine import (
    calibration_source,
    check_context,
    framework_of,
    make_config,
    run_designs,
    software_levels,
    splits_heads,
)
from dse.specs import HardwareEntry, ModelEntry, PlatformEntry, SpecError, load_hardware, load_model
from models import DEFAULT_DTYPE, INFEASIBLE_REASONS, Infeasible

# name: (metric, sense, label, scale)
OBJECTIVES = {
    "tokens_per_s_per_chip": ("throughput_tokens_per_s_per_chip", "max", "tok/s/chip", 1.0),
    "usd_per_mtok": ("usd_per_mtok", "min", "$/1M tok", 1.0),
    "tokens_per_s_per_user": ("tpot_s", "min", "tok/s/user", None),  # 1 / TPOT
    "goodput_per_chip": ("goodput_tokens_per_s_per_chip", "max", "goodput tok/s/chip", 1.0),
}
# A deployment meets the SLOs when this share of its requests does (DistServe's goodput:
# the load served at 90 % SLO attainment; Zhong et al., OSDI 2024).
ATTAINMENT = 0.9
BATCH_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # sequences running per replica
CHUNK_LADDER = (256, 512, 1024, 2048, 4096, 8192)  # prefill tokens per iteration (Sarathi-Serve)
LAYOUT = ("batching", "tp", "pp", "ep")  # a layout; dp replicates it


@dataclasses.dataclass(frozen=True)
class Slo:
    ttft_s: float | None = None
    tpot_s: float | None = None
    # Spread of the request mix: coefficient of variation of the prompt lengths (log-normal).
    prompt_cv: float = 0.0
    # Requests arriving at a rate (Poisson): the load every candidate serves, and tail SLOs.
    rate_rps: float | None = None
    p99_ttft_s: float | None = None
    p90_tpot_s: float | None = None


def _powers_of_two(limit: float) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def layouts(model: ModelEntry, max_chips: int) -> list[tuple[int, int, int, int]]:
    """(tp, pp, ep, dp) with tp·pp·ep·dp ≤ max_chips: tp a power of two that splits the heads
    (and divides or replicates the KV heads), pp a power of two up to the layers, ep a divisor
    of the experts (1 for dense models), dp any count of replicas."""
    spec = model.spec
    heads, layers = float(spec.n_heads), float(spec.n_layers)
    experts = int(spec.n_experts) if spec.moe else 1
    tps = [t for t in _powers_of_two(min(max_chips, heads)) if splits_heads(spec, t)]
    pps = _powers_of_two(min(max_chips, layers))
    eps = [e for e in range(1, min(experts, max_chips) + 1) if experts % e == 0]
    out = []
    for tp, pp, ep in itertools.product(tps, pps, eps):
        chips = tp * pp * ep
        out += [(tp, pp, ep, dp) for dp in range(1, max_chips // chips + 1)] if chips <= max_chips else []
    return out


def plan(
    model: str | ModelEntry,
    hardware: str | HardwareEntry,
    max_chips: int,
    *,
    prompt_tokens: int,
    output_tokens: int,
    beam: int = 1,
    prefix_tokens: int = 0,
    slo: Slo = Slo(),
    objective: str = "tokens_per_s_per_chip",
    dtype: str = DEFAULT_DTYPE,
    level: str = "calibrated",
    platform: PlatformEntry | None = None,
    top: int = 5,
    framework: str | None = None,
) -> dict[str, Any]:
    """Search every deployment of ``model`` on up to ``max_chips`` chips of ``hardware``.

    Returns ``{"best": row, "runners_up": [row, …], "excluded": [row, …], "candidates": n,
    "feasible": n, …}``; a row holds the layout, batch, chunk, the metrics and ``why``.
    """
    if objective not in OBJECTIVES:
        raise SpecError(f"--objective: unknown objective '{objective}': expected one of {', '.join(OBJECTIVES)}")
    if max_chips < 1:
        raise SpecError(f"--max-chips: {max_chips}: expected an integer >= 1")
    m = model if isinstance(model, ModelEntry) else load_model(model)
    h = hardware if isinstance(hardware, HardwareEntry) else load_hardware(hardware)
    check_context(m, prompt_tokens, output_tokens, m.id)
    lays = layouts(m, max_chips)
    chunks = [c for c in CHUNK_LADDER if c <= prompt_tokens] or [prompt_tokens]
    rows: list[dict[str, Any]] = []
    modes = {"continuous": [0], "chunked": chunks}
    for mode, chunk_list in modes.items():
        cand = [
            (tp, pp, ep, dp, b * dp, c)
            for (tp, pp, ep, dp), b, c in itertools.product(lays, BATCH_LADDER, chunk_list)
            if b >= ep  # every expert-parallel group serves at least one sequence
        ]
        if not cand:
            continue
        arr = np.asarray(cand, dtype=float)
        cfg = make_config(
            m, h, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, batching=mode, platform=platform,
            prompt_tokens=prompt_tokens, output_tokens=output_tokens,
        )  # fmt: skip
        knobs = {"tp": arr[:, 0], "pp": arr[:, 1], "ep": arr[:, 2], "dp": arr[:, 3], "batch": arr[:, 4]}
        knobs["beam"] = np.full(len(cand), float(beam))
        knobs["prefix_tokens"] = np.full(len(cand), float(prefix_tokens))
        knobs["slo_ttft_s"] = np.full(len(cand), slo.ttft_s or 0.0)
        knobs["slo_tpot_s"] = np.full(len(cand), slo.tpot_s or 0.0)
        knobs["prompt_tokens_cv"] = np.full(len(cand), slo.prompt_cv)
        if slo.rate_rps:  # the queue's model only when requests arrive at a rate
            knobs["rate_rps"] = np.full(len(cand), slo.rate_rps)
        if mode == "chunked":
            knobs["chunk_tokens"] = arr[:, 5]
        res = run_designs(cfg, knobs, software_levels(h, [level], framework))
        for i, (tp, pp, ep, dp, b, c) in enumerate(cand):
            r = {k: float(res[k][0, i]) for k in res}
            r["goodput_tokens_per_s_per_chip"] = r["goodput_tokens_per_s"] / r["n_chips"]
            rows.append(
                dict(
                    batching=mode, tp=tp, pp=pp, ep=ep, dp=dp, batch=b, chunk_tokens=c if mode == "chunked" else None,
                    chips=tp * pp * ep * dp, **r,
                )
            )  # fmt: skip
    metric, sense, _, _ = OBJECTIVES[objective]
    sign = 1.0 if sense == "min" else -1.0
    for r in rows:
        r["why"] = _violation(r, slo)
        r["score"] = sign * r[metric]
    ok = [r for r in rows if not r["why"]]
    # Equal scores (at a given rate every deployment of as many chips serves the same tokens
    # per chip) go to the cheaper one, then the smaller.
    ok.sort(key=lambda r: (_tied(r["score"]), r["usd_per_mtok"], r["chips"]))
    best = ok[0] if ok else None
    # The best candidate of every other layout, and why it loses. Replicas (dp) of a layout serve
    # the same per chip: a layout is (batching, tp, pp, ep), shown at its best replica count.
    by_layout: dict[tuple, dict[str, Any]] = {}
    for r in ok:
        by_layout.setdefault(tuple(r[k] for k in LAYOUT), r)
    runners = [r for key, r in by_layout.items() if best is None or key != tuple(best[k] for k in LAYOUT)]
    for r in runners:
        r["why"] = _loses(r, best, metric, sense)
    # Layouts with no candidate meeting everything: the closest miss.
    excluded: dict[tuple, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r["miss"], r["chips"])):
        key = tuple(r[k] for k in LAYOUT)
        if key not in by_layout:
            excluded.setdefault(key, r)
    return {
        "model": m.id,
        "hardware": h.id,
        "hardware_name": h.name,
        "calibration": calibration_source(h) if level == "calibrated" else "datasheet",
        "framework": framework_of(h, framework) if level == "calibrated" else "none",
        "level": level,
        "objective": objective,
        "slo": dataclasses.asdict(slo),
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "beam": beam,
        "prefix_tokens": prefix_tokens,
        "max_chips": max_chips,
        "candidates": len(rows),
        "feasible": len(ok),
        "best": best,
        "runners_up": runners[:top],
        "excluded": sorted(excluded.values(), key=lambda r: r["miss"])[:top],
        "curve": throughput_curve(rows, slo),
    }


def throughput_curve(rows: list[dict[str, Any]], slo: Slo) -> list[dict[str, Any]]:
    """The throughput-per-chip vs tokens/s-per-user frontier of the candidates that run and
    meet the TTFT SLO (the TPOT SLO is where the curve is read, not a filter): no other such
    candidate is faster for its users and serves more tokens per chip. Ordered by tokens/s
    per user; each point is a candidate row with ``tokens_per_s_per_user`` added."""
    pts = [
        r | {"tokens_per_s_per_user": 1.0 / r["tpot_s"]}
        for r in rows
        if r["feasible"] and (slo.ttft_s is None or r["ttft_s"] <= slo.ttft_s)
    ]
    pts.sort(key=lambda r: (-r["tokens_per_s_per_user"], -r["throughput_tokens_per_s_per_chip"], r["chips"]))
    front: list[dict[str, Any]] = []
    for r in pts:  # faster per user first: a point joins when it serves more per chip than all before it
        if not front or r["throughput_tokens_per_s_per_chip"] > front[-1]["throughput_tokens_per_s_per_chip"]:
            front.append(r)
    return front[::-1]


def _violation(r: dict[str, Any], slo: Slo) -> str:
    """Why a candidate is rejected ('' if it is not); ``r['miss']`` is how far it is off."""
    reasons, miss = [], 0.0
    if not r["feasible"]:
        if int(r["infeasible_reason"]) == Infeasible.SATURATED:  # runs, but not at this rate
            reasons.append(f"saturates at {r['saturation_rate_rps']:.3g} requests/s < {slo.rate_rps:g}")
            miss += 5.0 + np.log(max(slo.rate_rps or 1.0, 1e-9) / max(r["saturation_rate_rps"], 1e-9))
        else:
            reasons.append(INFEASIBLE_REASONS[int(r["infeasible_reason"])])
            miss += 10.0  # a design that cannot run is further than any SLO miss
    limits = (("ttft_s", slo.ttft_s), ("tpot_s", slo.tpot_s), ("p99_ttft_s", slo.p99_ttft_s),
              ("p90_tpot_s", slo.p90_tpot_s))  # fmt: skip
    for key, limit in limits if r["feasible"] else ():
        if limit is not None and r[key] > limit:
            name = key[:-2].upper().replace("_", " ")
            reasons.append(f"{name} {r[key] * 1e3:.4g} ms > {limit * 1e3:.4g} ms")
            miss += np.log(r[key] / limit)
    if not reasons and r["slo_attainment"] < ATTAINMENT:  # the mean meets the SLOs, the spread does not
        reasons.append(f"{r['slo_attainment'] * 100:.3g} % of requests within the SLOs < {ATTAINMENT * 100:g} %")
        miss += np.log(ATTAINMENT / max(r["slo_attainment"], 1e-9))
    r["miss"] = miss
    return "; ".join(reasons)


def _tied(score: float) -> float:
    """The score to 9 significant digits: equal up to rounding ties."""
    return float(f"{score:.9g}")


def _loses(r: dict[str, Any], best: dict[str, Any] | None, metric: str, sense: str) -> str:
    if best is None:
        return ""
    a, b = r[metric], best[metric]
    if _tied(a) == _tied(b):
        if r["usd_per_mtok"] != best["usd_per_mtok"]:
            return f"same {metric}, {(r['usd_per_mtok'] / best['usd_per_mtok'] - 1) * 100:.3g} % higher usd_per_mtok"
        return f"same {metric} and usd_per_mtok, more chips"
    if sense == "max":
        return f"{(1 - a / b) * 100:.3g} % lower {metric}"
    return f"{(a / b - 1) * 100:.3g} % higher {metric}"
