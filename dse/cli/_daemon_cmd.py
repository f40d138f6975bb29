"""``inferbench daemon``: start, stop or ask about the resident engine (:mod:`._resident`)."""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

from dse.specs import SpecError

from . import _resident
from ._args import positive

# The query an engine runs once before it opens its socket: it imports and compiles what an
# ``evaluate`` needs, so the first forwarded query is as fast as the next.
WARM_QUERY = ("evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--batch", "1,8")
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 120.0


def _say(text: str) -> None:
    print(f"daemon: {text}", file=sys.stderr)


MAX_IDLE_MIN = 7 * 24 * 60  # a week


def _private_dir() -> Path:
    try:
        return _resident.private_dir(create=True)
    except _resident.NotPrivate as e:
        raise SpecError(
            f"daemon: {e}: expected a folder of this user's that no one else can open (remove it if you did "
            "not make it, or set INFERBENCH_DAEMON_DIR)"
        ) from None


def cmd_daemon(args: argparse.Namespace) -> int:
    idle_min = positive(args.idle_min, "--idle-min")
    if idle_min > MAX_IDLE_MIN:
        raise SpecError(f"--idle-min: {args.idle_min}: expected at most {MAX_IDLE_MIN} (a week)")
    if args.action == "run":  # the engine itself, in the foreground
        return _resident.serve(idle_min * 60.0, WARM_QUERY)
    info = _resident.control("status")
    if args.action == "status":
        if info is None:
            print("no resident engine for this code: queries run in their own process")
            return 1
        since = datetime.datetime.fromtimestamp(info["since"]).isoformat(timespec="seconds")
        now = "answering a query" if info.get("running") else "idle"
        print(
            f"resident engine: pid {info['pid']}, since {since}, {info['queries']} queries, {now}, "
            f"socket {info['socket']}"
        )
        return 0
    if args.action == "stop":
        if info is None:
            _say("no resident engine for this code")
            return 0
        _resident.control("stop")
        t0 = time.perf_counter()  # its running query finishes first; then its socket goes
        while Path(info["socket"]).exists() and time.perf_counter() - t0 < STOP_TIMEOUT_S:
            time.sleep(0.05)
        _say(f"stopped the engine (pid {info['pid']})")
        return 0
    if info is not None:
        _say(f"already running (pid {info['pid']})")
        return 0
    log_path = (_private_dir() / _resident.socket_path().name).with_suffix(".log")
    try:
        log = _resident.open_private(log_path)
    except (OSError, _resident.NotPrivate) as e:
        raise SpecError(
            f"daemon: {log_path}: {getattr(e, 'strerror', None) or e}: expected a log file of this user's"
        ) from None
    command = [sys.executable, "-m", "dse", "daemon", "run", "--idle-min", f"{idle_min:g}"]
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=os.environ.copy()
        )
    finally:
        os.close(log)
    t0 = time.perf_counter()
    _say("starting (importing and compiling a first query)…")
    while _resident.control("status") is None:
        if proc.poll() is not None or time.perf_counter() - t0 > START_TIMEOUT_S:
            proc.kill()
            raise SpecError(f"daemon: the engine did not start: see {log_path}")
        time.sleep(0.2)
    _say(
        f"resident engine running (pid {proc.pid}, {time.perf_counter() - t0:.1f} s to start); "
        f"{', '.join(_resident.FORWARDED)} are answered by it until {idle_min:g} min without a query "
        "or `inferbench daemon stop`"
    )
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "daemon",
        help="keep a resident engine for fast interactive queries",
        description="Start, stop or ask about a resident engine: one background process with JAX loaded that "
        f"answers {', '.join(_resident.FORWARDED)} in a fraction of a second instead of a fresh process's "
        "seconds of start-up. It serves only the code it was started from (an edit makes queries run locally "
        "again) and exits when idle. Example: inferbench daemon start",
    )
    s.add_argument("action", choices=("start", "stop", "status", "run"), help="run: the engine in the foreground")
    s.add_argument(
        "--idle-min",
        default=f"{_resident.IDLE_S / 60:g}",
        help="exit after this many minutes without a query (default 60)",
    )
    s.set_defaults(func=cmd_daemon)
