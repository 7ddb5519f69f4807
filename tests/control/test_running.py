"""The control socket of a running ``zfw run`` on loopback: it answers through a SIGTERM
drain, and a peer it refuses gets one line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.test_reload import HEAD, control
from tests.test_twistd import ZFW, echo_server, free_port, wait_for, zfw_run


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users may enter (pytest's own are root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="zfw-control-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def start(d: Path, target: int, listen: int) -> list[str]:
    path = d / "policy.py"
    path.write_text(
        HEAD + "    InstanceOptions(shutdown_grace=600)\n"
        f"    Service('echo', PlugProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', {target})))\n"
        f"    Listener(SockAddrInet('127.0.0.1', {listen}), 'echo', transparent=False)\n"
    )
    return ["--policy", str(path), "--instance", "plain", "--control-socket", str(d / "c.sock")]


def test_the_control_socket_answers_through_the_drain(tmp_path):
    listen, sock, log = free_port(), tmp_path / "c.sock", tmp_path / "zfw.log"
    with (
        echo_server() as target,
        zfw_run([*start(tmp_path, target, listen), "--log-file", str(log)]) as proc,
    ):
        wait_for(log, "started from")
        with socket.create_connection(("127.0.0.1", listen), timeout=10) as c:
            c.sendall(b"ping\n")
            assert c.recv(100) == b"ping\n"  # a session is open
            proc.send_signal(signal.SIGTERM)
            wait_for(log, "waiting up to 600 s for 1 sessions")
            st = json.loads(control(sock, "status", "--json").stdout)[str(sock)]
            assert st["state"] == "draining" and st["listeners"] == []
            assert st["sessions"]["running"] == 1
            assert "), draining, up " in control(sock, "status").stdout.splitlines()[0]
            found = json.loads(control(sock, "sessions", "--json").stdout)[str(sock)]
            assert [s["service"] for s in found] == ["echo"]
            refused = control(sock, "reload")
            assert (refused.returncode, refused.stderr) == (1, "the instance is stopping\n")
            c.sendall(b"still\n")
            assert c.recv(100) == b"still\n"  # the session goes on
        # The last session ended: the process exits (as twistd does, by the signal) ...
        assert proc.wait(60) in (0, -signal.SIGTERM)
    assert not sock.exists()  # ... and its control socket is gone
    assert "stopped" in log.read_text()


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ZFW, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_refused_peer_gets_one_line(shared_dir):
    d, listen = shared_dir, free_port()
    sock = d / "c.sock"
    with (
        echo_server() as target,
        zfw_run([*start(d, target, listen), "--log-file", str(d / "log")]),
    ):
        wait_for(d / "log", "started from")
        for command in ("status", "sessions", "reload", "kill"):
            args = [command, "--socket", str(sock)] + (
                ["plain/echo:1"] if command == "kill" else []
            )
            proc = as_nobody(*args)  # the socket's mode refuses
            assert proc.returncode != 0 and proc.stdout == ""
            assert proc.stderr == f"zfw: {sock}: permission denied (run as root or as zfw's user)\n"
            os.chmod(sock, 0o666)  # opened up by an administrator: the server refuses the uid
            try:
                proc = as_nobody(*args)
            finally:
                os.chmod(sock, 0o600)
            assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
            assert proc.stderr.count("\n") == 1 and "permission denied" in proc.stderr
        assert wait_for(d / "log", "refused a control client of uid 65534")
        assert control(sock, "status").returncode == 0  # root is served
