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

It is private to its user: its socket (0600) and log live in a folder of this user's that it
creates with mode 0700 and checks before every use (owner, mode, not a symlink), and every
connection's peer must be this user. A silent or slow client never blocks others: requests are
read with a timeout by a thread per connection, queries wait in a bounded queue, and a caller
that cannot be started in time runs its query itself.

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
import queue
import socket
import stat
import struct
import sys
import tempfile
import threading
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


class NotPrivate(Exception):
    """The engine's folder or a file in it is not this user's alone: never used."""


def runtime_dir() -> Path:
    """The per-user folder of the engine's socket and log: ``$INFERBENCH_DAEMON_DIR``, else
    ``$XDG_RUNTIME_DIR/inferbench`` (a folder of this user's that the system empties at logout),
    else ``inferbench-UID`` in the temporary folder."""
    if os.environ.get("INFERBENCH_DAEMON_DIR"):
        return Path(os.environ["INFERBENCH_DAEMON_DIR"])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "inferbench"
    return Path(tempfile.gettempdir()) / f"inferbench-{os.getuid()}"


def socket_path() -> Path:
    """The socket of the engine for this code (short: Unix socket paths hold ~100 bytes)."""
    return runtime_dir() / f"{fingerprint()}.sock"


def private_dir(create: bool = False) -> Path:
    """The engine's folder, checked as OpenSSH checks its own files: a real folder (not a
    symlink), owned by this user, closed to everyone else; with ``create`` made (mode 0700)
    when missing. Raises :class:`NotPrivate` naming what is wrong."""
    folder = runtime_dir()
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=True)
    try:
        st = os.lstat(folder)
    except OSError as e:
        raise NotPrivate(f"{folder}: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise NotPrivate(f"{folder}: is a symlink or not a folder")
    if st.st_uid != os.getuid():
        raise NotPrivate(f"{folder}: belongs to user {st.st_uid}, not to this user ({os.getuid()})")
    if st.st_mode & 0o077:
        raise NotPrivate(f"{folder}: mode {stat.S_IMODE(st.st_mode):o}: others can open it")
    return folder


def open_private(path: Path) -> int:
    """A file of the engine's folder opened for writing without following a link, created 0600
    (truncated if it is this user's regular file; anything else is refused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_nlink != 1:
        os.close(fd)
        raise NotPrivate(f"{path}: not a regular file of this user's alone")
    os.ftruncate(fd, 0)
    os.fchmod(fd, 0o600)
    return fd


# How long a caller waits for the engine (a connection, the start of its answer) before it
# runs the query itself, and how long the engine waits on a silent client.
CONNECT_TIMEOUT_S = 2.0
START_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 5.0
QUEUE = 4  # queries waiting behind the running one; a caller beyond them runs locally
MAX_REQUEST_BYTES = 1 << 20


def _connect() -> socket.socket | None:
    try:
        path = private_dir() / f"{fingerprint()}.sock"
    except NotPrivate:
        return None  # no engine of ours (or a folder we must not trust): run the query here
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(str(path))
    except OSError:  # an engine that died without cleaning up, or one too busy to accept
        sock.close()
        return None
    return sock


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def _request(sock: socket.socket, message: dict[str, Any]) -> int | None:
    """Send one request and copy the answer to this process's stdout and stderr; None when the
    engine cannot start it in time (busy, or gone): the caller then runs it itself."""
    _send(sock, message)
    sock.settimeout(START_TIMEOUT_S)
    code, wrote = None, False
    try:
        with sock.makefile("r", encoding="utf-8") as answer:
            first = json.loads(answer.readline() or "{}")
            if not first.get("start"):
                return None  # busy, or refused
            _send(sock, {"go": True})
            sock.settimeout(None)  # the engine runs it now, as long as a local run would take
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
            return None  # nothing shown yet: the caller runs the query here instead
    if code is None and wrote:  # part of an answer is out: running it again would repeat it
        print("inferbench: error: the resident engine stopped mid-answer: run the query again", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return code


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def forward(argv: Sequence[str]) -> int | None:
    """Run ``argv`` on the resident engine; None when it is not for one or none runs."""
    if not argv or argv[0] not in FORWARDED or os.environ.get("INFERBENCH_DAEMON") == "0":
        return None
    if any(a in ("-h", "--help") for a in argv):
        return None
    try:
        cwd = os.getcwd()
        sock = _connect()
    except OSError:  # no working directory, or the sources cannot be read: run it here
        return None
    if sock is None:
        return None
    with sock:
        return _request(sock, {"argv": list(argv), "cwd": cwd, "umask": _umask()})


def control(command: str) -> dict[str, Any] | None:
    """``status`` or ``stop`` of the engine for this code; None when none runs."""
    sock = _connect()
    if sock is None:
        return None
    with sock:
        try:
            sock.settimeout(START_TIMEOUT_S)
            _send(sock, {"control": command})
            with sock.makefile("r", encoding="utf-8") as answer:
                line = answer.readline()
            return json.loads(line) if line else None
        except (OSError, ValueError):
            return None


class _Stream:
    """A text stream that sends what is written to the client as JSON lines."""

    def __init__(self, conn: socket.socket, key: str):
        self.conn, self.key = conn, key

    def write(self, text: str) -> int:
        if text:
            _send(self.conn, {self.key: text})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def close(self) -> None:  # the connection is the caller's to close (a library closing
        pass  # sys.stderr at shutdown ended the daemon's log with a traceback)


def _answer(conn: socket.socket, request: dict[str, Any], main: Any) -> None:
    home = os.getcwd()
    out, err = _Stream(conn, "out"), _Stream(conn, "err")
    mask = request.get("umask")
    old_mask = os.umask(mask if isinstance(mask, int) and 0 <= mask <= 0o777 else 0o022)  # the caller's
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
        os.umask(old_mask)
    _send(conn, {"code": code})


def _peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end (Linux's SO_PEERCRED); None where unknown."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _read_request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(CLIENT_TIMEOUT_S)  # a silent client is dropped, never waited on
    data = b""
    while not data.endswith(b"\n"):
        part = conn.recv(65536)
        if not part:
            break
        data += part
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too long")
    request = json.loads(data or b"{}")
    if not isinstance(request, dict):
        raise ValueError("not a request")
    return request


class _Engine:
    """The accept loop (main thread), one short-lived thread per connection that reads its
    request, and one worker that runs queries one at a time (they share the process's working
    directory, umask and standard streams) from a bounded queue."""

    def __init__(self, main: Any, path: Path, idle_s: float):
        self.main, self.path, self.idle_s = main, path, idle_s
        self.queries: queue.Queue = queue.Queue(QUEUE)
        self.stopping = threading.Event()
        self.started, self.served, self.last = time.time(), 0, time.monotonic()
        self.busy = False

    def handle(self, conn: socket.socket) -> None:
        queued = False
        try:
            if _peer_uid(conn) not in (None, os.getuid()):
                return  # another user's process (the folder's mode should make this impossible)
            request = _read_request(conn)
            if "control" in request:
                info = {
                    "pid": os.getpid(),
                    "socket": str(self.path),
                    "since": self.started,
                    "queries": self.served,
                    "running": self.busy,
                    "waiting": self.queries.qsize(),
                }
                _send(conn, info)
                if request["control"] == "stop":
                    self.stopping.set()
                return
            if not isinstance(request.get("argv"), list) or not isinstance(request.get("cwd"), str):
                return
            try:
                self.queries.put_nowait((conn, request))
                queued = True
            except queue.Full:
                _send(conn, {"busy": True})  # the caller runs it itself
        except (OSError, ValueError):
            pass  # a client that went away, stalled or sent garbage: serve the next
        finally:
            if not queued:
                conn.close()

    def work(self) -> None:
        while True:
            item = self.queries.get()
            if item is None:
                return
            conn, request = item
            with conn:
                try:
                    self.busy = True
                    _send(conn, {"start": True})
                    if not _read_request(conn).get("go"):  # the caller gave up waiting: it runs it itself
                        continue
                    conn.settimeout(None)
                    _answer(conn, request, self.main)
                    self.served += 1
                except (OSError, ValueError):
                    continue
                finally:
                    self.busy = False
                    self.last = time.monotonic()

    def run(self, server: socket.socket) -> None:
        worker = threading.Thread(target=self.work, name="inferbench-query", daemon=True)
        worker.start()
        server.settimeout(min(1.0, self.idle_s))
        try:
            while not self.stopping.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    idle = not self.busy and self.queries.empty()
                    if idle and time.monotonic() - self.last > self.idle_s:
                        return
                    continue
                if self.stopping.is_set():
                    conn.close()
                    break
                self.last = time.monotonic()
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        finally:
            with contextlib.suppress(queue.Full):
                self.queries.put(None, timeout=CLIENT_TIMEOUT_S)
            worker.join(timeout=60.0)  # the running query finishes; waiting ones are dropped


def serve(idle_s: float = IDLE_S, warm: Sequence[str] = (), main: Any = None) -> int:
    """Run the engine in this process until ``idle_s`` seconds pass without a query or a stop.
    ``warm``: a query run once (output discarded) before the socket opens; ``main``: what
    answers a query (default: the command line)."""
    try:
        folder = private_dir(create=True)
    except NotPrivate as e:
        print(f"daemon: {e}: expected a folder of this user's that no one else can open", file=sys.stderr)
        return 2
    main = main or importlib.import_module("dse.cli._main").main
    if warm:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            main(list(warm))
    path = folder / f"{fingerprint()}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        mask = os.umask(0o177)  # the socket is created 0600
        try:
            server.bind(str(path))
        finally:
            os.umask(mask)
        server.listen(16)
        try:
            _Engine(main, path, idle_s).run(server)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
    return 0


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
