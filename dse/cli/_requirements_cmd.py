"""``inferbench requirements``: what a platform needs to meet a use case's SLOs (GenZ §VI)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dse import analysis
from dse.engine import display_scale
from dse.specs import SpecError, load_model, load_use_case, use_cases
from models import DEFAULT_DTYPE, DTYPES

from ._args import positive


def cmd_requirements(args: argparse.Namespace) -> int:
    if args.dtype not in DTYPES:
        raise SpecError(f"--dtype: unknown dtype '{args.dtype}': expected one of {', '.join(DTYPES)}")
    cases = [c.strip() for c in args.use_case.split(",") if c.strip()]
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not cases or not models:
        raise SpecError("--model and --use-case: expected one or more, comma-separated")
    batch, tp = int(positive(args.batch, "--batch", True)), int(positive(args.tp, "--tp", True))
    rows = [
        analysis.requirements(load_model(m), load_use_case(c), batch, args.dtype, tp, args.hbm)
        for m in models
        for c in cases
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = [
        "model",
        "use case",
        "batch",
        "prompt",
        "output",
        "TTFT s",
        "TPOT ms",
        "memory GB",
        "of which KV GB",
        "compute PFLOP/s",
        "memory TB/s",
        f"{rows[0]['hbm_generation']} stacks",
    ]
    head += ["link GB/s per chip", "link latency us"] if tp > 1 else []  # fmt: skip
    table: list[list[Any]] = []
    for r in rows:
        row = [r["model"], r["use_case"], r["batch"], r["prompt_tokens"], r["output_tokens"], r["ttft_s"],
               r["tpot_s"] * display_scale("tpot_s"), r["memory_capacity_bytes"] / 1e9, r["kv_bytes"] / 1e9,
               r["compute_flops_per_s"] / 1e15, r["memory_bandwidth_bytes_per_s"] / 1e12, int(r["hbm_stacks"])]  # fmt: skip
        table.append(
            row + ([r["interconnect_bytes_per_s_per_chip"] / 1e9, r["link_latency_s"] * 1e6] if tp > 1 else [])
        )
    print(analysis.render(head, table))
    print(
        f"\neach requirement alone, the rest assumed not to bind (GenZ §VI); platform totals in {args.dtype}: "
        "memory = weights + KV cache of batch x (prompt + beam x output) + prefill activations; compute = the "
        "prompt pass's FLOPs / TTFT; memory bandwidth = the last decode step's bytes / TPOT"
        + f"; stacks = whole {rows[0]['hbm_generation']} stacks for the memory and its bandwidth"
        + (
            f"; link = one chip's ring all-reduce traffic at TP {tp} over the same budgets; link latency = the most "
            "a ring step may take for a decode step's all-reduces alone to fit in the TPOT"
            if tp > 1
            else ""
        )
    )
    return 0


def add_subcommands(sub: Any) -> None:
    s = sub.add_parser(
        "requirements",
        help="the compute, memory bandwidth, capacity and interconnect a use case needs (GenZ §VI)",
        description="Solve for the minimum platform resources that meet a use case's TTFT and TPOT SLOs, each in "
        "isolation (GenZ §VI). Example: inferbench requirements --model llama-3-70b,gpt-3-175b --use-case qa,rag",
    )
    s.add_argument("--model", required=True, help="catalog id(s) or config.json path, comma-separated")
    s.add_argument(
        "--use-case", required=True, help=f"GenZ Table III preset(s), comma-separated: {', '.join(use_cases())}"
    )
    s.add_argument("--batch", default="1", help="requests served together (default 1)")
    s.add_argument(
        "--dtype",
        default=DEFAULT_DTYPE,
        help=f"weights, activations and KV dtype (default {DEFAULT_DTYPE}, as every command; GenZ §VI uses fp8)",
    )
    s.add_argument("--tp", default="1", help="tensor-parallel chips, for the interconnect requirement (default 1)")
    s.add_argument(
        "--hbm",
        default="hbm3e",
        help="HBM generation the memory is counted in stacks of (default hbm3e): hbm2e, hbm3, hbm3e, hbm4",
    )
    s.add_argument("--json", action="store_true", help="print JSON records")
    s.set_defaults(func=cmd_requirements)
