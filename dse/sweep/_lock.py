"""One writer per store: an advisory lock file beside the store (``.NAME.lock``).

The lock is a kernel ``flock`` on that file, so it dies with its process: a lock left by a
killed sweep is stale by construction and the next writer simply takes it. The file holds the
holder's pid, host and start time, for the message a second writer gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from dse.specs import SpecError, make_parent

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks; one writer is then the user's care
    fcntl = None  # type: ignore[assignment]


def lock_path(store: Path) -> Path:
    return store.with_name(f".{store.name}.lock")


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"process {info['pid']} on {info['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold the write lock of ``store``; a second writer gets a one-line error at once."""
    if fcntl is None:
        yield
        return
    make_parent(store)
    # Keyed by the real path: a symlink (or another spelling) of the store finds the same lock.
    path = lock_path(Path(os.path.realpath(store)))
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            raise SpecError(f"{store}: cannot create the lock file {path.name} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SpecError(
                f"{store}: is being written by {holder}: expected one sweep per store at a time "
                "(wait for it, or stop it and run the same command again to resume)"
            ) from None
        try:  # the file may have been removed by the previous holder between open and lock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
