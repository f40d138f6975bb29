"""``inferbench calibrate`` and ``inferbench validate``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

import calibration
from calibration import _importers
from dse import analysis, specs
from dse.specs import SpecError, hardware_ids, load_hardware, load_model, named_fit_path, note_input, write_fit
from dse.specs._userfit import check_fit_writable

from ._args import at_most_, positive


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "calibrate",
        help="fit a chip and serving stack to your measurements (MEASUREMENTS.csv -> FIT.yaml); without a file, "
        "refit the shipped A100 calibration",
        description="With MEASUREMENTS.csv: fit the software level (and power model, and a family's own efficiency "
        "parameters) of --hardware under --framework to the rows (MAP estimate, priors centred on the unfitted "
        "level), cross-validate grouped by model and write FIT.yaml for --fit. Example: inferbench calibrate "
        "rows.csv --hardware mi250.yaml --framework vllm-rocm -o mi250.fit.yaml. Without a file: fit the shipped "
        "A100 data (two stages: kernels, then systems) and write the fitted file.",
    )
    s.add_argument(
        "measurements",
        nargs="?",
        help="CSV of predict's scenario columns plus measured_* columns (see `inferbench import` for vLLM and "
        "LLM-Inference-Bench results)",
    )
    s.add_argument(
        "--hardware",
        help="the chip: a catalog id or a hardware YAML path (without MEASUREMENTS: a100-sxm4-80gb or "
        "a100-sxm4-40gb, default a100-sxm4-40gb)",
    )
    s.add_argument(
        "--framework",
        help="name of the serving stack the rows measured (the fit's name; the prior starts from it when the chip's "
        "fit has it, else from the default stack)",
    )
    s.add_argument(
        "--holdout-models",
        help="models whose rows are never fitted, only scored (comma-separated): the held-out check",
    )
    s.add_argument(
        "--ops",
        metavar="OPS.csv",
        help="kernel rows fitted with the scenarios: hardware,op,m,n,k,dtype,measured_s (GEMMs)",
    )
    s.add_argument("--json", action="store_true", help="print the fit (parameters, validation) as JSON")
    s.add_argument(
        "--util-form",
        choices=("table", "wave"),
        help="GEMM utilization form (default: the one with the lower leave-one-model-out GEMM error)",
    )
    s.add_argument(
        "--steps",
        type=int,
        default=100,
        help="L-BFGS iterations of the kernel stage (default 100; the system stage takes at least 300)",
    )
    s.add_argument("--no-compare", action="store_true", help="skip the leave-one-model-out comparison of the forms")
    s.add_argument("--data", help="measurement folder with the layout of calibration/data (default: shipped data)")
    s.add_argument(
        "-o",
        "--output",
        "--output-dir",
        dest="output",
        help="with MEASUREMENTS: the fit file (default: the named fit <fits folder>/<framework>/<hardware>.yaml, "
        "found by --framework); without: folder for the fitted file (default results/calibration/fitted)",
    )
    s.add_argument(
        "--write", action="store_true", help="replace the shipped fitted file in calibration/fitted (what chips load)"
    )
    s.set_defaults(func=cmd_calibrate)

    s = subparsers.add_parser(
        "import",
        help="turn vLLM benchmark JSON or LLM-Inference-Bench CSV into a measurements CSV for calibrate",
        description="Convert results you have into rows of a measurements CSV (the mapping each format assumes is "
        "in calibration/_importers.py and the README). Example: inferbench import llm-inference-bench "
        "All_results.csv --label 'AMD MI250 GPU' --chips-per-unit 2 --hardware mi250.yaml -o mi250.csv",
    )
    s.add_argument("format", choices=IMPORT_FORMATS, help="what the files are")
    s.add_argument("files", nargs="+", help="the result files (one vLLM JSON per run; one CSV)")
    s.add_argument("--hardware", required=True, help="the chip measured: catalog id or hardware YAML path")
    s.add_argument("-o", "--output", required=True, help="the measurements CSV to write")
    s.add_argument("--label", action="append", default=[], help="llm-inference-bench: Hardware value(s) to keep")
    s.add_argument("--stack", action="append", default=[], help="llm-inference-bench: Framework value(s) to keep")
    s.add_argument(
        "--chips-per-unit",
        type=int,
        default=1,
        help="llm-inference-bench: chips of --hardware per counted unit (2: an MI250 module is two GCDs)",
    )
    s.add_argument("--model", help="vLLM JSON: the model (catalog id or YAML path; serving JSON names its own)")
    s.add_argument("--tp", help="vLLM JSON: tensor-parallel size of the run")
    s.add_argument("--batch", help="vllm-latency: --batch-size of the run")
    s.add_argument("--input-len", help="vllm-latency: --input-len of the run")
    s.add_argument("--output-len", help="vllm-latency: --output-len of the run")
    s.add_argument("--dtype", default="bf16", help="vLLM JSON: data type of the run (default bf16)")
    s.set_defaults(func=cmd_import)

    s = subparsers.add_parser(
        "validate",
        help="MAPE of the shipped fit on every data set; parity plots under results/",
        description="Compare the shipped fitted file's predictions with every measurement (held-out models "
        "included) and draw parity plots. Example: inferbench validate --hardware a100-sxm4-40gb --by op",
    )
    s.add_argument("--hardware", default="a100-sxm4-40gb", help="fitted file to validate")
    s.add_argument(
        "-o",
        "--output-dir",
        dest="output",
        default=str(Path("results") / "calibration"),
        help="folder for the parity plots",
    )
    s.add_argument("--by", choices=("dataset", "op", "phase"), default="dataset", help="grouping of the MAPE table")
    s.add_argument("--data", help="measurement folder with the layout of calibration/data (default: shipped data)")
    s.add_argument("--json", action="store_true", help="print the table as JSON records")
    s.set_defaults(func=cmd_validate)


def _hardware(ref: str) -> str:

    if ref not in hardware_ids():
        raise SpecError(f"--hardware: unknown hardware '{ref}': expected one of {', '.join(calibration.CALIBRATABLE)}")
    if ref not in calibration.CALIBRATABLE:
        raise SpecError(
            f"--hardware: no measurements for '{ref}' in calibration/data: expected one of "
            f"{', '.join(calibration.CALIBRATABLE)} (see the README, 'Calibrating a new chip')"
        )
    return ref


def _data_dir(ref: str | None) -> Path | None:

    if ref is None:
        return None
    p = Path(ref)
    if not p.is_dir():
        raise SpecError(f"--data: '{ref}' is not a folder: expected the layout of calibration/data")
    return p


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.measurements:
        return _calibrate_user(args)
    for flag, given in (
        ("--framework", args.framework),
        ("--holdout-models", args.holdout_models),
        ("--ops", args.ops),
    ):
        if given:
            raise SpecError(f"{flag}: only with MEASUREMENTS.csv: expected `inferbench calibrate MEASUREMENTS.csv ...`")
    hw = _hardware(args.hardware or "a100-sxm4-40gb")
    if args.steps <= 0:
        raise SpecError(f"--steps: {args.steps}: expected an integer > 0")
    at_most_(args.steps, "--steps", 100_000)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if args.write and args.output:
        raise SpecError("--write and --output-dir: expected one of them (--write writes calibration/fitted)")
    # The shipped fitted files are what every chip loads: replaced only when asked.
    out_dir = None if args.write else Path(args.output or Path("results") / "calibration" / "fitted")
    try:
        out = calibration.calibrate(
            hw,
            args.util_form,
            args.steps,
            out_dir,
            _data_dir(args.data),
            compare=not args.no_compare,
            log=log,
        )
    except (FileNotFoundError, ValueError) as e:
        if isinstance(e, SpecError):
            raise
        raise SpecError(str(e).splitlines()[0]) from None
    print(calibration.format_table(out["tables"]["dataset"]))
    if not args.write:
        _print_against_shipped(Path(out["path"]), hw)
    print(
        f"wrote {out['path']} (fit {out['fit_s']:.1f} s, utilization form {out['result'].util_form})"
        + ("" if args.write else "; --write makes it the shipped fit that chips load"),
        file=sys.stderr,
    )
    return 0


def _print_against_shipped(path: Path, hardware_id: str) -> None:
    """The refit next to the shipped fit, parameter by parameter, in the shipped fit's deviations."""
    shipped_fit = specs.read_fitted(hardware_id)
    if shipped_fit is None:
        return
    rows = calibration.against_shipped(specs.read_mapping(path), shipped_fit)
    table = [
        [
            r["parameter"],
            r["shipped"],
            r["refit"],
            r["sd"],
            r["moved_sd"],
            "poorly determined" if r["poorly_determined"] else "",
        ]
        for r in rows
    ]
    print("\nrefit against the shipped fit (sd: the shipped fit's Laplace standard deviation, a lower bound)")
    print(analysis.render(["parameter", "shipped", "refit", "sd", "moved / sd", ""], table))
    moved = [r["parameter"] for r in rows if r["moved_sd"] > 2 and not r["poorly_determined"]]
    print(
        f"{len(rows) - len(moved)} of {len(rows)} parameters within 2 sd of the shipped fit or poorly determined"
        + (f"; moved: {', '.join(moved)}" if moved else "")
    )


def cmd_validate(args: argparse.Namespace) -> int:

    if args.hardware not in hardware_ids():
        raise SpecError(f"--hardware: unknown hardware '{args.hardware}': expected a catalog id with a fitted file")
    try:
        out = calibration.validate(
            Path(args.output), args.hardware, _data_dir(args.data), log=lambda s: print(s, file=sys.stderr)
        )
    except KeyError as e:  # a data set or column the shipped fit does not know
        raise SpecError(
            f"--data {args.data}: unknown data set or column {e}: expected the layout of calibration/data"
        ) from None
    except (FileNotFoundError, ValueError) as e:
        if isinstance(e, SpecError):
            raise
        raise SpecError(str(e).splitlines()[0]) from None
    tab = out["tables"][args.by]
    if args.json:
        print(json.dumps(tab.to_dict("records"), indent=1))
    else:
        print(calibration.format_table(tab))
    if not args.json:
        gen = calibration.gemm_generalization(_data_dir(args.data))
        fitted, roof = (100 * float(np.mean(np.abs(gen[c] / gen["time_s"] - 1))) for c in ("fitted_s", "roofline_s"))
        print(
            f"\nGEMM shapes no fit saw ({len(gen)} public A100 measurements, square to 16k, M down to 1): "
            f"MAPE {fitted:.1f} % calibrated model, {roof:.1f} % roofline at 80 % of peak and bandwidth"
        )
    print(f"wrote {len(out['plots'])} parity plots under {args.output}", file=sys.stderr)
    return 0


def _calibrate_user(args: argparse.Namespace) -> int:
    if not args.hardware or not args.framework:
        raise SpecError(
            "calibrate MEASUREMENTS.csv: expected --hardware (catalog id or YAML path) and --framework NAME"
        )
    if not FRAMEWORK_NAME.fullmatch(args.framework):
        raise SpecError(f"--framework: '{args.framework}': expected a name of letters, digits, '.', '_' and '-'")
    if args.write:
        raise SpecError("--write: only without MEASUREMENTS.csv (it replaces the shipped A100 fit)")
    hw = load_hardware(args.hardware)
    out = Path(args.output) if args.output else named_fit_path(args.framework, hw.id)
    if out.suffix not in (".yaml", ".yml"):
        raise SpecError(f"-o: '{out}': expected a .yaml file for the fit")
    check_fit_writable(out)  # before the fit, not after it
    note_input(args.measurements)
    if args.ops:
        note_input(args.ops)
    holdout = [m.strip() for m in (args.holdout_models or "").split(",") if m.strip()]
    result = calibration.calibrate_user(
        args.measurements, args.hardware, args.framework, holdout, log=lambda s: print(s, file=sys.stderr), ops=args.ops
    )
    content = result["content"]
    write_fit(out, content)
    if args.json:
        print(json.dumps(content, indent=1))
    else:
        print(calibration.format_fit(content))
    named = "" if args.output else f" (a named fit: --framework {args.framework} finds it)"
    print(f"wrote {out}{named}; fit {result['fit_s']:.1f} s", file=sys.stderr)
    return 0


FRAMEWORK_NAME = re.compile(r"[A-Za-z0-9._-]+")


IMPORT_FORMATS = ("llm-inference-bench", "vllm-latency", "vllm-serving")


def cmd_import(args: argparse.Namespace) -> int:
    hw = load_hardware(args.hardware)
    files = [Path(f) for f in args.files]
    for f in files:
        note_input(f)
    out = Path(args.output)
    if out.suffix != ".csv":
        raise SpecError(f"-o: '{out}': expected a .csv file")
    notes: list[str] = []
    rows = []
    if args.format == "llm-inference-bench":
        if len(files) != 1:
            raise SpecError("llm-inference-bench: expected one CSV file")
        at_most_(args.chips_per_unit, "--chips-per-unit", 1024)
        if args.chips_per_unit < 1:
            raise SpecError(f"--chips-per-unit: {args.chips_per_unit}: expected an integer >= 1")
        rows, notes = _importers.llm_inference_bench(
            files[0], args.hardware, args.label, args.chips_per_unit, args.stack
        )
    else:
        needed = ("tp",) if args.format == "vllm-serving" else ("model", "tp", "batch", "input_len", "output_len")
        for k in needed:
            if getattr(args, k) is None:
                raise SpecError(f"{args.format}: --{k.replace('_', '-')}: expected the run's value (not in the JSON)")
        shape = {"model": load_model(args.model).id if args.model else None, "dtype": args.dtype}
        for k in ("tp", "batch", "input_len", "output_len"):
            if getattr(args, k) is not None:
                shape[k] = positive(getattr(args, k), f"--{k.replace('_', '-')}", integer=True)
        convert = _importers.vllm_latency if args.format == "vllm-latency" else _importers.vllm_serving
        for f in files:
            rows += convert(f, args.hardware, shape)
    _importers.write_rows(out, rows)
    for n in notes:
        print(f"import: {n}", file=sys.stderr)
    print(f"wrote {out}: {len(rows)} rows of {hw.id}", file=sys.stderr)
    return 0
