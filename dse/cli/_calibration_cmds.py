"""``inferbench calibrate`` and ``inferbench validate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import calibration
from dse.specs import SpecError, hardware_ids

from ._args import at_most_


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "calibrate",
        help="fit the cost model to the A100 measurements; write results/calibration/fitted/<hw>.yaml "
        "(--write: replace the shipped calibration/fitted/<hw>.yaml)",
        description="Fit the cost model to the measurements (two stages: kernels, then systems), validate it on "
        "held-out models and write the fitted file. Example: inferbench calibrate --hardware a100-sxm4-80gb",
    )
    s.add_argument(
        "--hardware",
        default="a100-sxm4-40gb",
        help="a100-sxm4-80gb (kernel-level data) or a100-sxm4-40gb (end-to-end data); both run both stages",
    )
    s.add_argument(
        "--util-form",
        choices=("table", "wave"),
        help="GEMM utilization form (default: the one with the lower leave-one-model-out GEMM error)",
    )
    s.add_argument("--steps", type=int, default=100, help="L-BFGS iterations per stage (default 100)")
    s.add_argument("--no-compare", action="store_true", help="skip the leave-one-model-out comparison of the forms")
    s.add_argument("--data", help="measurement folder with the layout of calibration/data (default: shipped data)")
    s.add_argument("-o", "--output-dir", help="folder for the fitted file (default results/calibration/fitted)")
    s.add_argument(
        "--write", action="store_true", help="replace the shipped fitted file in calibration/fitted (what chips load)"
    )
    s.set_defaults(func=cmd_calibrate)

    s = subparsers.add_parser(
        "validate",
        help="MAPE of the shipped fit on every data set; parity plots under results/",
        description="Compare the shipped fitted file's predictions with every measurement (held-out models "
        "included) and draw parity plots. Example: inferbench validate --hardware a100-sxm4-40gb --by op",
    )
    s.add_argument("--hardware", default="a100-sxm4-40gb", help="fitted file to validate")
    s.add_argument(
        "-o", "--output-dir", default=str(Path("results") / "calibration"), help="folder for the parity plots"
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

    hw = _hardware(args.hardware)
    if args.steps <= 0:
        raise SpecError(f"--steps: {args.steps}: expected an integer > 0")
    at_most_(args.steps, "--steps", 100_000)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if args.write and args.output_dir:
        raise SpecError("--write and --output-dir: expected one of them (--write writes calibration/fitted)")
    # The shipped fitted files are what every chip loads: replaced only when asked.
    out_dir = None if args.write else Path(args.output_dir or Path("results") / "calibration" / "fitted")
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
    print(
        f"wrote {out['path']} (fit {out['fit_s']:.1f} s, utilization form {out['result'].util_form})"
        + ("" if args.write else "; --write makes it the shipped fit that chips load"),
        file=sys.stderr,
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:

    if args.hardware not in hardware_ids():
        raise SpecError(f"--hardware: unknown hardware '{args.hardware}': expected a catalog id with a fitted file")
    try:
        out = calibration.validate(
            Path(args.output_dir), args.hardware, _data_dir(args.data), log=lambda s: print(s, file=sys.stderr)
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
    print(f"wrote {len(out['plots'])} parity plots under {args.output_dir}", file=sys.stderr)
    return 0
