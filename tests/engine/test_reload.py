"""Reloads of a running ``zfw run`` on loopback: all the new listeners open and the new
policy is in force, or nothing changes and ``zfw reload`` says why (exit status 1)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from tests.test_twistd import ZFW, echo_server, echo_through, free_port, wait_for, zfw_run

HEAD = (
    "from zfw.policy import *\n"
    "InetZone('local', ['127.0.0.0/8', '::1/128'], inbound_services=['*'], "
    "outbound_services=['*'])\n"
    "def plain():\n"
)


def write(path: Path, target: int, *listeners: str) -> None:
    """The policy at ``path``: an echo service reached through each listener (host, port)."""
    body = f"    Service('echo', PlugProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', {target})))\n"
    for lst in listeners:
        body += f"    Listener(SockAddrInet({lst}), 'echo', transparent=False)\n"
    path.write_text(HEAD + body)


def control(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZFW, *args, "--socket", str(sock)], capture_output=True, text=True, timeout=60
    )


def open_listeners(sock: Path) -> list[str]:
    out = control(sock, "status", "--json")
    assert out.returncode == 0, out.stderr
    return [lst["address"] for lst in json.loads(out.stdout)[str(sock)]["listeners"]]


def test_a_reload_whose_new_listener_cannot_open_changes_nothing(tmp_path):
    first, second = free_port(), free_port()
    path, sock, log = tmp_path / "policy.py", tmp_path / "control.sock", tmp_path / "zfw.log"
    with echo_server() as target:
        write(path, target, f"'127.0.0.1', {first}")
        args = ["--policy", str(path), "--instance", "plain", "--control-socket", str(sock)]
        with zfw_run([*args, "--log-file", str(log)]):
            wait_for(log, "started from")
            with socket.create_server(("127.0.0.1", second)):  # another program has it
                write(path, target, f"'127.0.0.1', {first}", f"'127.0.0.1', {second}")
                proc = control(sock, "reload")
                assert proc.returncode == 1 and proc.stdout == ""
                assert proc.stderr == (
                    f"{path}:6: cannot listen on 127.0.0.1:{second}: Address already in use\n"
                )
                assert open_listeners(sock) == [f"127.0.0.1:{first}"]
                assert echo_through(first) == b"ping\n"  # the old policy serves on
                assert wait_for(log, "reload refused, keeping the running policy")
            # Free now: the same reload goes through.
            assert control(sock, "reload").stdout == "ok\n"
            assert open_listeners(sock) == [f"127.0.0.1:{first}", f"127.0.0.1:{second}"]
            assert echo_through(second) == b"ping\n" and echo_through(first) == b"ping\n"


def test_a_listener_that_must_make_way_comes_back_when_the_reload_fails(tmp_path):
    port = free_port()
    path, sock, log = tmp_path / "policy.py", tmp_path / "control.sock", tmp_path / "zfw.log"
    with echo_server() as target:
        write(path, target, f"'127.0.0.1', {port}")
        args = ["--policy", str(path), "--instance", "plain", "--control-socket", str(sock)]
        with zfw_run([*args, "--log-file", str(log)]):
            wait_for(log, "started from")
            # '' binds 0.0.0.0 (127.0.0.1 must close first) and :: (taken): refused, and
            # 127.0.0.1 listens again.
            with socket.create_server(("::", port), family=socket.AF_INET6):  # v6only
                write(path, target, f"'', {port}")
                proc = control(sock, "reload")
                assert proc.returncode == 1, proc.stdout
                assert f"cannot listen on [::]:{port}: Address already in use" in proc.stderr
                assert open_listeners(sock) == [f"127.0.0.1:{port}"]
                assert echo_through(port) == b"ping\n"
            # And with :: free, the wildcard takes the port over.
            assert control(sock, "reload").stdout == "ok\n"
            assert open_listeners(sock) == [f"0.0.0.0:{port}", f"[::]:{port}"]
            assert echo_through(port) == b"ping\n"
            with socket.create_connection(("::1", port), timeout=10) as c:
                c.sendall(b"six\n")
                assert c.recv(100) == b"six\n"


def test_a_policy_that_does_not_load_keeps_the_running_one(tmp_path):
    port = free_port()
    path, sock, log = tmp_path / "policy.py", tmp_path / "control.sock", tmp_path / "zfw.log"
    with echo_server() as target:
        write(path, target, f"'127.0.0.1', {port}")
        args = ["--policy", str(path), "--instance", "plain", "--control-socket", str(sock)]
        with zfw_run([*args, "--log-file", str(log)]):
            wait_for(log, "started from")
            good = path.read_text()
            path.write_text(good + "    Listener(SockAddrInet('', 1), 'nope', transparent=False)\n")
            proc = control(sock, "reload")
            assert proc.returncode == 1
            assert proc.stderr == f"{path}:6: listener *:1 names unknown service 'nope'\n"
            assert open_listeners(sock) == [f"127.0.0.1:{port}"]
            assert echo_through(port) == b"ping\n"
