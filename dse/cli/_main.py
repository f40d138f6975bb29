"""The ``inferbench`` command line: the parser, explicit registration of every subcommand.

Every user error ends in one line on stderr — ``inferbench: error: <file or argument>: <key>:
<what was expected>`` — and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dse._version import __version__
from dse.engine import enable_compilation_cache
from dse.specs import SpecError, UserFit, fits_in_effect, invocation, named_fits, read_fit

from . import (
    _bench,
    _calibration_cmds,
    _daemon_cmd,
    _demo,
    _design_cmd,
    _engine_cmds,
    _plan_cmd,
    _requirements_cmd,
    _simulate_cmd,
    _sweep_cmds,
    _ui,
)

# Each module adds its subcommands with ``add_subcommands(subparsers)``, in this order.
SUBCOMMAND_MODULES = (
    _demo,
    _engine_cmds,
    _plan_cmd,
    _simulate_cmd,
    _design_cmd,
    _requirements_cmd,
    _bench,
    _sweep_cmds,
    _calibration_cmds,
    _daemon_cmd,
    _ui,
)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        # No prefix matching: `--mode` must not silently mean `--model`.
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise SpecError(message if self.prog == "inferbench" else f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inferbench", description="Design-space exploration and benchmark for AI inference hardware.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for module in SUBCOMMAND_MODULES:
        module.add_subcommands(sub)
    for name in FIT_COMMANDS:  # every command that evaluates a chip can use a user's fit of it
        sub.choices[name].add_argument(
            "--fit",
            metavar="FIT.yaml",
            help="the calibrated level of its chip from a fit of your measurements (`inferbench calibrate "
            "MEASUREMENTS.csv -o FIT.yaml`)",
        )
    for s in sub.choices.values():  # every command that writes a result can be told to replace one
        options = {o for a in s._actions for o in a.option_strings}
        if options & {"--output", "--output-dir"} and "--overwrite" not in options:
            s.add_argument(
                "--overwrite", action="store_true", help="replace an existing sweep store at the output path"
            )
    return p


FIT_COMMANDS = ("evaluate", "predict", "plan", "design", "requirements", "report", "sweep")


def _fits(args: argparse.Namespace) -> list[UserFit]:
    """The user's fits this command uses: ``--fit FIT.yaml`` (refused when it is of a chip the
    command does not evaluate), else the named fits of ``--framework NAME`` in the fits folder."""
    if getattr(args, "fit", None):
        fit = read_fit(args.fit)
        given = getattr(args, "hardware", None)
        refs = [r.strip() for r in (given if isinstance(given, list) else str(given or "").split(",")) if r.strip()]
        ids = {Path(r).stem if (r.endswith((".yaml", ".yml")) or "/" in r) else r for r in refs}
        if ids and fit.hardware not in ids:
            raise SpecError(
                f"--fit {args.fit}: a fit of {fit.hardware}: expected a fit of the chip evaluated ({', '.join(sorted(ids))})"
            )
        return [fit]
    if getattr(args, "framework", None) and args.command != "calibrate":
        return named_fits(args.framework)
    return []


def _one_line(text: str) -> str:
    """Control characters and line breaks of user input shown escaped: the error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_SAID: set[str] = set()  # the warnings this command has printed: each once


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # Warnings meant for users (unfinished stores, extrapolated models) as one line on stderr,
    # each once per command (a search evaluates the same model under several programs).
    text = _one_line(str(message))
    if text not in _SAID:
        _SAID.add(text)
        print(f"inferbench: warning: {text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    _SAID.clear()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.version:
            print(f"inferbench {__version__}")
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        enable_compilation_cache()  # every command: a second run loads its programs from disk
        with invocation(overwrite=getattr(args, "overwrite", False)), fits_in_effect(_fits(args)):
            return int(args.func(args))
    except SpecError as e:
        print(f"inferbench: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader closed the pipe (`| head`): nothing left to say
        return 0
    except OSError as e:  # the file system refused (full disk, permissions): the user's to fix
        where = f"{e.filename}: " if e.filename else ""
        print(
            f"inferbench: error: {_one_line(where)}{e.strerror or e}: expected a readable/writable path",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("inferbench: interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
