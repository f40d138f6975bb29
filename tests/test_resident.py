"""The resident engine is private to its user and never blocked by one client (issue 24).

The engine's loop runs here in a thread with a stand-in for the command line, so these tests
check the protocol, the folder and file checks and the concurrency without compiling anything.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dse.cli import _resident
from dse.cli._main import main

OTHER_UID = 65534  # 'nobody': a second user where the test runs as root


@pytest.fixture
def folder(tmp_path, monkeypatch):
    f = tmp_path / "engine"
    monkeypatch.setenv("INFERBENCH_DAEMON_DIR", str(f))
    monkeypatch.delenv("INFERBENCH_DAEMON", raising=False)
    return f


ENGINE = """
import sys, threading
from pathlib import Path
from dse.cli import _resident

def stand_in(argv):
    while "hold" in argv and not Path("release").exists():  # held until the test releases it
        threading.Event().wait(0.02)
    print("answered", *argv)
    Path("umask-probe").write_text("x")  # in the caller's directory, with the caller's umask
    return 0

sys.exit(_resident.serve(60.0, main=stand_in))
"""


@pytest.fixture
def engine(folder):
    """An engine process serving a stand-in for the command line on the socket callers use."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    log = folder.parent / "engine.log"
    with log.open("w") as err, subprocess.Popen([sys.executable, "-c", ENGINE], env=env, stderr=err) as proc:
        path = folder / f"{_resident.fingerprint()}.sock"
        while not path.exists():  # it binds once it has imported the module
            assert proc.poll() is None, log.read_text()
            threading.Event().wait(0.05)
        yield path
        _resident.control("stop")
        assert proc.wait(60) == 0, log.read_text()


def test_a_foreign_or_open_folder_is_refused_and_nothing_is_written_through_it(folder, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's own file\n")
    # 1. A folder another user made (a real second uid where we may chown; else one open to others).
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    if os.geteuid() == 0:
        os.chown(folder, OTHER_UID, OTHER_UID)
    (folder / f"{_resident.fingerprint()}.log").symlink_to(victim)
    assert main(["daemon", "start"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("belongs to user" in err[0] or "others can open it" in err[0]), err
    assert _resident.forward(["evaluate", "--model", "x"]) is None  # a caller runs locally, never connects
    # 2. A folder of ours, but the log a symlink planted to the victim's file: not followed.
    os.unlink(folder / f"{_resident.fingerprint()}.log")
    if os.geteuid() == 0:
        os.chown(folder, os.getuid(), os.getgid())
    os.chmod(folder, 0o700)
    (folder / f"{_resident.fingerprint()}.log").symlink_to(victim)
    assert main(["daemon", "start"]) == 2
    assert "expected a log file of this user's" in capsys.readouterr().err
    assert victim.read_text() == "the victim's own file\n"
    # 3. The folder itself a symlink to one of ours.
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.unlink(folder / f"{_resident.fingerprint()}.log")
    folder.rmdir()
    folder.symlink_to(real)
    with pytest.raises(_resident.NotPrivate, match="symlink"):
        _resident.private_dir()


def test_a_silent_client_blocks_no_one_and_queries_run_in_the_callers_directory(engine, tmp_path, monkeypatch, capsys):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(engine))  # connects and never says a word
    try:
        assert _resident.control("status")["queries"] == 0
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        old = os.umask(0o077)
        try:
            assert _resident.forward(["evaluate", "x"]) == 0
        finally:
            os.umask(old)
        assert capsys.readouterr().out == "answered evaluate x\n"
        assert (work / "umask-probe").stat().st_mode & 0o777 == 0o600  # the caller's umask, not the engine's
    finally:
        silent.close()


def test_a_caller_that_cannot_be_served_in_time_runs_locally(engine, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    held = threading.Thread(target=_resident.forward, args=(["evaluate", "hold"],))
    held.start()
    try:
        while not _resident.control("status")["running"]:  # the held query occupies the engine
            threading.Event().wait(0.02)
        monkeypatch.setattr(_resident, "START_TIMEOUT_S", 0.2)
        assert _resident.forward(["evaluate", "x"]) is None  # not started in time: the caller runs it here
    finally:
        (tmp_path / "release").touch()
        held.join()
    assert "answered evaluate hold" in capsys.readouterr().out


def test_the_socket_and_its_folder_are_closed_to_others(engine):
    assert engine.stat().st_mode & 0o777 == 0o600
    assert engine.parent.stat().st_mode & 0o777 == 0o700


def test_a_peer_of_another_uid_is_closed_without_an_answer(tmp_path, monkeypatch):
    # SO_PEERCRED names the connecting process's uid; the engine answers its own user only.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    eng = _resident._Engine(None, tmp_path / "x.sock", idle_s=60.0)
    theirs.sendall(json.dumps({"control": "status"}).encode() + b"\n")
    uid = os.getuid()
    monkeypatch.setattr(_resident.os, "getuid", lambda: uid + 1)  # as if the peer were someone else
    eng.handle(ours)
    monkeypatch.undo()
    theirs.settimeout(10)
    try:
        answer = theirs.recv(4096)
    except ConnectionResetError:  # closed with the request unread
        answer = b""
    assert answer == b""  # closed without a word
    theirs.close()


SYSTEM_PYTHON = "/usr/bin/python3"  # an interpreter a second user may run (the venv's may be under /root)


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK), reason="needs root and a system Python")
def test_a_second_user_cannot_reach_the_engine(engine):
    code = (
        "import socket, json, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(5)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "    s.sendall(json.dumps({'control': 'status'}).encode() + b'\\n')\n"
        "    print(repr(s.recv(4096)))\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", code, str(engine)], capture_output=True, text=True, user=OTHER_UID, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("PermissionError", "b''"), out.stdout  # never an answer
    assert _resident.control("status")["queries"] == 0  # its own user is served
