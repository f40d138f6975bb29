"""``inferbench demo`` as a small sweep: Llama-3-70B chat on GPU-class chips, in well under a minute.

Six catalog GPUs (a discrete axis: one compiled group each) × tensor-parallel degree 2..8 ×
batch 1..64 (grid axes) × 512 Sobol variants of HBM bandwidth around each chip (the sampled
``design`` axis; a variant's stacks, die, TDP and price follow where the chip's silicon is
recorded, models.silicon); constraints TTFT ≤ 1 s and TPOT ≤ 50 ms; the Pareto front of
tokens/s per chip, J/token and $/1M tokens; charts (front, roofline, sensitivity).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import calibration
from dse import analysis, engine, sweep
from dse.engine import display_scale, enable_compilation_cache, make_config, run_designs, software_levels
from dse.specs import load_hardware, load_model, refuse_foreign

RESULTS = Path("results")

DEMO_SPEC = {
    "name": "demo",
    "description": "inferbench demo: Llama-3-70B chat on GPU-class chips, TP x batch x HBM bandwidth (stacks, TDP and price follow)",
    "model": "llama-3-70b",
    "hardware": ["a100-sxm4-80gb", "h100-sxm5-80gb", "h200-sxm-141gb", "b200", "mi300x", "gaudi2"],
    "scenario": {"name": "chat", "phase": "request", "prompt_tokens": 2048, "output_tokens": 256, "batch": 1},
    "dtype": "bf16",
    "grid": {"tp": [2, 4, 8], "batch": [1, 4, 16, 64]},
    "sample": {
        "method": "sobol",
        "n": 512,
        "seed": 0,
        "axes": {
            "hbm_bandwidth_tb_s": {"low": 1.5, "high": 10, "scale": "log"},
        },
    },
    "constraints": ["ttft_s <= 1", "tpot_s <= 0.05"],
    "objectives": ["maximize throughput_tokens_per_s_per_chip", "minimize j_per_token", "minimize usd_per_mtok"],
}


def _tpot_at_levels(hardware: str, design) -> list[float]:
    """TPOT (ms) of one stored design at the ideal, achievable and calibrated levels."""

    h = load_hardware(hardware)
    sc = DEMO_SPEC["scenario"]
    cfg = make_config(
        load_model(DEMO_SPEC["model"]), h, prompt_tokens=sc["prompt_tokens"], output_tokens=sc["output_tokens"]
    )
    knobs = {
        "tp": float(design.tp),
        "batch": float(design.batch),
        "hbm_bandwidth_bytes_per_s": float(design.hbm_bandwidth_tb_s) * 1e12,
    }
    res = run_designs(
        cfg, {k: np.array([v]) for k, v in knobs.items()}, software_levels(h, ("ideal", "achievable", "calibrated"))
    )
    return [float(t) * display_scale("tpot_s") for t in res["tpot_s"][:, 0]]


def _real_chips() -> None:
    """The headline answer first: each catalog chip at its datasheet specs, its cheapest
    deployment (TP x batch) meeting the constraints at the calibrated level, at three levels."""
    sc = DEMO_SPEC["scenario"]
    chips = DEMO_SPEC["hardware"]
    ds = engine.evaluate(
        DEMO_SPEC["model"],
        [load_hardware(h) for h in chips],
        prompt_tokens=sc["prompt_tokens"],
        output_tokens=sc["output_tokens"],
        **DEMO_SPEC["grid"],
    )
    ds = ds.sel(model=DEMO_SPEC["model"]) if "model" in ds.dims else ds
    cal = ds.sel(level="calibrated")
    ok = cal.feasible.astype(bool) & (cal.ttft_s <= 1.0) & (cal.tpot_s <= 0.05)
    rows, best = [], None
    for hw in chips:
        cost = cal.usd_per_mtok.sel(hardware=hw).where(ok.sel(hardware=hw))
        if not np.isfinite(cost.values).any():
            rows.append([hw, "-", "-", "-", "-", "-", "-", "-", "-", "-", "no deployment meets the constraints"])
            continue
        i = np.unravel_index(int(np.nanargmin(cost.values)), cost.shape)
        at = dict(zip(cost.dims, (cost[d].values[k] for d, k in zip(cost.dims, i, strict=True)), strict=True))
        p = ds.sel(hardware=hw, **at)
        tpot = [float(p.tpot_s.sel(level=lv)) * display_scale("tpot_s") for lv in ("ideal", "achievable", "calibrated")]
        c = p.sel(level="calibrated")
        rows.append([hw, int(at["tp"]), int(at["batch"]), float(c.ttft_s) * display_scale("ttft_s"), *tpot,
                     float(c.throughput_tokens_per_s_per_chip), float(c.j_per_token), float(c.usd_per_mtok),
                     str(ds.calibration.sel(hardware=hw).item()).split(",")[0]])  # fmt: skip
        if best is None or float(c.usd_per_mtok) < best[1]:
            best = (f"{hw} at TP {int(at['tp'])}, batch {int(at['batch'])}", float(c.usd_per_mtok))
    print(
        f"Real chips at their datasheet specs: the cheapest deployment of {DEMO_SPEC['model']} "
        f"({sc['prompt_tokens']} in, {sc['output_tokens']} out) per chip meeting TTFT <= 1 s and TPOT <= 50 ms "
        "(calibrated level; TPOT also at the ideal roofline and hardware-achievable levels)"
    )
    head = ["hardware", "tp", "batch", "TTFT ms", "TPOT ideal", "TPOT achv", "TPOT calib", "tok/s/chip", "J/token",
            "$/1M tok", "calibration"]  # fmt: skip
    print(analysis.render(head, rows))
    if best is not None:
        print(f"cheapest: {best[0]}, {best[1]:.3g} $/1M tokens\n")


def run_demo(output: Path, quiet: bool = False) -> int:
    """Run the demo sweep into ``output`` (a zarr store), then its front, table and charts."""

    t0 = time.perf_counter()
    enable_compilation_cache()
    output = Path(output)
    # Figures beside the store: demo.zarr -> demo/; a store named without a suffix -> NAME-figures/.
    out_dir = output.with_suffix("") if output.suffix else output.with_name(output.name + "-figures")
    spec = sweep.parse_sweep(DEMO_SPEC, "inferbench demo")
    # The demo replaces its own earlier store (the same spec) as a re-run; any other sweep store
    # only with --overwrite.
    state, attrs = sweep.store_state(output)
    rerun = state in ("partial", "complete") and attrs.get("sweep_spec") == spec.to_json()
    for p in (output, out_dir / "pareto.zarr", out_dir / "pareto.csv", out_dir / "report.html"):
        refuse_foreign(p, overwrite=True if p == output and rerun else None)  # before the sweep runs, not after
    print(f"InferBench demo — {DEMO_SPEC['description']}\n")
    _real_chips()
    print(
        "Hypothetical variants: each chip with its HBM bandwidth sampled around its datasheet (1.5-10 TB/s; "
        "stacks, die, TDP and price follow where its silicon is recorded) — designs, not products"
    )
    result = sweep.run_sweep(spec, output, overwrite=True, quiet=quiet)
    front, objs, cons, stats = analysis.store_pareto(output)
    print(sweep.describe(result))
    print(analysis.pareto_table(front, objs, cons, stats, limit=12))
    # The best design per chip by $/1M tokens, among those meeting the constraints.

    ds = sweep.open_sweep(output)
    rows = []
    for hw in ds.hardware.values:
        sub = ds.sel(hardware=hw)
        cost = sub.usd_per_mtok.where(sub.meets_constraints).values
        if not np.isfinite(cost).any():
            rows.append([str(hw), *["-"] * 10, "no design meets the constraints"])
            continue
        i = np.unravel_index(np.nanargmin(cost), cost.shape)
        p = sub.isel(dict(zip(sub.usd_per_mtok.dims, i, strict=True)))
        tpot_levels = _tpot_at_levels(str(hw), p)
        rows.append(
            [
                str(hw),
                int(p.tp),
                int(p.batch),
                float(p.hbm_bandwidth_tb_s),
                float(p.ttft_s) * display_scale("ttft_s"),
                *tpot_levels,
                float(p.throughput_tokens_per_s_per_chip),
                float(p.j_per_token),
                float(p.usd_per_mtok),
                f"{float(p.chip_price_usd):,.0f}",
            ]
        )
    print(
        "\nCheapest hypothetical variant per chip meeting "
        + ", ".join(str(c) for c in cons)
        + " (TPOT at the three levels: ideal roofline, hardware-achievable, software-calibrated)"
    )
    print(
        analysis.render(
            [
                "hardware",
                "tp",
                "batch",
                "HBM TB/s",
                "TTFT ms",
                "TPOT ideal",
                "TPOT achv",
                "TPOT calib",
                "tok/s/chip",
                "J/token",
                "$/1M tok",
                "price $",
            ],
            rows,
        )
    )
    written = analysis.write_front(front, out_dir / "pareto")
    written += analysis.plot_store(output, out_dir)
    written.append(analysis.write_report(output, out_dir / "report.html", calibration.prediction_interval))
    print(f"\n{spec.n_designs:,} designs, front, table and charts in {time.perf_counter() - t0:.1f} s")
    if not quiet:
        print(
            f"open it with: xarray.open_zarr('{output}'); wrote {', '.join(str(p) for p in written)}", file=sys.stderr
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(Path(args.output), quiet=args.quiet)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "demo",
        help="the main job on the embedded default study",
        description="Sweep Llama-3-70B chat on six GPU-class chips (TP, batch, HBM bandwidth and price), print the "
        "front and the cheapest design per chip at the three levels, write the store, charts and an HTML report. "
        "Example: inferbench demo -o results/demo.zarr",
    )
    s.add_argument("-o", "--output", default=str(RESULTS / "demo.zarr"), help="dataset path (zarr)")
    s.add_argument("--quiet", action="store_true", help="no progress bar or file list on stderr")
    s.set_defaults(func=cmd_demo)
