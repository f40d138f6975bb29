"""``inferbench bench --sweep``: end-to-end designs per second, spec to closed zarr store.

The sweep is the engine benchmark's standard scenario (Llama-3-70B on 8 chips at TP 8,
prefill 2048 + 256 decode steps, batch 16, BF16, calibrated level) over seven random
hardware knobs, streamed with every metric to a zarr store in a temporary directory. The
clock runs from the spec to the closed, consolidated store (compile included). Peak resident
memory is the process's high-water mark (``ru_maxrss``), which cannot go down: run one size
per process to compare sizes (``--designs 1000000`` then ``--designs 10000000``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax

from dse import analysis, sweep
from dse.engine import enable_compilation_cache
from dse.specs import SpecError

BENCH_AXES = {
    "peak_bf16_tflops": {"low": 100, "high": 2500, "scale": "log"},
    "hbm_bandwidth_tb_s": {"low": 1, "high": 8},
    "hbm_capacity_gb": {"low": 16, "high": 192},
    "link_bandwidth_gb_s": {"low": 50, "high": 900},
    "link_latency_us": {"low": 0.5, "high": 5},
    "tdp_w": {"low": 300, "high": 1200},
    "price_usd": {"low": 5000, "high": 50000},
}


def bench_spec(n: int) -> dict[str, Any]:
    return {
        "name": "bench",
        "description": "inferbench bench --sweep: the engine benchmark's scenario over random hardware",
        "model": "llama-3-70b",
        "hardware": "h100-sxm5-80gb",
        "scenario": {"prompt_tokens": 2048, "output_tokens": 256, "batch": 16},
        "platform": {"tp": 8},
        "sample": {"method": "random", "n": n, "seed": 0, "axes": BENCH_AXES},
        "constraints": ["ttft_s <= 2", "tpot_s <= 0.1"],
        "objectives": ["maximize throughput_tokens_per_s_per_chip", "minimize j_per_token", "minimize usd_per_mtok"],
    }


def peak_rss_bytes() -> int:
    """High-water mark of the resident set of this process (Linux: ru_maxrss in kB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_sweep_bench(args: argparse.Namespace) -> int:

    n = int(getattr(args, "designs", 10_000_000))
    if n <= 0:
        raise SpecError(f"--designs: {n}: expected an integer > 0")
    with tempfile.TemporaryDirectory(prefix="inferbench-bench-") as tmp:
        store = Path(tmp) / "bench.zarr"
        enable_compilation_cache()  # INFERBENCH_JAX_CACHE=0 for a cold compile
        rss0 = peak_rss_bytes()
        t0 = time.perf_counter()
        spec = sweep.parse_sweep(bench_spec(n), "bench")
        result = sweep.run_sweep(spec, store, quiet=True)
        seconds = time.perf_counter() - t0
        size = _store_bytes(store)
        rss_sweep = peak_rss_bytes()
        t1 = time.perf_counter()
        _, _, _, pstats = analysis.store_pareto(store)  # the sweep's 3 objectives, constraints and feasibility
        pareto_s = time.perf_counter() - t1
    out = {
        "designs_per_s": n / seconds,
        "n_designs": n,
        "seconds": seconds,
        "peak_rss_bytes": rss_sweep,
        "pareto_s": pareto_s,
        "pareto_filter_s": pstats["filter_s"],
        "pareto_load_s": pstats["load_s"],
        "pareto_candidates": int(pstats["n_candidates"]),
        "pareto_front": int(pstats["n_front"]),
        "peak_rss_with_pareto_bytes": peak_rss_bytes(),
        "compilation_cache": jax.config.jax_compilation_cache_dir is not None,
        "peak_rss_before_sweep_bytes": rss0,
        "store_bytes": size,
        "n_variables": len(spec.outputs) + 1,
        "chunks": result.n_chunks_run,
        "chunk_designs": -(-n // max(result.n_chunks_run, 1)),
        "scenario": "llama-3-70b, 8 chips TP 8, prefill 2048 + 256 decode, batch 16, bf16, calibrated; "
        "7 random hardware knobs; every metric to zarr (float32, blosc lz4)",
        "device": str(jax.devices()[0]),
        "n_devices": jax.device_count(),
    }
    if getattr(args, "json", False):
        print(json.dumps(out))
    else:
        print(
            f"{n:,} designs spec → closed zarr store in {seconds:.2f} s: {n / seconds:,.0f} designs/s end to end; "
            f"peak RSS {out['peak_rss_bytes'] / 2**20:,.0f} MiB; store {size / 2**20:,.0f} MiB "
            f"({out['n_variables']} variables, {result.n_chunks_run} chunks; {out['device']})\n"
            f"Pareto of {n:,} designs, 3 objectives: {pareto_s:.2f} s ({pstats['load_s']:.2f} s load, "
            f"{pstats['filter_s']:.2f} s filter over {int(pstats['n_candidates']):,} feasible; "
            f"front {int(pstats['n_front']):,})"
        )
    return 0
