"""The supervisor on loopback (no lab): readiness once every worker serves, metrics
summed, SIGHUP as a new generation, SIGTERM drains them all."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request

from tests.test_twistd import echo_server, echo_through, free_port, policy, zfw_run


def test_ready_once_every_worker_serves_and_sigterm_ends_them_all(tmp_path):
    listen = free_port()
    notify = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd, echo_server() as target:
        sd.bind(notify)
        sd.settimeout(60)
        metrics = free_port()
        args = [*policy(tmp_path, listen, target), "--instance", "plain", "--workers", "2"]
        args += ["--metrics", f"127.0.0.1:{metrics}"]
        with zfw_run(args, {"NOTIFY_SOCKET": notify}) as proc:
            state = sd.recv(4096).decode()  # only the supervisor may notify
            assert state.startswith("READY=1\n") and f"MAINPID={proc.pid}" in state
            assert "2 workers" in state
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = f.read().split()
            assert len(children) == 2
            for _ in range(20):
                assert echo_through(listen) == b"ping\n"
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=30) as r:
                text = r.read().decode()
            # The workers' counters summed; the limit is the policy's, not a worker's share.
            assert 'zfw_sessions_total{instance="plain",service="echo"} 20.0' in text
            assert 'zfw_sessions_limit{instance="plain",service="echo"} 1000.0' in text
            assert 'zfw_worker_sessions_running{instance="plain",worker="1"}' in text
            assert 'zfw_worker_sessions_running{instance="plain",worker="2"}' in text
            proc.send_signal(signal.SIGHUP)
            assert sd.recv(4096).decode().startswith("RELOADING=1\n")
            assert sd.recv(4096).decode().startswith("READY=1")
            assert echo_through(listen) == b"ping\n"
            proc.send_signal(signal.SIGTERM)
            assert sd.recv(4096).decode() == "STOPPING=1"
            proc.wait(30)
            out = proc.stdout.read() if proc.stdout else ""
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}"), out
        assert "zfw/plain/w1[" in out and "zfw/plain/w2[" in out
        assert not (tmp_path / "control.workers").exists()


def test_ftp_keeps_its_instance_to_one_worker(tmp_path):
    path = tmp_path / "policy.py"
    path.write_text(
        "from zfw.policy import *\n"
        "InetZone('local', '127.0.0.0/8', inbound_services=['*'], outbound_services=['*'])\n"
        "def files():\n"
        "    Service('ftp', FtpProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', 21)))\n"
        f"    Listener(SockAddrInet('127.0.0.1', {free_port()}), 'ftp', transparent=False)\n"
    )
    args = ["--policy", str(path), "--control-socket", str(tmp_path / "control.sock")]
    with zfw_run([*args, "--instance", "files", "--workers", "2"]) as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert out.strip().endswith(
        "zfw: --workers 2: service 'ftp' is FtpProxy, whose data channels are not shared "
        "across workers yet: run it in an instance of one worker"
    ), out
