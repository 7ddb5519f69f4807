"""The compiled packet filter applied for real, inside namespaces only."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import PLUG_POLICY
from zfw.lab import CLIENT4, CLIENT4_OTHER, SERVER4, Lab
from zfw.rules import state

ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
EXAMPLE = os.path.abspath("policies/three_zones.py")


@pytest.fixture
def netns(lab: Lab):
    """A bare namespace of its own (the lab fixture proves we may make them)."""
    name = f"{lab.name}-rules"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name])
        with contextlib.suppress(FileNotFoundError):  # its last good ruleset goes with it
            os.unlink(state.path(state.state_dir(None), name))


def ns(name, *args, check=True, **kw):
    return subprocess.run(
        ["ip", "netns", "exec", name, *args], capture_output=True, text=True, check=check, **kw
    )


def zfw(*args, check=True, **kw):
    return subprocess.run([ZFW, *args], capture_output=True, text=True, check=check, **kw)


def saved(name: str) -> str:
    text = "".join(
        ns(name, save, "-t", table).stdout
        for save in ("iptables-legacy-save", "ip6tables-legacy-save")
        for table in ("mangle", "filter")
    )
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))


def test_apply_keeps_other_tools_rules_and_is_idempotent(netns):
    ns(netns, "iptables-legacy", "-N", "OTHER")
    ns(netns, "iptables-legacy", "-A", "INPUT", "-s", "203.0.113.9", "-j", "OTHER")
    zfw("rules", "apply", EXAMPLE, "--netns", netns, "--backend", "iptables")
    text = ns(netns, "iptables-legacy-save", "-t", "filter").stdout
    assert ":OTHER - " in text and "-A INPUT -s 203.0.113.9/32 -j OTHER" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("-A INPUT")]
    assert lines[0] == "-A INPUT -j ZFWIN"  # ours first
    assert "lookup 100" in ns(netns, "ip", "rule").stdout
    assert "local default dev lo" in ns(netns, "ip", "-6", "route", "show", "table", "100").stdout
    zfw(
        "rules", "apply", EXAMPLE, "--netns", netns, "--backend", "iptables"
    )  # again: nothing doubles
    assert zfw("rules", "diff", EXAMPLE, "--netns", netns, "--backend", "iptables").returncode == 0
    assert ns(netns, "ip", "rule").stdout.count("lookup 100") == 1
    zfw("rules", "flush", EXAMPLE, "--netns", netns, "--backend", "iptables")
    text = ns(netns, "iptables-legacy-save", "-t", "filter").stdout
    assert "ZFW" not in text and "LO" not in text and "-A INPUT -s 203.0.113.9/32 -j OTHER" in text
    assert "lookup 100" not in ns(netns, "ip", "rule").stdout
    assert (
        zfw(
            "rules", "diff", EXAMPLE, "--netns", netns, "--backend", "iptables", check=False
        ).returncode
        == 1
    )


def test_try_without_confirmation_restores_rules_and_routing(netns):
    ns(netns, "iptables-legacy", "-A", "FORWARD", "-s", "203.0.113.9", "-j", "ACCEPT")
    before = saved(netns)
    proc = zfw(
        "rules",
        "try",
        EXAMPLE,
        "--netns",
        netns,
        "--backend",
        "iptables",
        "--timeout",
        "1",
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3, proc.stderr
    assert "restored" in proc.stderr
    assert saved(netns) == before
    assert not os.path.exists(state.path(state.state_dir(None), netns))  # nothing good to keep
    assert "lookup 100" not in ns(netns, "ip", "rule").stdout


def test_try_confirmed_keeps_the_rules(netns):
    proc = subprocess.Popen(
        [
            ZFW,
            "rules",
            "try",
            EXAMPLE,
            "--netns",
            netns,
            "--backend",
            "iptables",
            "--timeout",
            "20",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "confirm within" in proc.stdout.readline()
    zfw("rules", "confirm", "--netns", netns)
    assert proc.wait(10) == 0
    assert os.path.exists(state.path(state.state_dir(None), netns))  # the last good ruleset
    assert zfw("rules", "diff", EXAMPLE, "--netns", netns, "--backend", "iptables").returncode == 0


REACH = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2,
                                 source_address=(sys.argv[3], 0))
    s.sendall(b"hi\\n")
    print(s.recv(100).decode().splitlines()[0] if True else "")
except OSError as e:
    print("blocked", type(e).__name__)
"""


def reach(lab: Lab, port: int, source: str = CLIENT4) -> str:
    return lab.run("client", ["python3", "-c", REACH, SERVER4, str(port), source]).stdout.strip()


UDP_ECHO = """
import socket, sys
socks = []
for port in map(int, sys.argv[2:]):
    s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], port))
    socks.append(s)
print("ready", flush=True)
import select
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
"""
UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
s.connect((sys.argv[1], int(sys.argv[2])))
try:
    s.send(b"quic?")
    print("echo" if s.recv(100) == b"quic?" else "other")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("silent")
"""


def udp_echo(lab: Lab, server: str, *ports: int) -> subprocess.Popen[str]:
    """A UDP echo server in the server namespace (a refusal then came from the firewall)."""
    proc = lab.popen("server", [sys.executable, "-c", UDP_ECHO, server, *map(str, ports)])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def udp(lab: Lab, server: str, port: int) -> str:
    """One datagram from the client: "echo", "refused" (ICMP port unreachable) or "silent"."""
    return lab.run("client", ["python3", "-c", UDP_PROBE, server, str(port)]).stdout.strip()


def test_compiled_rules_in_the_lab(lab, servers):
    lab.tproxy({}, divert="none")  # start from plain routing
    extra = lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "echo", "25"])
    echo = udp_echo(lab, SERVER4, 443, 4433)
    try:
        assert extra.stdout.readline().strip() == "ready"
        assert reach(lab, 25) == "hi"  # plain routing forwards anything
        assert udp(lab, SERVER4, 443) == "echo"
        lab.apply_rules(PLUG_POLICY)
        z = lab.start_zfw(PLUG_POLICY, "lab")
        try:
            assert reach(lab, 22).startswith(f"you are {CLIENT4} ")
            assert reach(lab, 25).startswith("blocked")  # not intercepted: FORWARD drops
            assert reach(lab, 22, CLIENT4_OTHER).startswith("blocked")  # guest zone: no rule
            # QUIC is refused at once (browsers fall back to TCP); other UDP is dropped.
            assert udp(lab, SERVER4, 443) == "refused"
            assert udp(lab, SERVER4, 4433) == "silent"
        finally:
            z.stop()
        time.sleep(0.2)
        # zfw is down: fail closed, nothing is forwarded.
        assert reach(lab, 22).startswith("blocked")
        assert reach(lab, 25).startswith("blocked")
    finally:
        extra.kill()
        echo.kill()
        lab.tproxy({}, divert="none")


FOREIGN_LISTENER = """
import socket, sys
from zfw import net
s = socket.socket()
net.set_transparent(s)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(5)
print("ready", flush=True)
c, peer = s.accept()
c.sendall(f"firewall socket on a foreign address; you are {peer[0]}\\n".encode())
c.close()
"""


def test_foreign_address_listener_reached_through_the_socket_match(lab, servers):
    """FTP data channels: a listener bound to the server's address in the firewall.

    No TPROXY rule names its port; only the final ``-m socket`` rule for SYNs
    delivers the client's connection to it.
    """
    lab.apply_rules(PLUG_POLICY)
    try:
        listener = lab.popen("fw", [sys.executable, "-c", FOREIGN_LISTENER, SERVER4, "40000"])
        assert listener.stdout.readline().strip() == "ready"
        got = reach(lab, 40000)
        assert got == f"firewall socket on a foreign address; you are {CLIENT4}"
        listener.wait(5)
    finally:
        lab.tproxy({}, divert="none")


def test_zfw_applies_its_rules_at_start_and_on_sighup(lab, servers, tmp_path):
    import shutil
    import signal

    lab.tproxy({}, divert="none")
    policy = tmp_path / "p.py"
    shutil.copy(PLUG_POLICY, policy)
    z = lab.start_zfw(str(policy), "lab", "--apply-rules")
    try:
        assert z.wait_for("packet filter applied")
        assert reach(lab, 22).startswith(f"you are {CLIENT4} ")
        assert reach(lab, 8).startswith("blocked")
        policy.write_text(
            policy.read_text().replace(
                'Listener(SockAddrInet("", 50013), "quick", intercept=13)',
                'Listener(SockAddrInet("", 50013), "quick", intercept=13)\n'
                '    Service("echo8", PlugProxy, router=DirectedRouter(SockAddrInet("198.51.100.2", 7)))\n'
                '    Listener(SockAddrInet("", 50008), "echo8", intercept=8)',
            )
        )
        mark = len(z.lines)
        z.signal(signal.SIGHUP)
        assert z.wait_for("packet filter applied", start=mark)
        assert z.wait_for("listening on 0.0.0.0:50008", start=mark)
        assert reach(lab, 8) == "hi"
        # A reload whose new listener cannot open leaves the packet filter as it was.
        taker = lab.popen("fw", [sys.executable, "-c", TAKE_PORT, "50010"])
        try:
            assert taker.stdout is not None and taker.stdout.readline().strip() == "ready"
            policy.write_text(
                policy.read_text()
                + '    Listener(SockAddrInet("", 50010), "echo8", intercept=10)\n'
            )
            mark = len(z.lines)
            z.signal(signal.SIGHUP)
            assert z.wait_for("reload refused, keeping the running policy", start=mark)
            assert not [ln for ln in z.lines[mark:] if "packet filter applied" in ln]
            for dump in (["nft", "list", "ruleset"], ["iptables-save"]):
                assert "50010" not in lab.run("fw", dump, check=False).stdout
            assert reach(lab, 8) == "hi"
        finally:
            taker.kill()
            taker.wait()
    finally:
        z.stop()
        lab.tproxy({}, divert="none")


TAKE_PORT = """
import socket, sys, time
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(600)
"""
