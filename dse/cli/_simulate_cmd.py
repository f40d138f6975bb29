"""``inferbench simulate``: requests through the scheduler, exactly — a trace on a deployment,
or the queueing approximation checked against the simulation on random deployments."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dse import analysis
from dse.engine import make_config, run_designs, simulate_requests, software_levels
from dse.specs import SpecError, load_hardware, load_model
from models import DEFAULT_DTYPE, INFEASIBLE_REASONS, Infeasible

from ._args import positive

# Trace layouts: ours, and the public Azure LLM inference traces' (TIMESTAMP as a date and time).
_LAYOUTS = (("arrival_s", "prompt_tokens", "output_tokens"), ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))


def _seconds(text: str, azure: bool) -> float:
    if not azure:
        return float(text)
    date, _, frac = text.strip().partition(".")
    return datetime.fromisoformat(date).timestamp() + (float(f"0.{frac}") if frac else 0.0)


def read_trace(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival_s from the first request, prompt tokens, output tokens) of a trace CSV."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"--trace: {path}: no such file")
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = set(rows[0]) if rows else set()
    layout = next((cols for cols in _LAYOUTS if set(cols) <= header), None)
    if layout is None:
        raise SpecError(
            f"{path}: columns {', '.join(sorted(header)) or 'none'}: expected "
            + " or ".join(", ".join(cols) for cols in _LAYOUTS)
        )
    out = np.empty((len(rows), 3))
    for i, row in enumerate(rows, start=2):  # line numbers as an editor shows them (the header is 1)
        for j, col in enumerate(layout):
            try:
                out[i - 2, j] = _seconds(row[col], layout is _LAYOUTS[1]) if j == 0 else float(row[col])
            except (TypeError, ValueError):
                raise SpecError(f"{path}: line {i}: {col} '{row[col]}': expected a number") from None
        if not np.isfinite(out[i - 2]).all() or out[i - 2, 0] < 0 and layout is _LAYOUTS[0]:
            raise SpecError(f"{path}: line {i}: {layout[0]} {row[layout[0]]}: expected a time >= 0")
        if out[i - 2, 1] < 1 or out[i - 2, 2] < 1:
            raise SpecError(f"{path}: line {i}: expected at least 1 prompt and 1 output token")
        if i > 2 and out[i - 2, 0] < out[i - 3, 0]:
            raise SpecError(f"{path}: line {i}: {layout[0]} {row[layout[0]]} before the line above: expected rows "
                            "sorted by arrival")  # fmt: skip
    if len(out) < 2:
        raise SpecError(f"{path}: {len(out)} requests: expected at least 2")
    return out[:, 0] - out[0, 0], out[:, 1], out[:, 2]


def _percentiles(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            v = float("nan")
        if not 0 < v < 100:
            raise SpecError(f"--percentiles: '{part}': expected percentiles between 0 and 100 (exclusive), e.g. 50,99")
        out.append(v)
    return out


def _run_trace(args: argparse.Namespace) -> int:
    pcts = _percentiles(args.percentiles)
    if args.kv_admission not in ("reserve", "on-demand"):
        raise SpecError(f"--kv-admission: '{args.kv_admission}': expected reserve or on-demand")
    arrival, prompt, output = read_trace(args.trace)
    if args.batching not in ("continuous", "chunked"):
        raise SpecError(f"--batching: '{args.batching}': expected continuous or chunked (the simulated schedulers)")
    on_demand = args.kv_admission == "on-demand"
    model, hw = load_model(args.model), load_hardware(args.hardware)
    knobs = {k: positive(getattr(args, k), f"--{k}", True) for k in ("tp", "pp", "ep", "dp", "batch")}
    dp = int(knobs["dp"])
    duration = float(arrival[-1]) or 1.0
    rate = (len(arrival) - 1) / duration
    mean_prompt, mean_output = float(prompt.mean()), float(output.mean())
    knobs |= {
        "prompt_tokens": round(mean_prompt),
        "output_tokens": round(mean_output),
        "prompt_tokens_cv": float(prompt.std() / mean_prompt),
        "rate_rps": rate,
    }
    if args.batching == "chunked":
        knobs["chunk_tokens"] = positive(args.chunk_tokens or "512", "--chunk-tokens", True)
    cfg = make_config(model, hw, batching=args.batching, weight_dtype=args.dtype, act_dtype=args.dtype,
                      kv_dtype=args.dtype)  # fmt: skip
    res = {k: v[-1][0] for k, v in run_designs(cfg, {k: np.array([float(v)]) for k, v in knobs.items()},
                                               software_levels(hw, ["calibrated"])).items()}  # fmt: skip
    reason = int(res["infeasible_reason"])
    # On demand, more sequences may run than their whole KV caches hold (preemption makes room).
    kv_short = on_demand and reason == Infeasible.MEMORY and res["kv_capacity_tokens"] > prompt.max() + 1
    if reason not in (Infeasible.OK, Infeasible.SATURATED) and not kv_short:
        raise SpecError(f"simulate: the deployment cannot run: {INFEASIBLE_REASONS[reason]}")
    # Requests go to the dp replicas in turn; each replica is simulated on its service curve.
    curve = {
        "step_s": res["step_s"],
        "step_per_seq_s": res["step_per_sequence_s"],
        "pass_s": res["prefill_pass_s"],
        "token_s": res["prefill_per_token_s"],
        "slots": knobs["batch"] / dp,
        "chunk_tokens": knobs.get("chunk_tokens", 0.0),
        "kv_tokens": res["kv_capacity_tokens"],
        "accepted": 1.0,  # no speculative decoding in the simulated schedulers
    }
    n = len(arrival) // dp * dp
    split = [x[:n].reshape(-1, dp).T for x in (arrival, prompt, output)]
    sim = simulate_requests({k: np.full(dp, v) for k, v in curve.items()}, *split, reserve=not on_demand)
    done = np.isfinite(sim["latency_s"])
    table = []
    for name, label in (("ttft_s", "TTFT ms"), ("tpot_s", "TPOT ms"), ("latency_s", "latency ms"),
                        ("queue_s", "queue ms")):  # fmt: skip
        values = sim[name][done]
        table.append([label, values.mean() * 1e3, *(np.percentile(values, p) * 1e3 for p in pcts)])
    result = {
        "trace": args.trace,
        "requests": int(len(arrival)),
        "simulated": int(n),
        "finished": int(done.sum()),
        "rate_rps": rate,
        "saturation_rate_rps": float(res["saturation_rate_rps"]),
        "kv_admission": args.kv_admission,
        "preemptions": int(sim["preemptions"][done].sum()),
        "preempted_requests": int((sim["preemptions"][done] > 0).sum()),
        "percentiles": pcts,
        "simulated_s": {row[0]: dict(zip(["mean", *map(str, pcts)], row[1:], strict=True)) for row in table},
        "analytic_ms": None
        if kv_short
        else {k: float(res[k]) * 1e3 for k in ("p50_ttft_s", "p99_ttft_s", "p50_tpot_s", "p99_tpot_s")},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"{args.trace}: {len(arrival):,} requests over {duration:,.1f} s ({rate:.3g} requests/s; mean prompt "
        f"{mean_prompt:,.0f}, output {mean_output:,.0f} tokens) on {model.id} x {hw.id}, {args.batching}, "
        f"batch {int(knobs['batch'])} over {dp} replica(s); saturation {res['saturation_rate_rps']:.3g} requests/s"
    )
    print(analysis.render(["", "mean", *(f"p{p:g}" for p in pcts)], table))
    unfinished = n - int(done.sum())
    note = f"; {unfinished:,} requests unfinished (the queue outgrew the simulation: overloaded)" if unfinished else ""
    if on_demand:
        note += (
            f"; KV admitted on demand: {result['preemptions']:,} preemptions of {result['preempted_requests']:,} "
            "requests (recomputed)"
        )
    if kv_short:
        analytic = (
            "the analytic model (which reserves each request's whole KV) does not apply: the batch's KV does not fit"
        )
    else:
        ms = result["analytic_ms"]
        analytic = (
            f"the analytic model at the trace's mean rate and mix (reserving each request's KV): p50/p99 TTFT "
            f"{ms['p50_ttft_s']:.4g}/{ms['p99_ttft_s']:.4g} ms, p50/p99 TPOT {ms['p50_tpot_s']:.4g}/{ms['p99_tpot_s']:.4g} ms"
        )
    print(f"exact simulation of every request{note}; {analytic}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    n = int(positive(args.check, "--check", True, at_most=10_000))
    requests = int(positive(args.requests, "--requests", True, at_most=100_000))
    if requests < 60:
        raise SpecError(f"--requests: {requests}: expected at least 60 (a sixth warm up; percentiles need the rest)")
    reps = int(positive(args.replications, "--replications", True, at_most=1_000))
    out = analysis.check_queueing(
        n_configs=n, n_requests=requests, warmup=requests // 6, seed=int(args.seed), replications=reps
    )
    if args.json:
        print(json.dumps(out, indent=1, default=float))
        return 0
    bands = list(next(iter(out["mape"].values())))
    rows = [[name.replace("_s", "").replace("_", " "), *(out["mape"][name][b] for b in bands)] for name in out["mape"]]
    reps = int(args.replications)
    print(
        f"{len(out['rows'])} random deployments (Llama-3 8B and 70B on H100 and MI300X, continuous and chunked "
        f"batching) at 10-90 % of their saturation rate, {reps} traces of {requests:,} Poisson requests each "
        f"(the first {requests // 6:,} of each warm up)"
    )
    print("mean absolute error of the analytic percentiles against the exact simulation, %, by load:")
    print(analysis.render(["", *bands], rows))
    if out["scatter"]:
        scatter = [
            [n.replace("_s", "").replace("_", " "), *(out["scatter"][n][b] for b in bands)] for n in out["scatter"]
        ]
        print(
            "the simulation's own scatter, one half of the traces against the other, % (all pooled: about 0.7 of it):"
        )
        print(analysis.render(["", *bands], scatter))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if (args.trace is None) == (args.check is None):
        raise SpecError("simulate: expected --trace FILE (with a deployment) or --check N")
    if args.trace is not None:
        if not (args.model and args.hardware):
            raise SpecError("simulate --trace: expected --model and --hardware")
        return _run_trace(args)
    return _run_check(args)


def add_subcommands(sub: Any) -> None:
    s = sub.add_parser(
        "simulate",
        help="every request of a trace through the scheduler, exactly; or check the queueing model",
        description="Exact discrete-event simulation of continuous (or chunked) batching on a deployment's service "
        "curve: a trace CSV (arrival_s, prompt_tokens, output_tokens; or the Azure LLM inference traces' "
        "TIMESTAMP, ContextTokens, GeneratedTokens) → TTFT, TPOT, latency and queue percentiles. --check N "
        "compares the analytic percentiles every evaluation uses with the simulation on N random deployments. "
        "Example: inferbench simulate --trace trace.csv --model llama-3-8b --hardware h100-sxm5-80gb --batch 64; "
        "inferbench simulate --check 200",
    )
    s.add_argument("--trace", help="CSV of requests, sorted by arrival")
    s.add_argument("--check", help="random deployments to check the analytic model on (e.g. 200)")
    s.add_argument("--requests", default="4800", help="Poisson requests per trace of --check (default 4800)")
    s.add_argument(
        "--replications",
        default="8",
        help="independent traces per deployment of --check, pooled (default 8: one trace's p99 near saturation "
        "scatters by tens of per cent)",
    )
    s.add_argument("--seed", default=0, type=int, help="random seed of --check (default 0)")
    s.add_argument("--model", help="catalog id or config.json path (--trace)")
    s.add_argument("--hardware", help="catalog id or YAML path (--trace)")
    for k, default in (("tp", "1"), ("pp", "1"), ("ep", "1"), ("dp", "1"), ("batch", "64")):
        s.add_argument(f"--{k}", default=default, help=f"{k} of the deployment (default {default})")
    s.add_argument("--batching", default="continuous", help="continuous (default) or chunked")
    s.add_argument("--chunk-tokens", help="prefill tokens per iteration of chunked batching (default 512)")
    s.add_argument(
        "--kv-admission",
        default="reserve",
        help="reserve (default: admit when the request's whole prompt and output fit; never preempts) or on-demand "
        "(vLLM's: admit when the prompt fits; when the running sequences' next tokens do not, preempt the latest "
        "arrival and recompute it later)",
    )
    s.add_argument(
        "--dtype", default=DEFAULT_DTYPE, help=f"weights, activations and KV dtype (default {DEFAULT_DTYPE})"
    )
    s.add_argument(
        "--percentiles", default="50,90,99", help="percentiles to report, each in (0, 100) (default 50,90,99)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_simulate)
