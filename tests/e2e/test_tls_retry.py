"""A second ClientHello after a HelloRetryRequest, through the running zfw: a server
answering with a HelloRetryRequest, and a client whose second hello names another
server. The TLS tunnel and the inspection's bypass path both close it before the
second hello reaches the server."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.e2e.helpers import zfw_in_front
from tests.proxy.test_tls import _record, _server_hello, _tls13_hello
from zfw.lab import SERVER4, Lab
from zfw.tls.certs import create_ca
from zfw.tls.retry import HRR_RANDOM

POLICY = """
from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class Tunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["a.example"]


INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=({ca!r} + "/ca.pem", {ca!r} + "/ca.key")),
    bypass=["a.example"],
    reject=["denied.example"],
)


def retry():
    Service("tunnel", Tunnel)
    Service("inspect", HttpProxy, encryption=INSPECT)
    Listener(SockAddrInet("", 50443), "tunnel", intercept=443)
    Listener(SockAddrInet("", 50843), "inspect", intercept=8443)
"""

#: Answers every connection's first bytes with a HelloRetryRequest, then logs how many
#: bytes came in all (one line per connection, at its end).
SERVER = """
import socket, sys, threading
hrr = bytes.fromhex(sys.argv[1])
log = sys.argv[2]
def serve(conn):
    got = conn.recv(65536)
    conn.sendall(hrr)
    conn.settimeout(10)
    try:
        while chunk := conn.recv(65536):
            got += chunk
    except OSError:
        pass
    with open(log, "a") as f:
        f.write(f"{len(got)}\\n")
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    while True:
        threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
for port in (443, 8443):
    threading.Thread(target=listen, args=(port,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

#: Sends the first hello, reads the retry request, sends the second; prints what it
#: read after (b'': closed).
CLIENT = """
import socket, sys
first, second = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.create_connection(({server!r}, int(sys.argv[1])), timeout=20)
s.sendall(first)
print(len(s.recv(65536)))
s.sendall(second)
try:
    print(s.recv(65536))
except ConnectionResetError:
    print("reset")
"""


@pytest.fixture(scope="module")
def retry_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("retry")
    os.chmod(d, 0o755)
    create_ca(str(d / "ca"), "zfw test CA")
    policy = d / "policy.py"
    policy.write_text(POLICY.format(ca=str(d / "ca")))
    log = d / "received.log"
    log.touch()
    hrr = _server_hello(HRR_RANDOM).hex()
    server = lab.popen("server", [sys.executable, "-c", SERVER, hrr, str(log)])
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    with zfw_in_front(lab, server, str(policy), "retry", "tls.*:4,core.*:3") as z:
        yield lab, z, log


@pytest.mark.parametrize(("port", "how"), [(443, "TLS tunnel"), (8443, "inspection's bypass path")])
def test_a_second_hello_naming_another_server_never_reaches_it(retry_lab, port, how):
    lab, z, log = retry_lab
    first = _tls13_hello(b"a.example")
    second = _record(20, b"\x01") + _tls13_hello(b"denied.example")
    start = len(z.lines)
    seen = len(log.read_text().split())
    proc = lab.run(
        "client",
        [sys.executable, "-c", CLIENT.format(server=SERVER4), str(port), first.hex(), second.hex()],
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got, after = proc.stdout.split()
    assert int(got) == len(_server_hello(HRR_RANDOM))  # the retry request came through
    assert after in ("b''", "reset")  # then zfw closed the connection
    line = z.wait_for("the second ClientHello names 'denied.example'", start=start)
    assert line and "tls.violation(1)" in line, how
    received = _logged(log, seen + 1)
    assert int(received[-1]) == len(first)  # the server had the first hello only


def _logged(log, count: int) -> list[str]:
    """The server's lines once there are ``count`` (it writes one as a connection ends)."""
    for _ in range(300):
        lines = log.read_text().split()
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"the server logged {lines}, not {count} connections")
