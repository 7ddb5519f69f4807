"""Which listening arrangement spreads TPROXY-diverted connections over processes.

Checked, not assumed (issue #36): two plain processes in the firewall namespace
accept connections the lab's TPROXY rules divert to port 50007, either from one
transparent listening socket they both inherited, or each from its own socket of
a SO_REUSEPORT group. Each answers with its name; the client counts the answers.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

import pytest

from zfw.lab import SERVER4, SERVER6, Lab

ACCEPTORS = """
import os, socket, sys
from zfw import net
mode, family_host = sys.argv[1], sys.argv[2]
def serve(sock, name):
    sock.setblocking(True)
    while True:
        conn, _ = sock.accept()
        conn.sendall(name.encode() + b"\\n")
        conn.close()
shared = net.listening_socket(family_host, 50007, True) if mode == "shared" else None
for name in ("w1", "w2"):
    if os.fork() == 0:
        sock = shared or net.listening_socket(family_host, 50007, True, reuse_port=True)
        os.write(1, b"ready\\n")
        serve(sock, name)
os.write(1, b"forked\\n")
os.wait()
"""

CONNECTS = """
import socket, sys
host, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    s = socket.create_connection((host, 7), timeout=5)
    print(s.makefile().readline().strip(), flush=True)
    s.close()
"""


def spread(lab: Lab, mode: str, listen_host: str, server: str, count: int) -> Counter[str]:
    proc = lab.popen(
        "fw", [sys.executable, "-c", ACCEPTORS, mode, listen_host], start_new_session=True
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert sorted(lines) == ["forked", "ready", "ready"], lines
        out = lab.run("client", [sys.executable, "-c", CONNECTS, server, str(count)]).stdout
        return Counter(out.split())
    finally:
        # The acceptors are a process group of our own making: end that group by its id.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("mode", ["shared", "reuseport"])
@pytest.mark.parametrize(("listen_host", "server"), [("0.0.0.0", SERVER4), ("::", SERVER6)])
def test_tproxy_connections_reach_every_acceptor(plug_lab, mode, listen_host, server):
    counts = spread(plug_lab, mode, listen_host, server, 200)
    assert sum(counts.values()) == 200, counts
    assert set(counts) == {"w1", "w2"}, counts
    print(mode, listen_host, dict(counts))
