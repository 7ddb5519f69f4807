"""PlugProxy end to end: real TCP programs in the client and server namespaces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from tests.e2e.conftest import PLUG_POLICY
from zfw.lab import CLIENT4, CLIENT4_OTHER, CLIENT6, SERVER4, SERVER6, Lab

CONNECT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
source = (sys.argv[3], 0) if len(sys.argv) > 3 else None
try:
    s = socket.create_connection((host, port), timeout=5, source_address=source)
    s.sendall(b"hello\\n")
    data = b""
    while b"hello" not in data:
        chunk = s.recv(200)
        if not chunk:
            break
        data += chunk
    print(data.decode().strip())
except OSError as e:
    print("error", type(e).__name__)
"""


def connect(lab: Lab, host: str, port: int, source: str | None = None) -> str:
    args = ["python3", "-c", CONNECT, host, str(port)] + ([source] if source else [])
    return lab.run("client", args).stdout.strip()


@pytest.fixture
def zfw(plug_lab: Lab):
    z = plug_lab.start_zfw(PLUG_POLICY, "lab", "--log-spec", "core.*:5")
    yield z
    z.stop()


def test_the_twisted_self_check_is_logged(zfw):
    """CI runs this file again with ZFW_TWISTED_INTERNALS=public: the fallback is taken."""
    public = os.environ.get("ZFW_TWISTED_INTERNALS") == "public"
    assert zfw.grep("Twisted's public API only" if public else "fast paths on")


def seen_by_server(servers, count: int) -> list[str]:
    lines = []
    for _ in range(count):
        lines.append(servers["whoami"].stdout.readline().strip())
    return lines


@pytest.mark.parametrize(("client", "server"), [(CLIENT4, SERVER4), (CLIENT6, SERVER6)])
def test_server_sees_the_client_address(plug_lab, servers, zfw, client, server):
    reply = connect(plug_lab, server, 22)
    assert reply.startswith(f"you are {client} port ")
    assert seen_by_server(servers, 1)[0].startswith(f"peer {client} ")
    start = zfw.wait_for("core.session(4)")
    assert "(lan)" in start and "(servers)" in start and "/whoami:" in start
    end = zfw.wait_for("plug.info(3)")
    assert "session end" in end and "client_bytes=6" in end and "duration=" in end


def test_denied_zone_pair_is_refused_and_logged(plug_lab, servers, zfw):
    reply = connect(plug_lab, SERVER4, 22, source=CLIENT4_OTHER)
    assert reply.startswith("error")
    line = zfw.wait_for("core.policy(1)")
    assert f"denied {CLIENT4_OTHER}:" in line
    assert "not permitted from zone 'guest' to zone 'servers'" in line
    # Nothing reached the server: the next peer it reports is the next allowed client.
    assert connect(plug_lab, SERVER4, 22).startswith(f"you are {CLIENT4} ")
    assert seen_by_server(servers, 1)[0].startswith(f"peer {CLIENT4} ")


def test_200_mb_intact_with_bounded_memory_under_a_slow_reader(plug_lab, servers, zfw):
    base = zfw.rss_kib()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], zfw.rss_kib())
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        out = plug_lab.run(
            "client",
            plug_lab.tool("client", "send", SERVER4, "9", str(200 * 2**20))[4:],
            timeout=120,
        )
    finally:
        stop.set()
        t.join()
    result = json.loads(out.stdout)
    assert result["reply"] == {"bytes": 200 * 2**20, "sha256": result["sha256"]}
    # The sink read slowly for 4 s while the sender pushed as fast as it could:
    # without backpressure zfw would have buffered hundreds of MB.
    assert peak[0] - base < 16 * 1024, f"RSS grew from {base} to {peak[0]} KiB"


def test_500_sessions_then_the_501st_is_refused(plug_lab, servers, zfw):
    hold = subprocess.Popen(
        plug_lab.tool("client", "hold", SERVER4, "7", "500"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hold.stdout.readline().strip() == "open 500"
        assert hold.stdout.readline().strip() == "failed 0"
        extra = plug_lab.run(
            "client", plug_lab.tool("client", "hold", SERVER4, "7", "1")[4:], input=""
        )
        assert "open 0" in extra.stdout and "failed 1" in extra.stdout
        assert zfw.wait_for(
            f"{CLIENT4} holds the most sessions (500) of service 'echo', at its limit of 500"
        )
        out, _ = hold.communicate("", timeout=60)
        assert "alive 500" in out
    finally:
        hold.kill()


def test_idle_sessions_time_out(plug_lab, servers, zfw):
    code = (
        "import socket, time\n"
        f"s = socket.create_connection(('{SERVER4}', 13), timeout=10)\n"
        "s.sendall(b'x'); assert s.recv(10) == b'x'\n"
        "t = time.monotonic(); print(repr(s.recv(10)), round(time.monotonic() - t))\n"
    )
    out = plug_lab.run("client", ["python3", "-c", code]).stdout.split()
    assert out[0] == "b''" and 1 <= int(out[1]) <= 3
    assert "/quick:" in zfw.wait_for("idle for 1 s")


def test_sighup_keeps_old_policy_when_broken_and_adds_listeners(plug_lab, servers, tmp_path):
    policy = tmp_path / "p.py"
    shutil.copy(PLUG_POLICY, policy)
    z = plug_lab.start_zfw(str(policy), "lab")
    try:
        policy.write_text(policy.read_text() + "\ndef broken(:\n")
        mark = len(z.lines)
        z.signal(signal.SIGHUP)
        refused = z.wait_for("reload refused", start=mark)
        assert refused and f"{policy}:" in refused and "syntax error" in refused
        assert connect(plug_lab, SERVER4, 22).startswith(f"you are {CLIENT4} ")
        seen_by_server(servers, 1)

        with open(PLUG_POLICY) as f:
            good = f.read()
        good = good.replace(
            'Listener(SockAddrInet("", 50013), "quick", intercept=13)',
            'Listener(SockAddrInet("", 50013), "quick", intercept=13)\n'
            '    Service("echo8", PlugProxy, router=DirectedRouter(SockAddrInet("198.51.100.2", 7)))\n'
            '    Listener(SockAddrInet("", 50008), "echo8", intercept=8)',
        )
        policy.write_text(good)
        mark = len(z.lines)
        z.signal(signal.SIGHUP)
        assert z.wait_for("policy reloaded", start=mark)
        assert z.wait_for("listening on 0.0.0.0:50008", start=mark)
        plug_lab.tproxy({22: 50022, 7: 50007, 9: 50009, 13: 50013, 8: 50008})
        assert connect(plug_lab, SERVER4, 8) == "hello"
    finally:
        z.stop()


def test_sigterm_lets_running_sessions_finish(plug_lab, servers):
    z = plug_lab.start_zfw(PLUG_POLICY, "lab")
    code = (
        "import socket, sys, time\n"
        f"s = socket.create_connection(('{SERVER4}', 7), timeout=10)\n"
        "s.sendall(b'a'); assert s.recv(10) == b'a'\n"
        "print('open', flush=True); sys.stdin.readline()\n"
        "s.sendall(b'b'); print(s.recv(10)); s.close()\n"
    )
    client = subprocess.Popen(
        plug_lab.cmd("client", ["python3", "-c", code]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout.readline().strip() == "open"
        z.signal(signal.SIGTERM)
        assert z.wait_for("waiting up to 30 s for 1 sessions")
        # New connections are no longer accepted ...
        assert connect(plug_lab, SERVER4, 22).startswith("error")
        # ... while the running one carries on.
        out, _ = client.communicate("go\n", timeout=10)
        assert out.strip() == "b'b'"
        assert z.proc.wait(15) in (0, -signal.SIGTERM)  # twistd re-raises the signal
        assert z.wait_for("core.info(3): stopped")
    finally:
        client.kill()
        z.stop()


NAT_REDIRECT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
{rules}COMMIT
"""


def test_nat_redirect_listener_reads_the_original_destination(plug_lab, servers, zfw):
    rule = "-A PREROUTING -i cl0 -p tcp --dport 23 -j REDIRECT --to-ports 50023\n"
    plug_lab.run(
        "fw", ["iptables-legacy-restore", "--noflush"], input=NAT_REDIRECT.format(rules=rule)
    )
    try:
        assert connect(plug_lab, SERVER4, 23).startswith(f"you are {CLIENT4} ")
        line = zfw.wait_for("/redir:")
        assert f"-> {SERVER4}:23, server {SERVER4}:22" in line
        assert seen_by_server(servers, 1)[0].startswith(f"peer {CLIENT4} ")
    finally:
        plug_lab.run(
            "fw", ["iptables-legacy-restore", "--noflush"], input=NAT_REDIRECT.format(rules="")
        )
