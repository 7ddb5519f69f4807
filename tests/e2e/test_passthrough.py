"""Pass-through with real programs: an SSH client (OpenSSH's ssh) and a TLS hello
(openssl s_client) sent to intercepted HTTP ports, and ssh to intercepted TLS ports
(a blind tunnel and an inspecting service), each tunnelled where the service's
``pass_through`` says so and refused where not, with its log line and counter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.helpers import passive_opens, stop_all, zfw_in_front
from zfw.lab import CLIENT4, CLIENT6, SERVER4, SERVER6, Lab
from zfw.lab.servers import s_client

POLICY = """
from zfw.policy import *

TRUSTED = ({ca!r} + "/ca.pem", {ca!r} + "/ca.key")
InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class TunnelHttp(HttpProxy):
    def config(self):
        self.pass_through = "tunnel"


class TunnelTls(TlsTunnelProxy):
    def config(self):
        self.pass_through = "tunnel"


def passthrough():
    Service("http_tunnel", TunnelHttp)
    Service("http_refuse", HttpProxy)
    Service("tls_tunnel", TunnelTls)
    Service("tls_refuse", TlsTunnelProxy)
    Service(
        "inspect_tunnel",
        HttpProxy,
        encryption=TwoSidedEncryption(DynamicCertificate(TRUSTED), pass_through="tunnel"),
    )
    Service("inspect_refuse", HttpProxy, encryption=TwoSidedEncryption(DynamicCertificate(TRUSTED)))
    Listener(SockAddrInet("", 50080), "http_tunnel", intercept=80)
    Listener(SockAddrInet("", 50880), "http_refuse", intercept=8080)
    Listener(SockAddrInet("", 50443), "tls_tunnel", intercept=443)
    Listener(SockAddrInet("", 50843), "tls_refuse", intercept=8443)
    Listener(SockAddrInet("", 50444), "inspect_tunnel", intercept=4443)
    Listener(SockAddrInet("", 50944), "inspect_refuse", intercept=9443)
"""

#: Not an SSH server: it sends a banner first, then reports what the client sent first.
SERVER = r"""
import socket, sys, threading

def serve(conn, port):
    with conn:
        conn.sendall(b"SSH-2.0-LabServer\r\n")
        conn.settimeout(10)
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        peer = conn.getpeername()[0].removeprefix("::ffff:")
        print(port, peer, repr(data[:40]), flush=True)

def listen(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(16)
    return s

def accept(s, port):
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, port), daemon=True).start()

socks = [(listen(int(p)), int(p)) for p in sys.argv[1:]]
print("ready", flush=True)
for s, port in socks:
    threading.Thread(target=accept, args=(s, port), daemon=True).start()
threading.Event().wait()
"""
PORTS = (80, 8080, 443, 8443, 4443, 9443)


class Server:
    """The banner server in the server namespace; the lines it reports."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.strip())
                self._cond.notify_all()

    def mark(self) -> int:
        """Where the next report will be."""
        with self._cond:
            return len(self.lines)

    def seen(self, port: int, start: int, timeout: float = 20) -> str | None:
        """The first report (from index ``start``) of a connection to ``port``, waiting."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if line.startswith(f"{port} "):
                        return line
                if time.monotonic() > deadline:
                    return None
                self._cond.wait(0.2)


@pytest.fixture(scope="module")
def passthrough_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("passthrough")
    os.chmod(d, 0o755)
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    made = subprocess.run(
        [zfw, "ca", "create", str(d / "ca"), "--name", "zfw pass-through CA"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    policy = d / "policy.py"
    policy.write_text(POLICY.format(ca=str(d / "ca")))
    proc = lab.popen("server", [sys.executable, "-c", SERVER, *map(str, PORTS)])
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        stop_all([proc])
        raise AssertionError(f"banner server: {line!r}")
    with zfw_in_front(lab, proc, str(policy), "passthrough", "core.*:3") as z:
        yield lab, z, Server(proc)


def ssh(lab: Lab, port: int, server: str = SERVER4) -> subprocess.CompletedProcess[str]:
    """OpenSSH's client to ``server``'s ``port``, verbose; it gives up after the banners."""
    return lab.run(
        "client",
        [
            "ssh",
            "-v",
            "-p",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=20",
            f"nobody@{server}",
            "true",
        ],
        check=False,
        timeout=60,
    )


def counters(lab: Lab, service: str) -> dict[str, int]:
    """The proxy counters of ``service`` (``zfw status``)."""
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    sock = lab.control_socket("passthrough")
    out = subprocess.run(
        [zfw, "status", "--json", "--socket", sock], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[sock]["services"].get(service, {}).get("proxy", {})


def logged(z, start: int, service: str, why: str, action: str) -> None:
    """The line of ``service`` (after ``start``) that says ``why`` and ``action``."""
    line = z.wait_for(f"; {action} as pass_through says", start=start)
    assert line is not None and f"/{service}:" in line and why in line, line


def tunnelled(
    z, server: Server, start: tuple[int, int], port: int, service: str, why: str, client=CLIENT4
) -> str:
    logged(z, start[0], service, why, "tunnelled")
    seen = server.seen(port, start[1])
    assert seen is not None, f"nothing reached the server's port {port}"
    assert seen.startswith(f"{port} {client} ")  # the client's own address
    return seen


def refused(lab: Lab, z, start: int, service: str, why: str, opened_before: int) -> None:
    logged(z, start, service, why, "refused")
    assert passive_opens(lab) == opened_before  # zfw never connected


@pytest.mark.parametrize(
    ("port", "service", "why"),
    [
        (80, "http_tunnel", "not HTTP: an SSH banner 'SSH-2.0-OpenSSH_"),
        (443, "tls_tunnel", "not TLS: the first bytes are 'SSH-2.0-OpenSSH_"),
        (4443, "inspect_tunnel", "not TLS: the first bytes are 'SSH-2.0-OpenSSH_"),
    ],
)
def test_ssh_is_tunnelled_where_the_service_says(passthrough_lab, port, service, why):
    lab, z, server = passthrough_lab
    start, count = (len(z.lines), server.mark()), counters(lab, service).get("passed_through", 0)
    proc = ssh(lab, port)
    assert "remote software version LabServer" in proc.stderr, proc.stderr
    seen = tunnelled(z, server, start, port, service, why)
    assert "b'SSH-2.0-OpenSSH_" in seen
    assert counters(lab, service)["passed_through"] == count + 1


@pytest.mark.parametrize(
    ("port", "service", "why"),
    [
        (8080, "http_refuse", "not HTTP: an SSH banner 'SSH-2.0-OpenSSH_"),
        (8443, "tls_refuse", "not TLS: the first bytes are 'SSH-2.0-OpenSSH_"),
        (9443, "inspect_refuse", "not TLS: the first bytes are 'SSH-2.0-OpenSSH_"),
    ],
)
def test_ssh_is_refused_by_default(passthrough_lab, port, service, why):
    lab, z, _server = passthrough_lab
    start, before = len(z.lines), passive_opens(lab)
    count = counters(lab, service).get("refused_not_protocol", 0)
    proc = ssh(lab, port)
    assert proc.returncode != 0 and "LabServer" not in proc.stderr
    refused(lab, z, start, service, why, before)
    assert counters(lab, service)["refused_not_protocol"] == count + 1


def test_a_tls_hello_to_an_http_port_is_tunnelled_where_the_service_says(passthrough_lab):
    lab, z, server = passthrough_lab
    start = (len(z.lines), server.mark())
    s_client(lab, f"{SERVER4}:80", "www.example.com")
    seen = tunnelled(
        z, server, start, 80, "http_tunnel", "not HTTP: a TLS handshake record (0x16 0x03)"
    )
    assert "b'\\x16\\x03" in seen  # the ClientHello, unchanged


def test_a_tls_hello_to_an_http_port_is_refused_by_default(passthrough_lab):
    lab, z, _server = passthrough_lab
    start, before = len(z.lines), passive_opens(lab)
    s_client(lab, f"{SERVER4}:8080", "www.example.com")
    refused(lab, z, start, "http_refuse", "not HTTP: a TLS handshake record (0x16 0x03)", before)


def test_over_ipv6_too(passthrough_lab):
    lab, z, server = passthrough_lab
    start = (len(z.lines), server.mark())
    proc = ssh(lab, 80, SERVER6)
    assert "remote software version LabServer" in proc.stderr, proc.stderr
    why = "not HTTP: an SSH banner 'SSH-2.0-OpenSSH_"
    tunnelled(z, server, start, 80, "http_tunnel", why, CLIENT6)
