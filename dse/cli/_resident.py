"""A resident engine for interactive queries: ``inferbench daemon start``.

A fresh process spends seconds before it can answer one query: importing JAX and xarray
(1 to 3 s on a laptop-class CPU) and loading its compiled programs from the disk caches. A
resident engine is one process that has done that once; the ``inferbench`` entry point hands
it the short queries (:data:`FORWARDED`) over a Unix socket and prints its answer, without
importing JAX itself. Everything else, and every query when no engine runs, runs in the
calling process as before.

An engine answers only for the exact code it was started from: its socket is named by a
hash of the sources, the Python executable and the JAX version, so editing the code or
switching environments makes the entry point fall back to a local run. Specs, catalogs and
fitted files are read from disk on every query, as in a local run. The engine answers one
query at a time, in the caller's working directory, and exits after ``idle`` seconds
without a query or on ``inferbench daemon stop``.

This module imports nothing heavy: it is on the path of every command.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import importlib.metadata
import json
import os
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Queries a resident engine answers: they read specs and print (or write a named file).
FORWARDED = ("evaluate", "predict", "plan", "requirements", "design")
IDLE_S = 3600.0  # an engine exits after an hour without a query
_ROOT = Path(__file__).resolve().parents[2]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inferbench"


def fingerprint() -> str:
    """What an engine must share with its caller: the sources, the interpreter, JAX, the cache."""
    versions = []
    for dist in ("jax", "jaxlib"):
        try:
            versions.append(importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            versions.append("-")
    h = hashlib.sha256(f"{sys.executable} {' '.join(versions)} {_cache_dir()}".encode())
    for package in ("dse", "models", "calibration"):
        for path in sorted((_ROOT / package).rglob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def socket_path() -> Path:
    """The socket of the engine for this code (short: Unix socket paths hold ~100 bytes), in
    ``$INFERBENCH_DAEMON_DIR`` if set."""
    folder = os.environ.get("INFERBENCH_DAEMON_DIR") or Path(tempfile.gettempdir()) / f"inferbench-{os.getuid()}"
    return Path(folder) / f"{fingerprint()}.sock"


def _private(folder: Path) -> bool:
    """The socket folder is this user's alone (another user's socket must not answer us)."""
    try:
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def _connect(path: Path) -> socket.socket | None:
    if not path.exists() or not _private(path.parent):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:  # an engine that died without cleaning up
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return sock


def _request(sock: socket.socket, message: dict[str, Any]) -> int | None:
    """Send one request and copy the answer to this process's stdout and stderr."""
    sock.sendall((json.dumps(message) + "\n").encode())
    code, wrote = None, False
    try:
        with sock.makefile("r", encoding="utf-8") as answer:
            for line in answer:
                part = json.loads(line)
                if "code" in part:
                    code = int(part["code"])
                    break
                stream = sys.stdout if "out" in part else sys.stderr
                stream.write(part.get("out", part.get("err", "")))
                wrote = True
    except (OSError, ValueError):
        if not wrote:
            raise  # nothing shown yet: the caller runs the query here instead
    if code is None and wrote:  # part of an answer is out: running it again would repeat it
        print("inferbench: error: the resident engine stopped mid-answer: run the query again", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return code


def forward(argv: Sequence[str]) -> int | None:
    """Run ``argv`` on the resident engine; None when it is not for one or none runs."""
    if not argv or argv[0] not in FORWARDED or os.environ.get("INFERBENCH_DAEMON") == "0":
        return None
    if any(a in ("-h", "--help") for a in argv):
        return None
    try:
        cwd = os.getcwd()
        sock = _connect(socket_path())
    except OSError:  # no working directory, or the sources cannot be read: run it here
        return None
    if sock is None:
        return None
    with sock:
        try:
            return _request(sock, {"argv": list(argv), "cwd": cwd})
        except (OSError, ValueError):  # the engine went away mid-answer: run it here instead
            return None


def control(command: str) -> dict[str, Any] | None:
    """``status`` or ``stop`` of the engine for this code; None when none runs."""
    sock = _connect(socket_path())
    if sock is None:
        return None
    with sock:
        sock.sendall((json.dumps({"control": command}) + "\n").encode())
        with sock.makefile("r", encoding="utf-8") as answer:
            line = answer.readline()
    return json.loads(line) if line else None


class _Stream:
    """A text stream that sends what is written to the client as JSON lines."""

    def __init__(self, conn: socket.socket, key: str):
        self.conn, self.key = conn, key

    def write(self, text: str) -> int:
        if text:
            self.conn.sendall((json.dumps({self.key: text}) + "\n").encode())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _answer(conn: socket.socket, request: dict[str, Any], main: Any) -> None:
    home = os.getcwd()
    out, err = _Stream(conn, "out"), _Stream(conn, "err")
    try:
        os.chdir(request["cwd"])
        # Fresh warning filters per query, so that a warning shown to one caller is shown to the next.
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            try:
                code = main(request["argv"])
            except Exception:  # what a local run would print before exiting
                err.write(traceback.format_exc())
                code = 1
    except OSError as e:
        err.write(f"inferbench: error: {request.get('cwd')}: {e.strerror or e}: expected a working directory\n")
        code = 2
    finally:
        os.chdir(home)
    conn.sendall((json.dumps({"code": code}) + "\n").encode())


def serve(idle_s: float = IDLE_S, warm: Sequence[str] = ()) -> int:
    """Run the engine in this process until ``idle_s`` seconds pass without a query or a stop.
    ``warm``: a query run once (output discarded) before the socket opens."""
    main = importlib.import_module("dse.cli._main").main
    if warm:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            main(list(warm))
    path = socket_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(path.parent):
        print(f"daemon: {path.parent}: expected a folder of this user's, closed to others", file=sys.stderr)
        return 2
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    started = time.time()
    served = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(8)
        server.settimeout(idle_s)
        try:
            while True:
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    return 0
                with conn:
                    conn.settimeout(None)
                    try:
                        with conn.makefile("r", encoding="utf-8") as f:
                            request = json.loads(f.readline() or "{}")
                        if "control" in request:
                            info = {"pid": os.getpid(), "socket": str(path), "since": started, "queries": served}
                            conn.sendall((json.dumps(info) + "\n").encode())
                            if request["control"] == "stop":
                                return 0
                            continue
                        _answer(conn, request, main)
                        served += 1
                    except (OSError, ValueError, KeyError):
                        continue  # a client that went away or sent garbage: serve the next
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


def main_exit() -> None:
    """Console-script entry point: a forwarded query, or the full command line here."""
    code = forward(sys.argv[1:])
    if code is None:
        # Loaded only now: a forwarded query never imports the command line's dependencies.
        # No garbage collection while the libraries load (nothing they make is garbage), and
        # what they made is frozen out of every later collection: 0.08 s of a warm query and
        # 0.25 s of a cold one (tracing allocates) on 2 cores.
        gc.disable()
        main = importlib.import_module("dse.cli._main").main
        gc.enable()
        gc.freeze()
        code = main()
    sys.exit(code)
