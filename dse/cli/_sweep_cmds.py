"""Subcommands ``sweep``, ``pareto`` and ``plot`` (registered by :func:`add_subcommands`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

import calibration
from dse import analysis, specs, sweep
from dse.engine import enable_compilation_cache
from dse.specs import SpecError, load_yaml, note_input, read_input

from ._args import at_most_

RESULTS = Path("results")
MAX_LOCAL_WORKERS = 4 * (os.cpu_count() or 1)


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.list:
        for name, what in sweep.shipped_studies().items():
            print(f"{name:<24}{what}")
        return 0
    if not args.spec:
        raise SpecError("sweep: expected a sweep YAML or the name of a shipped study (inferbench sweep --list)")
    args.spec = str(sweep.study_path(args.spec))
    study = _study_kind(Path(args.spec))
    if study is not None:
        outdir = Path(args.output) if args.output else RESULTS
        runner = analysis.run_platform_study if study == "platforms" else analysis.run_curve_study
        runner(Path(args.spec), outdir, quiet=getattr(args, "quiet", False))
        return 0
    spec = sweep.load_sweep(args.spec)
    store = Path(args.output) if args.output else RESULTS / f"{spec.name}.zarr"
    if args.workers is not None and args.workers <= 0:
        raise SpecError(f"--workers: {args.workers}: expected an integer > 0")
    if args.workers is not None:  # a local cluster: each worker is a process that loads JAX
        at_most_(args.workers, "--workers", MAX_LOCAL_WORKERS, "4 per core of this machine; --scheduler for more")
    if args.chunk is not None and args.chunk <= 0:
        raise SpecError(f"--chunk: {args.chunk}: expected an integer > 0")
    if args.chunk is not None:
        at_most_(args.chunk, "--chunk", 1 << 24, "designs held in memory at once")
    if args.repair and args.overwrite:
        raise SpecError("--repair and --overwrite: expected one of them (repair keeps what is readable)")
    enable_compilation_cache()
    if (spec.fit or getattr(args, "fit", None)) and (args.dask or args.workers is not None):
        raise SpecError(f"{args.spec}: fit: a fit applies in this process only: expected no --dask or --workers")
    with specs.fits_in_effect([specs.read_fit(spec.fit)] if spec.fit else []):
        return _run(args, spec, store)


def _run(args: argparse.Namespace, spec, store: Path) -> int:
    result = sweep.run_sweep(
        spec,
        store,
        overwrite=args.overwrite,
        quiet=args.quiet,
        chunk=args.chunk,
        dask=args.dask or args.workers is not None,
        workers=args.workers,
        scheduler=args.scheduler,
        repair=args.repair,
        yes=args.yes,
    )
    print(sweep.describe(result))
    if not result.status.startswith("already complete") and not args.quiet:
        print(f"open it with: xarray.open_zarr('{store}')", file=sys.stderr)
    return 0


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def cmd_pareto(args: argparse.Namespace) -> int:
    note_input(Path(args.store))  # its outputs are checked against it before any work
    front, objectives, constraints, stats = analysis.store_pareto(
        Path(args.store),
        _split(args.objectives) or None,
        _split(args.constraints) if args.constraints is not None else None,
        partial=args.partial,
    )
    print(analysis.pareto_table(front, objectives, constraints, stats, limit=args.limit))
    out = Path(args.output) if args.output else RESULTS / f"{Path(args.store).stem}_pareto"
    paths = analysis.write_front(front, out)
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    note_input(Path(args.store))
    at_most_(args.designs, "--designs", 50, "each is a sensitivity line of the chart")
    out = Path(args.output) if args.output else RESULTS / Path(args.store).stem
    paths = analysis.plot_store(
        Path(args.store),
        out,
        objectives=_split(args.objectives) or None,
        constraints=_split(args.constraints) if args.constraints is not None else None,
        n_designs=args.designs,
        partial=args.partial,
    )
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    note_input(Path(args.store))
    out = Path(args.output) if args.output else RESULTS / f"{Path(args.store).stem}_report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise SpecError(f"-o {out}: expected an .html file")
    analysis.write_report(Path(args.store), out, calibration.prediction_interval, limit=args.limit)
    if not args.quiet:
        print(f"wrote {out} (self-contained: open it in any browser, no network needed)", file=sys.stderr)
    return 0


def _study_kind(path: Path) -> str | None:
    """``platforms`` or ``curves`` for a study file (``study: …``), None for a design-space sweep."""
    try:
        data = load_yaml(read_input(path, "a sweep spec (YAML)"))
    except (SpecError, yaml.YAMLError):
        return None  # load_sweep reports the error
    kind = data.get("study") if isinstance(data, dict) else None
    return kind if kind in ("platforms", "curves") else None


def cmd_examples(args: argparse.Namespace) -> int:
    folders = specs.shipped_folders("examples")
    if not folders:
        raise SpecError("examples: no shipped examples found: expected an installation with its examples/ folder")
    files = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*") if p.is_file())
    if not args.copy:
        for f in files:
            print(f)
        print(f"(in {folders[0]}; `inferbench examples --copy DIR` copies them to a folder of yours)", file=sys.stderr)
        return 0
    dest = Path(args.copy)
    clash = [f for f in files if (dest / f).exists()]
    if clash:
        raise SpecError(
            f"--copy: {dest / clash[0]} exists: expected a folder without the example files (nothing copied)"
        )
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folders[0] / f, dest / f)
    print(f"copied {len(files)} example files to {dest}", file=sys.stderr)
    return 0


PARTIAL_HELP = "use an unfinished or damaged store (what is missing is left out, with a warning)"


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "examples",
        help="list the shipped example files (scenarios, kernels, measurements, hardware specs); --copy DIR copies them",
        description="The example inputs of the README's commands, from any folder. Example: inferbench examples "
        "--copy ex && inferbench predict ex/scenarios.csv",
    )
    s.add_argument("--copy", metavar="DIR", help="copy every example file into DIR (refused if one exists there)")
    s.set_defaults(func=cmd_examples)

    s = sub.add_parser(
        "sweep",
        help="explore a design space from a sweep YAML; streams a zarr store",
        description="Evaluate every design of a sweep spec (grid axes times sampled axes) and stream the results "
        "to a zarr store, resumable after an interruption; a study file (study: platforms or curves) runs that "
        "study. Example: inferbench sweep sweeps/asic_pareto.yaml -o results/asic_pareto.zarr",
    )
    s.add_argument(
        "spec",
        nargs="?",
        help="sweep specification: a YAML path, or the name of a shipped study (e.g. decode_batch; --list)",
    )
    s.add_argument("--list", action="store_true", help="list the shipped studies and what each asks")
    s.add_argument("-o", "--output", help="zarr store (default results/NAME.zarr)")
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="start again even if the store is finished or differs (own stores only)",
    )
    s.add_argument("--repair", action="store_true", help="decode every written chunk and recompute the damaged ones")
    s.add_argument("--yes", action="store_true", help="go ahead with a store larger than the free disk space")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--chunk", type=int, help="designs per chunk (default: from available memory)")
    s.add_argument("--dask", action="store_true", help="evaluate on a local dask.distributed cluster")
    s.add_argument("--workers", type=int, help="worker processes of the local cluster (implies --dask)")
    s.add_argument("--scheduler", help="address of an existing dask scheduler, e.g. tcp://10.0.0.1:8786")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser(
        "pareto",
        help="non-dominated feasible designs of a sweep store",
        description="The Pareto front of a store's feasible designs that meet the constraints, as a table and as "
        "zarr and CSV files; an empty front says which constraint excludes every design. "
        "Example: inferbench pareto results/asic_pareto.zarr --constraints 'tpot_s<=0.02'",
    )
    s.add_argument("store", help="zarr store written by `inferbench sweep`")
    s.add_argument(
        "--objectives",
        help="comma-separated, e.g. max:throughput_tokens_per_s_per_chip,min:j_per_token (default: the sweep's)",
    )
    s.add_argument(
        "--constraints", help="comma-separated, e.g. 'ttft_s<=0.2,tpot_s<=0.01' (default: the sweep's; '' for none)"
    )
    s.add_argument("--partial", action="store_true", help=PARTIAL_HELP)
    s.add_argument("--limit", type=int, default=20, help="rows of the printed table (default 20)")
    s.add_argument("-o", "--output", help="output prefix (default results/STORE_pareto): writes .zarr and .csv")
    s.add_argument("--quiet", action="store_true", help="no message on stderr")
    s.set_defaults(func=cmd_pareto)

    s = sub.add_parser(
        "plot",
        help="Pareto front, roofline and sensitivity charts of a sweep store (PNG and SVG)",
        description="Draw the charts that apply to a store: the Pareto front, the roofline of a chosen design, "
        "sensitivities by gradient and the metrics along grid axes. Example: inferbench plot results/decode_batch.zarr",
    )
    s.add_argument("store", help="zarr store written by `inferbench sweep`")
    s.add_argument("--objectives", help="as for pareto (default: the sweep's)")
    s.add_argument("--partial", action="store_true", help=PARTIAL_HELP)
    s.add_argument("--constraints", help="as for pareto (default: the sweep's)")
    s.add_argument("--designs", type=int, default=3, help="front designs for the sensitivity chart (default 3)")
    s.add_argument("-o", "--output", help="output folder (default results/STORE)")
    s.add_argument("--quiet", action="store_true", help="no message on stderr")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser(
        "report",
        help="one self-contained HTML report of a sweep store",
        description="The study's specification, Pareto front, roofline, sensitivities, the best designs at the "
        "three levels, each chip's calibration status and prediction intervals, in one HTML file that opens "
        "without a network. Example: inferbench report results/decode_batch.zarr -o report.html",
    )
    s.add_argument("store", help="zarr store written by `inferbench sweep`")
    s.add_argument("-o", "--output", help="HTML file (default results/<store>_report.html)")
    s.add_argument("--limit", type=int, default=20, help="front designs listed (default 20)")
    s.add_argument("--quiet", action="store_true", help="no message on stderr")
    s.set_defaults(func=cmd_report)
