"""``inferbench plan``: the best deployment of a model on a chip under SLOs, and the runners-up."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dse import analysis
from dse.engine import display_scale
from dse.specs import SpecError, load_hardware, load_platform, load_use_case, use_cases
from models import DEFAULT_DTYPE, DTYPES

from ._args import at_most_, positive
from ._engine_cmds import rates


def _cv(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 <= v < float("inf"):
        raise SpecError(f"--prompt-cv: '{text}': expected a number >= 0 (coefficient of variation)")
    return v


def _set_value(item: str) -> tuple[str, float]:
    key, _, text = item.partition("=")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (key and 0 < value < float("inf")):
        raise SpecError(f"--set: '{item}': expected KEY=VALUE with one positive number, e.g. hbm_bandwidth_tb_s=6.7")
    return key, value


def cmd_plan(args: argparse.Namespace) -> int:
    case = load_use_case(args.use_case) if args.use_case else None
    prompt = positive(args.prompt_tokens, "--prompt-tokens", True) or (case.prompt_tokens if case else 2048)
    output = positive(args.output_tokens, "--output-tokens", True) or (case.output_tokens if case else 256)
    beam = positive(args.beam, "--beam", True) or (case.beam if case else 1)
    prefix = int(positive(args.prefix_tokens, "--prefix-tokens", True) or 0)
    if prefix >= prompt:
        raise SpecError(f"--prefix-tokens: {prefix}: expected fewer tokens than the prompt ({int(prompt)})")
    slo = analysis.Slo(
        ttft_s=(positive(args.ttft_ms, "--ttft-ms") or 0) / 1e3 or (case.ttft_s if case else None),
        tpot_s=(positive(args.tpot_ms, "--tpot-ms") or 0) / 1e3 or (case.tpot_s if case else None),
        prompt_cv=_cv(args.prompt_cv),
        rate_rps=rates(args.rate)[0] if args.rate is not None else None,
        p99_ttft_s=(positive(args.p99_ttft_ms, "--p99-ttft-ms") or 0) / 1e3 or None,
        p90_tpot_s=(positive(args.p90_tpot_ms, "--p90-tpot-ms") or 0) / 1e3 or None,
    )
    if (slo.p99_ttft_s or slo.p90_tpot_s) and slo.rate_rps is None:
        raise SpecError("--p99-ttft-ms, --p90-tpot-ms: expected --rate (percentiles are those of requests at a rate)")
    # Layouts grow with the chips (every dp up to max_chips / (tp·pp·ep)): 1,024 chips make
    # ~300 k candidates, a few GB in flight; a larger fleet is a sweep.
    chips = positive(args.max_chips, "--max-chips", True, at_most=1024)
    platform = load_platform(args.platform) if args.platform else None
    hardware = args.hardware or (platform.hardware if platform else None)
    if hardware is None:
        raise SpecError("plan: expected --hardware (or --platform)")
    if args.set:  # a hypothetical chip: spec keys changed (file units), as --set of evaluate
        try:
            hardware = analysis.with_sets(load_hardware(hardware), dict(_set_value(item) for item in args.set))
        except SpecError as e:
            raise SpecError(str(e) if str(e).startswith("--set") else f"--set: {e}") from None
    objective = args.objective or ("usd_per_mtok" if slo.rate_rps else "tokens_per_s_per_chip")
    result = analysis.plan(
        args.model,
        hardware,
        int(chips),
        prompt_tokens=int(prompt),
        output_tokens=int(output),
        beam=int(beam),
        prefix_tokens=prefix,
        slo=slo,
        objective=objective,
        dtype=args.dtype,
        platform=platform,
        top=int(at_most_(args.top, "--top", 1000)),
        framework=args.framework,
    )
    if args.decode_hardware:
        result["pools"] = _pools(args, hardware, int(chips), int(prompt), int(output), slo, result, objective)
    if args.json:
        print(json.dumps(result, indent=1, default=float))
        return 0
    _print(result)
    if args.decode_hardware:
        _print_pools(result["pools"])
    return 0


def _pools(args: argparse.Namespace, hardware: Any, chips: int, prompt: int, output: int, slo: Any,
           result: dict[str, Any], objective: str) -> dict[str, Any]:  # fmt: skip
    """``--decode-hardware``: prefill on --hardware, decode on another chip; against the cheapest
    deployment of either chip alone (the same search by $/1M tokens)."""
    if slo.rate_rps:
        raise SpecError("--decode-hardware: pools on two chips are sized for throughput: expected no --rate")
    pools = analysis.plan_pools(args.model, hardware, args.decode_hardware, chips, prompt_tokens=prompt,
                                output_tokens=output, slo=slo, dtype=args.dtype, top=int(args.top))  # fmt: skip
    alone = {}
    for hw in (hardware, args.decode_hardware):
        res = result if hw is hardware and objective == "usd_per_mtok" else analysis.plan(
            args.model, hw, chips, prompt_tokens=prompt, output_tokens=output, slo=slo, objective="usd_per_mtok",
            dtype=args.dtype, top=0)  # fmt: skip
        alone[res["hardware"]] = res["best"]["usd_per_mtok"] if res["best"] else None
    pools["alone_usd_per_mtok"] = alone
    return pools


def _print_pools(pools: dict[str, Any]) -> None:
    print(f"\ndisaggregated pools: prefill on {pools['prefill_hardware']}, decode on {pools['decode_hardware']} "
          f"(up to {pools['max_chips']} chips; the prompt's KV cache over the scale-out network):")  # fmt: skip
    alone = ", ".join(f"{k} {analysis.fmt(v)}" if v else f"{k}: none meets the SLOs"
                      for k, v in pools["alone_usd_per_mtok"].items())  # fmt: skip
    best = pools["best"]
    if best is None:
        print(f"no pools meet the SLOs; $/1M tok of each chip alone: {alone}")
        return
    head = ["prefill tp", "pp", "replicas", "decode tp", "pp", "replicas", "batch", "chips", "TTFT ms", "of which KV ms",
            "TPOT ms", "req/s", "$/1M tok"]  # fmt: skip
    rows = [[r["prefill_tp"], r["prefill_pp"], r["prefill_replicas"], r["decode_tp"], r["decode_pp"],
             r["decode_replicas"], r["batch"], r["chips"], r["ttft_s"] * 1e3, r["kv_transfer_s"] * 1e3,
             r["tpot_s"] * 1e3, r["requests_per_s"], r["usd_per_mtok"]] for r in [best, *pools["others"]]]  # fmt: skip
    print(analysis.render(head, rows))
    cheapest = [v for v in pools["alone_usd_per_mtok"].values() if v]
    verdict = (
        "cheaper than either chip alone"
        if not cheapest or best["usd_per_mtok"] < min(cheapest)
        else "not cheaper than a chip alone"
    )
    print(f"first row: the cheapest pools, {verdict} ($/1M tok alone: {alone})")


# The columns after the objective's (the objective's own is not repeated: see _print).
_SHOWN = {
    "TTFT ms": lambda r: r["ttft_s"] * display_scale("ttft_s"),
    "TPOT ms": lambda r: r["tpot_s"] * display_scale("tpot_s"),
    "tok/s/chip": lambda r: r["throughput_tokens_per_s_per_chip"],
    "$/1M tok": lambda r: r["usd_per_mtok"],
}


# With a rate: the tails, and the rate each candidate saturates at.
_AT_RATE = {
    "p99 TTFT ms": lambda r: r["p99_ttft_s"] * 1e3,
    "p90 TPOT ms": lambda r: r["p90_tpot_s"] * 1e3,
    "sat req/s": lambda r: r["saturation_rate_rps"],
}


def _shown(res: dict[str, Any]) -> dict[str, Any]:
    return _SHOWN | (_AT_RATE if res["slo"].get("rate_rps") else {})


def _row(r: dict[str, Any], objective: str, shown: dict[str, Any]) -> list[Any]:
    metric, _, _, scale = analysis.OBJECTIVES[objective]
    value = 1.0 / r["tpot_s"] if scale is None else r[metric] * scale
    chunk = "-" if r["chunk_tokens"] is None else int(r["chunk_tokens"])
    layout = [r["batching"], *(int(r[k]) for k in ("tp", "pp", "ep", "dp", "chips", "batch")), chunk]
    label = analysis.OBJECTIVES[objective][2]
    return [*layout, value, *(f(r) for k, f in shown.items() if k != label), r["why"]]


def _print(res: dict[str, Any]) -> None:
    label = analysis.OBJECTIVES[res["objective"]][2]
    shown = _shown(res)
    head = ["batching", "tp", "pp", "ep", "dp", "chips", "batch", "chunk", label, *(k for k in shown if k != label)]
    slos = {k: v for k, v in res["slo"].items() if k not in ("prompt_cv", "rate_rps")}
    slo = ", ".join(f"{k[:-2].upper().replace('_', ' ')} <= {v * 1e3:g} ms" for k, v in slos.items() if v) or "none"
    if res["slo"].get("rate_rps"):
        slo += f" at {res['slo']['rate_rps']:g} requests/s (Poisson)"
    if res["slo"]["prompt_cv"]:
        slo += f" for 90 % of requests (prompt lengths log-normal, CV {res['slo']['prompt_cv']:g})"
    print(
        f"{res['model']} on up to {res['max_chips']} x {res['hardware']} ({res['calibration']} level {res['level']}, "
        f"software {res['framework']}); "
        f"{res['prompt_tokens']} prompt"
        + (f" ({res['prefix_tokens']} of them a cached prefix)" if res.get("prefix_tokens") else "")
        + f" + {res['output_tokens']} output tokens, beam {res['beam']}; SLO: {slo}; "
        f"{res['feasible']:,} of {res['candidates']:,} candidates meet it"
    )
    if res["best"] is None:
        print("\nno deployment meets the SLOs; the closest of each layout:")
    else:
        print("\nbest:")
        print(analysis.render(head, [_row(res["best"], res["objective"], shown)[:-1]]))
        if res["runners_up"]:
            print("\nrunners-up (the best of each other layout) and why each loses:")
            print(analysis.render([*head, "why"], [_row(r, res["objective"], shown) for r in res["runners_up"]]))
        if res["excluded"]:
            print("\nlayouts that never meet the SLOs (their closest candidate):")
    if res["excluded"]:
        print(analysis.render([*head, "why"], [_row(r, res["objective"], shown) for r in res["excluded"]]))
    sys.stdout.flush()


def add_subcommands(sub: Any) -> None:
    s = sub.add_parser(
        "plan",
        help="the best deployment (tp, pp, ep, dp, batch, chunk) under SLOs",
        description="Search the deployments of a model on up to N chips (parallelism, batching, batch) for the "
        "best one under the use case's SLOs, with the runners-up and why each loses. "
        "Example: inferbench plan --model llama-3-70b --hardware h100-sxm5-80gb --max-chips 8 --use-case chat",
    )
    s.add_argument("--model", required=True, help="catalog id or config.json path")
    s.add_argument("--hardware", help="catalog id or YAML path (default: the platform's)")
    s.add_argument(
        "--decode-hardware",
        help="also search disaggregated pools: prefill on --hardware, decode on this chip (pool sizes and layouts)",
    )
    s.add_argument("--platform", help="platform id or YAML (network levels); default: the chip's own system")
    s.add_argument("--max-chips", required=True, help="chips available")
    s.add_argument("--use-case", help=f"GenZ Table III preset: {', '.join(use_cases())} (request shape and SLOs)")
    s.add_argument("--prompt-tokens", help="prompt tokens (overrides the use case)")
    s.add_argument("--output-tokens", help="output tokens (overrides the use case)")
    s.add_argument("--beam", help="beam width (overrides the use case)")
    s.add_argument("--prefix-tokens", help="prompt tokens of a prefix every request shares, found in the prefix cache")
    s.add_argument("--ttft-ms", help="TTFT SLO in ms (overrides the use case)")
    s.add_argument("--tpot-ms", help="TPOT SLO in ms (overrides the use case)")
    s.add_argument("--rate", help="requests per second arriving (Poisson): every candidate serves this load")
    s.add_argument("--p99-ttft-ms", help="99th-percentile TTFT SLO in ms at --rate")
    s.add_argument("--p90-tpot-ms", help="90th-percentile TPOT SLO in ms at --rate")
    s.add_argument(
        "--prompt-cv",
        help="spread of the request mix: coefficient of variation of the prompt lengths (log-normal, default 0); "
        "a deployment must then keep 90 %% of the requests within the SLOs",
    )
    s.add_argument(
        "--objective",
        choices=tuple(analysis.OBJECTIVES),
        help="what the best deployment maximizes (default tokens_per_s_per_chip; with --rate usd_per_mtok: at a "
        "rate, every deployment of as many chips serves the same tokens per chip)",
    )
    s.add_argument(
        "--dtype",
        default=DEFAULT_DTYPE,
        help=f"weights, activations and KV dtype (default {DEFAULT_DTYPE}): " + ", ".join(DTYPES),
    )
    s.add_argument(
        "--framework",
        help="software profile of the calibrated level: vllm-offline (default), vllm-server, tensorrt-llm, "
        "deepspeed-mii",
    )
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a hypothetical chip: a spec key of its family changed, in the file's units (repeatable), "
        "e.g. hbm_bandwidth_tb_s=6.7",
    )
    s.add_argument("--top", type=int, default=5, help="runners-up and excluded layouts shown")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_plan)
