"""``inferbench demo``: the embedded default study.

Llama-3-70B chat (prompt 2048, 256 output tokens) on every GPU-class chip of the catalog,
over tensor-parallel degree and batch; prints the cheapest feasible configuration per chip
under a TPOT service-level objective, at the three levels, and writes the dataset.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from dse._table import render

DEMO_MODEL = "llama-3-70b"
DEMO_HARDWARE = ["a100-sxm4-80gb", "h100-sxm5-80gb", "h200-sxm-141gb", "b200", "mi300x", "gaudi2"]
DEMO_TPOT_SLO_S = 0.05


def run_demo(output: Path, quiet: bool = False) -> int:
    from dse._cli import _write_dataset
    from dse._evaluate import evaluate
    from models import BOUND_NAMES

    t0 = time.perf_counter()
    ds = evaluate(DEMO_MODEL, DEMO_HARDWARE, tp=[1, 2, 4, 8], batch=[1, 4, 16, 64, 256],
                  prompt_tokens=2048, output_tokens=256)
    elapsed = time.perf_counter() - t0
    cal = ds.sel(level="calibrated")
    rows = []
    for hw in ds.hardware.values:
        c = cal.sel(hardware=hw)
        ok = c.feasible & (c.tpot_s <= DEMO_TPOT_SLO_S)
        cost = c.usd_per_mtok.where(ok)
        if not bool(ok.any()):
            rows.append([str(hw), "-", "-", *["-"] * 8, "no feasible config"])
            continue
        best = cost.argmin(dim=["tp", "batch"])
        pick = {k: int(v) for k, v in best.items()}
        p = ds.sel(hardware=hw).isel(**pick)
        pc = p.sel(level="calibrated")
        tpot = [float(p.tpot_s.sel(level=lv)) * 1e3 for lv in ("ideal", "achievable", "calibrated")]
        rows.append([str(hw), int(p.tp), int(p.batch), float(pc.ttft_s) * 1e3, *tpot,
                     float(pc.throughput_tokens_per_s_per_chip), float(pc.j_per_token), float(pc.usd_per_mtok),
                     BOUND_NAMES[int(pc.decode_bound)]])
    print(f"InferBench demo — {DEMO_MODEL}, prompt 2048, 256 output tokens, BF16; "
          f"cheapest configuration per chip with TPOT ≤ {DEMO_TPOT_SLO_S * 1e3:.0f} ms")
    print(render(["hardware", "tp", "batch", "TTFT ms", "TPOT ideal", "TPOT achv", "TPOT calib", "tok/s/chip",
                  "J/token", "$/1M tok", "decode bound"], rows))
    n = int(np.prod([ds.sizes[d] for d in ("hardware", "tp", "batch", "level")]))
    print(f"\n{n} configurations in {elapsed:.2f} s (compile included). TPOT in ms at three levels: ideal roofline, "
          "hardware-achievable, software-calibrated; other columns calibrated.")
    _write_dataset(ds, output)
    if not quiet:
        print(f"open it with: xarray.open_zarr('{output}')", file=sys.stderr)
    return 0
