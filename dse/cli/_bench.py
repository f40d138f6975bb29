"""``inferbench bench``: configurations per second of the engine (a command, not a test).

Standard scenario: Llama-3-70B on 8 chips at TP 8, prefill of 2048 tokens plus 256 decode
steps, energy and cost included, over random hardware knobs (peak FLOP/s, HBM bandwidth and
capacity, link bandwidth and latency, TDP, price). Compile time is measured separately.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from dse.engine import (
    EVAL_BLOCK,
    PRECISIONS,
    SWEEP_PRECISION,
    make_config,
    program_cost,
    run_designs,
    software_levels,
    with_knobs,
)
from dse.specs import SpecError, load_hardware, load_model

from ._args import at_most_, positive
from ._calibration_bench import run_calibration_bench
from ._sweep_bench import run_sweep_bench


def random_hardware_knobs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "peak_bf16_flops_per_s": rng.uniform(100e12, 2500e12, n),
        "hbm_bandwidth_bytes_per_s": rng.uniform(1e12, 8e12, n),
        "hbm_capacity_bytes": rng.uniform(16e9, 192e9, n),
        "link_bandwidth_bytes_per_s": rng.uniform(50e9, 900e9, n),
        "link_latency_s": rng.uniform(0.5e-6, 5e-6, n),
        "tdp_w": rng.uniform(300, 1200, n),
        "price_usd": rng.uniform(5e3, 5e4, n),
    }


# Base chip of each family for ``bench --family``.
FAMILY_BASE = {
    "simt": "h100-sxm5-80gb",
    "systolic": "tpu-v5e",
    "imc": "dmatrix-corsair",
    "dataflow": "wse-3",
    "sram_chiplet": "groq-lpu",
    "cgra": "sn40l",
}


def random_family_knobs(chip, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every continuous leaf of the chip scaled by an independent factor in [0.5, 2]."""

    rng = np.random.default_rng(seed)
    out = {}
    for f in dataclasses.fields(chip):
        if f.metadata.get("static") or f.name in ("die_area_mm2", "sm_count"):
            continue
        base = float(getattr(chip, f.name))
        if base > 0:
            out[f.name] = base * rng.uniform(0.5, 2.0, n)
    return out


# The single query of the interactive-speed figure: a table of five batch sizes.
SINGLE_QUERY = (
    "evaluate --model llama-3-70b --hardware h100-sxm5-80gb --tp 8 --phase decode --batch 1,8,32,128,256"
).split()


def single_query_s() -> dict[str, float]:
    """Wall time of one ``evaluate`` from the command line, start-up and imports included: in
    a fresh process, cold (empty caches) and warm (the same query again, its programs on
    disk), and answered by a resident engine (``inferbench daemon``; its second query)."""
    times = []
    with tempfile.TemporaryDirectory(prefix="inferbench-bench-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache, "INFERBENCH_DAEMON": "0"}
        env.pop("INFERBENCH_JAX_CACHE", None)
        run = lambda *argv, **kw: subprocess.run(  # noqa: E731
            [sys.executable, "-m", "dse", *argv], env=kw.get("env", env), check=True, capture_output=True
        )
        for _ in range(2):
            t0 = time.perf_counter()
            run(*SINGLE_QUERY)
            times.append(time.perf_counter() - t0)
        resident = {**env, "INFERBENCH_DAEMON": "1"}
        run("daemon", "start", "--idle-min", "10", env=resident)
        try:
            for _ in range(2):
                t0 = time.perf_counter()
                run(*SINGLE_QUERY, env=resident)
            times.append(time.perf_counter() - t0)
        finally:
            run("daemon", "stop", env=resident)
    return {"single_query_cold_s": times[0], "single_query_s": times[1], "single_query_resident_s": times[2]}


def run_bench(args: argparse.Namespace) -> int:

    if getattr(args, "sweep", False):
        return run_sweep_bench(args)
    if getattr(args, "calibration", False):
        return run_calibration_bench(args)
    n = int(args.configs)
    if n <= 0:
        raise SpecError(f"--configs: {n}: expected an integer > 0")
    at_most_(n, "--configs", 1 << 28, "the results of every configuration are held in memory")
    if int(args.repeats) <= 0:
        raise SpecError(f"--repeats: {args.repeats}: expected an integer > 0")
    at_most_(int(args.repeats), "--repeats", 1000)
    family = args.family or "simt"
    if family not in FAMILY_BASE:
        raise SpecError(f"--family: unknown family '{family}': expected one of {', '.join(FAMILY_BASE)}")
    model, hw = load_model("llama-3-70b"), load_hardware(FAMILY_BASE[family])
    rate = None if args.rate is None else positive(args.rate, "--rate")
    if rate is None:
        cfg = make_config(model, hw, tp=8, batch=16, prompt_tokens=2048, output_tokens=256)
        scenario = "llama-3-70b, TP 8, prefill 2048 + 256 decode steps, batch 16, bf16"
    else:  # requests arriving at a rate: continuous batching, the queue's percentiles
        cfg = make_config(model, hw, tp=8, batch=64, prompt_tokens=2048, output_tokens=256, batching="continuous")
        cfg = with_knobs(cfg, {"rate_rps": np.asarray(rate)})
        scenario = f"llama-3-70b, TP 8, 2048 + 256 tokens, continuous batching of up to 64, {rate:g} requests/s, bf16"
    sw = software_levels(hw, ["calibrated"])
    chunk = 4 * EVAL_BLOCK  # run_designs' default: four blocks in flight while one is copied out
    precision = args.precision or SWEEP_PRECISION
    if precision not in PRECISIONS:
        raise SpecError(f"--precision: unknown precision '{precision}': expected one of {', '.join(PRECISIONS)}")

    def knobs_of(size: int, seed: int) -> dict[str, np.ndarray]:
        if args.family is None:
            return random_hardware_knobs(size, seed)
        return random_family_knobs(hw.spec, size, seed)

    # Compile (and the first, warm-up chunk) measured on its own.
    t0 = time.perf_counter()
    run_designs(cfg, knobs_of(EVAL_BLOCK, 1), sw, chunk=chunk, precision=precision)
    compile_s = time.perf_counter() - t0
    knobs = knobs_of(n, 0)
    # The median of several timed runs: one run on a shared 2-core machine varies by +-20 %.
    runs_s = []
    for _ in range(int(args.repeats)):
        t0 = time.perf_counter()
        res = run_designs(cfg, knobs, sw, chunk=chunk, precision=precision)
        runs_s.append(time.perf_counter() - t0)
        if not np.all(np.isfinite(res["usd_per_mtok"])):
            raise SpecError("bench: non-finite results")
    run_s = float(np.median(runs_s))
    cost = program_cost(cfg, knobs_of(1, 0), sw, chunk, precision)
    query = single_query_s()
    out = {
        "configs_per_s": n / run_s,
        "configs_per_s_range": [n / max(runs_s), n / min(runs_s)],
        "repeats": len(runs_s),
        "n_configs": n,
        "run_s": run_s,
        "compile_s": compile_s,
        **query,
        **cost,
        "chunk": chunk,
        "block": EVAL_BLOCK,
        "precision": precision,
        "family": family,
        "hardware": hw.id,
        "scenario": scenario,
        "device": str(jax.devices()[0]),
        "n_devices": jax.device_count(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{family} ({hw.id}): {n:,} configurations in {run_s:.2f} s: {n / run_s:,.0f} configurations/s "
            f"(median of {len(runs_s)} runs, range {out['configs_per_s_range'][0]:,.0f}-"
            f"{out['configs_per_s_range'][1]:,.0f}; compile + first chunk {compile_s:.2f} s; "
            f"{out['scenario']}; {precision}; {out['device']})\n"
            f"XLA cost analysis: {cost['flops_per_config']:,.0f} FLOP and {cost['bytes_per_config']:,.0f} bytes of "
            f"memory traffic per configuration\n"
            f"single query (`inferbench {' '.join(SINGLE_QUERY)}`, fresh process): {query['single_query_cold_s']:.2f} s "
            f"cold, {query['single_query_s']:.2f} s warm, {query['single_query_resident_s']:.2f} s answered by a resident "
            "engine (inferbench daemon start)"
        )
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "bench",
        help="configurations per second of the engine",
        description="Time the engine on the standard scenario (Llama-3-70B, TP 8, prefill 2048 + 256 decode steps) "
        "over random hardware designs; also a single query's wall time and XLA's cost per configuration. "
        "Example: inferbench bench --json",
    )
    s.add_argument("--configs", type=int, default=1 << 21, help="configurations to evaluate (default 2,097,152)")
    s.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default 3)")
    s.add_argument(
        "--precision",
        help=f"evaluation precision: {', '.join(PRECISIONS)} (default {SWEEP_PRECISION}, what sweeps use; "
        "evaluate, predict and calibration use float64)",
    )
    s.add_argument(
        "--rate",
        help="requests per second arriving: the scenario served by continuous batching of up to 64 sequences, "
        "with the queue's percentiles (default: the standard static batch)",
    )
    s.add_argument("--family", help=f"hardware family to benchmark: {', '.join(FAMILY_BASE)} (default simt)")
    s.add_argument("--sweep", action="store_true", help="end-to-end sweep to a zarr store instead")
    s.add_argument("--designs", type=int, default=10_000_000, help="designs of the --sweep benchmark")
    s.add_argument("--calibration", action="store_true", help="time the calibration fit from scratch instead")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_bench)
