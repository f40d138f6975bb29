"""``inferbench design``: the chip knobs that meet the SLOs at the best objective, by gradient."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from dse import analysis
from dse.engine import (
    LEVELS,
    calibration_source,
    display_scale,
    make_config,
    run_designs,
    silicon_source,
    software_levels,
)
from dse.specs import SpecError, load_hardware, load_model, load_use_case, use_cases
from dse.sweep import parse_constraint, parse_objective
from models import BOUND_NAMES, DEFAULT_DTYPE, DTYPES

from ._args import positive


def cmd_design(args: argparse.Namespace) -> int:
    case = load_use_case(args.use_case) if args.use_case else None
    prompt = positive(args.prompt_tokens, "--prompt-tokens", True) or (case.prompt_tokens if case else 2048)
    output = positive(args.output_tokens, "--output-tokens", True) or (case.output_tokens if case else 256)
    hw = load_hardware(args.hardware)
    model = load_model(args.model)
    config = make_config(
        model,
        hw,
        tp=positive(args.tp, "--tp", True) or 1,
        batch=positive(args.batch, "--batch", True) or 1,
        prompt_tokens=prompt,
        output_tokens=output,
        weight_dtype=args.dtype,
        act_dtype=args.dtype,
        kv_dtype=args.dtype,
    )
    texts = [t for t in (args.constraints or "").split(",") if t.strip()]
    if not texts and case is not None:
        texts = [f"ttft_s <= {case.ttft_s}", f"tpot_s <= {case.tpot_s}"]
    constraints = [c for i, t in enumerate(texts) if (c := parse_constraint("--constraints", f"[{i}]", t))]
    objective = parse_objective("--objective", "objective", args.objective)
    knobs = analysis.parse_knobs(config, args.knobs)
    if args.level not in LEVELS:
        raise SpecError(f"--level: unknown level '{args.level}': expected one of {', '.join(LEVELS)}")
    level = software_levels(hw, [args.level])
    n_random = int(
        positive(args.compare_random, "--compare-random", True, at_most=10**8) or 0
    )  # checked before the work
    starts = int(positive(args.starts, "--starts", True, at_most=4096))
    steps = int(positive(args.steps, "--steps", True, at_most=100_000))
    quiet = args.json

    def progress(step: int, total: int) -> None:
        if not quiet and (step % max(total // 5, 1) == 0 or step == total):
            print(f"design: step {step}/{total}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    found = analysis.design(config, level, knobs, objective, constraints, starts, steps, args.seed, progress)
    design_s = time.perf_counter() - t0
    si = np.array([[found["design"][k.field] for k in knobs]])
    all_levels = run_designs(config, {k.field: si[:, i] for i, k in enumerate(knobs)}, software_levels(hw, LEVELS))
    out: dict[str, Any] = {
        "model": model.id,
        "base_hardware": hw.id,
        "calibration": calibration_source(hw),
        "level": args.level,
        "objective_metric": str(objective),
        "constraints": [str(c) for c in constraints] + [f"{c} (always)" for c in analysis.always(config)],
        "design": {k.key: found["design"][k.field] / k.factor for k in knobs},
        "units": {k.key: k.unit for k in knobs},
        "feasible": found["feasible"],
        "objective": found["objective"],
        "evaluations": found["evaluations"],
        "design_s": design_s,
        "active_constraints": found["active"],
        "at_bound": found["at_bound"],
        "elasticities": {k.key: found["elasticities"][k.field] for k in knobs},
        # d objective / d knob in the objective's units per file unit of the knob.
        "sensitivities": {
            k.key: found["elasticities"][k.field] * found["objective"] / (found["design"][k.field] / k.factor)
            for k in knobs
        },
        # What the design is built from (the same at every level): models.silicon.
        "silicon": {
            m: _plain(m, float(all_levels[m][0, 0]))
            for m in (
                "die_area_mm2",
                "hbm_stacks",
                "tdp_w",
                "power_density_w_mm2",
                "chip_price_usd",
                "silicon_cost_usd",
                "embodied_carbon_kg",
                "die_fill",
                "hbm_fill",
                "power_density_fill",
            )
        },
        "silicon_source": silicon_source(hw, {k.key: None for k in knobs}),
        "levels": {
            lv: {
                m: _plain(m, float(all_levels[m][i, 0]))
                for m in (
                    "ttft_s",
                    "tpot_s",
                    "throughput_tokens_per_s_per_chip",
                    "j_per_token",
                    "usd_per_mtok",
                    "memory_fill",
                    "bound",
                    "feasible",
                    objective.metric,
                )  # fmt: skip
            }
            for i, lv in enumerate(LEVELS)
        },
    }
    if n_random:
        n = n_random
        t0 = time.perf_counter()
        rnd = analysis.random_search(config, level, knobs, objective, constraints, n, args.seed)
        out["random_best"] = rnd["objective"]
        out["random_evaluations"] = rnd["evaluations"]
        out["random_feasible_designs"] = rnd["feasible_designs"]
        out["random_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    _print(out, knobs, objective)
    return 0


def _plain(metric: str, v: float) -> Any:
    if metric.endswith("bound"):
        return BOUND_NAMES[int(v)]
    if metric == "feasible":
        return bool(v)
    return v if np.isfinite(v) else None


def _print(out: dict[str, Any], knobs: list[Any], objective: Any) -> None:
    status = "meets every constraint" if out["feasible"] else "DOES NOT meet the constraints (closest design found)"
    print(
        f"{out['model']} on a chip derived from {out['base_hardware']} ({out['calibration']}; searched at the "
        f"{out['level']} level): {out['objective_metric']} subject to {', '.join(out['constraints'])}\n"
        f"design ({status}; {out['evaluations']:,} evaluations in {out['design_s']:.1f} s):"
    )
    rows = [
        [
            k.key,
            f"{out['design'][k.key]:.4g}",
            f"{k.low / k.factor:g} - {k.high / k.factor:g}",
            f"{out['elasticities'][k.key]:+.3f}",
            f"{out['sensitivities'][k.key]:+.4g}",
            "at bound" if k.key in out["at_bound"] else "",
        ]
        for k in knobs
    ]
    print(
        analysis.render(
            ["knob", "value", "bounds", "d log obj / d log knob", f"d {objective.metric} / d knob", "note"], rows
        )
    )
    si = out["silicon"]
    if si["die_area_mm2"]:
        stacks = f", {si['hbm_stacks']:g} HBM stacks" if si["hbm_stacks"] else ""
        price = f"${si['chip_price_usd']:,.0f} (silicon ${si['silicon_cost_usd']:,.0f})"
        print(
            f"silicon: {si['die_area_mm2']:,.0f} mm2 per die (fill {si['die_fill']:.2f}){stacks}, TDP "
            f"{si['tdp_w']:,.0f} W ({si['power_density_w_mm2']:.2f} W/mm2), {price}, "
            f"{si['embodied_carbon_kg']:.0f} kg CO2e embodied; base {out['silicon_source']}"
        )
    head = ["level", "TTFT ms", "TPOT ms", "tok/s/chip", "J/token", "$/1M tok", "memory fill", "bound", "fits"]
    table = [
        [
            lv,
            m["ttft_s"] * display_scale("ttft_s"),
            m["tpot_s"] * display_scale("tpot_s"),
            m["throughput_tokens_per_s_per_chip"],
            m["j_per_token"],
            m["usd_per_mtok"],
            m["memory_fill"],
            m["bound"],
            m["feasible"],
        ]
        for lv, m in out["levels"].items()
    ]
    print("\nmetrics of the design at the three levels:")
    print(analysis.render(head, table))
    print(f"\nactive constraints: {', '.join(out['active_constraints']) or 'none'}")
    if "random_best" in out:
        rb = out["random_best"]
        better = "n/a" if rb is None else ("yes" if _better(out, rb, objective) else "no")
        print(
            f"random sweep of the same box: best {rb if rb is None else f'{rb:.6g}'} from "
            f"{out['random_evaluations']:,} evaluations ({out['random_feasible_designs']:,} feasible); "
            f"gradient design {out['objective']:.6g} from {out['evaluations']:,}: as good or better: {better}"
        )


def _better(out: dict[str, Any], random_best: float, objective: Any) -> bool:
    v = out["objective"]
    return v >= random_best * (1 - 1e-9) if objective.maximize else v <= random_best * (1 + 1e-9)


def add_subcommands(sub: Any) -> None:
    s = sub.add_parser(
        "design",
        help="the chip knobs that meet SLOs at the best objective (gradient-based inverse design)",
        description="Search the chip knobs of a base chip within bounds for the design that optimizes the "
        "objective under the constraints (augmented Lagrangian, multi-start, in log space), then re-evaluate "
        "it exactly at every level. Example: inferbench design --model llama-3-70b --hardware h100-sxm5-80gb "
        "--tp 8 --batch 16 --constraints 'ttft_s<=1,tpot_s<=0.03' --objective min:usd_per_mtok "
        "--knobs hbm_bandwidth_tb_s=1:10,peak_bf16_tflops=200:5000 --compare-random 100000",
    )
    s.add_argument("--model", required=True, help="catalog id or config.json path")
    s.add_argument("--hardware", required=True, help="base chip: catalog id or YAML path (its family's knobs)")
    s.add_argument("--knobs", required=True, help="KEY=LOW:HIGH in spec-file units, comma-separated")
    s.add_argument(
        "--objective", default="min:usd_per_mtok", help="min:METRIC or max:METRIC (default min:usd_per_mtok)"
    )
    s.add_argument("--constraints", help="comma-separated, e.g. 'ttft_s<=0.5,tpot_s<=0.03' (default: the use case's)")
    s.add_argument("--use-case", help=f"GenZ Table III preset: {', '.join(use_cases())} (request shape and SLOs)")
    s.add_argument("--tp", help="tensor-parallel chips (default 1)")
    s.add_argument("--batch", help="sequences per batch (default 1)")
    s.add_argument("--prompt-tokens", help="prompt tokens (default: the use case's, else 2048)")
    s.add_argument("--output-tokens", help="output tokens (default: the use case's, else 256)")
    s.add_argument(
        "--dtype",
        default=DEFAULT_DTYPE,
        help=f"weights, activations and KV dtype (default {DEFAULT_DTYPE}): " + ", ".join(DTYPES),
    )
    s.add_argument("--level", default="calibrated", help="efficiency level searched (default calibrated)")
    s.add_argument("--starts", default="8", help="starting points searched at once (default 8)")
    s.add_argument("--steps", default="100", help="gradient steps (default 100)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the starts and of --compare-random")
    s.add_argument("--compare-random", help="also evaluate N random designs of the same box, for reference")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_design)
