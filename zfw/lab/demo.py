"""The demo: the lab, zfw running the example policy, real traffic, what happened.

``contrib/demo`` runs this as root; it tears the lab down whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from zfw.lab import CLIENT4, CLIENT4_OTHER, CLIENT6, SERVER4, SERVER6, Lab, LabError
from zfw.lab.servers import s_client, self_signed_cert

POLICY = os.path.join(os.path.dirname(__file__), "..", "..", "policies", "example.py")

CLIENT = """
import socket, sys
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    s = socket.create_connection((host, port), timeout=2, source_address=(source, 0))
    s.sendall(b"hello through zfw\\n")
    data = s.recv(200)
    print(data.decode().splitlines()[0] if data else "(connection closed by zfw)")
except TimeoutError:
    print("no answer: dropped")
except OSError as e:
    print(f"refused: {e.strerror or e}")
"""


def start_tls_server(lab: Lab) -> subprocess.Popen[str]:
    """openssl s_server on port 443 of the server, with a certificate made now."""
    d = tempfile.mkdtemp()
    self_signed_cert(d, "www.example.org")
    proc = lab.popen(
        "server",
        [
            "openssl",
            "s_server",
            "-quiet",
            "-accept",
            "443",
            "-cert",
            f"{d}/cert.pem",
            "-key",
            f"{d}/key.pem",
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return proc


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    lab = Lab("zfwdemo")
    say(
        "== lab: client 192.0.2.2 (+ .130, 2001:db8:1::2) | fw | server 198.51.100.2 "
        "(2001:db8:2::2)"
    )
    try:
        lab.up()
    except LabError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    zfw = None
    server = None
    tls_server = None
    try:
        say("== packet filter: zfw rules apply policies/example.py (in the firewall namespace)")
        lab.apply_rules(os.path.abspath(POLICY))
        server = lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "whoami", "22"])
        assert server.stdout is not None
        server.stdout.readline()
        tls_server = start_tls_server(lab)
        say("== zfw: twistd -n zfw --policy policies/example.py --instance intra")
        zfw = lab.start_zfw(os.path.abspath(POLICY), "intra", "--log-spec", "core.*:4")
        say("== traffic from the client namespace")
        for host, port, source, what in (
            (SERVER4, 22, CLIENT4, "SSH port from the admin zone (IPv4), relayed by PlugProxy"),
            (SERVER6, 22, CLIENT6, "the same over IPv6"),
            (SERVER4, 22, CLIENT4_OTHER, "SSH port from the intranet"),
            (SERVER4, 80, CLIENT4, "HTTP (HttpProxy is not in this version yet: refused)"),
            (SERVER4, 25, CLIENT4, "SMTP: no service for it, the packet filter drops it"),
        ):
            out = lab.run("client", ["python3", "-c", CLIENT, host, str(port), source]).stdout
            say(f"  {source} -> {host}:{port}  {what}\n      client got: {out.strip()}")
        for name, what in (
            ("www.example.org", "TLS with a server name: tunnelled blindly"),
            ("ads.tracker.example", "TLS to a denied name: closed before reaching the server"),
        ):
            out = s_client(lab, f"{SERVER4}:443", name)
            got = (
                "handshake completed"
                if "CONNECTION ESTABLISHED" in out
                else ("no handshake: connection closed")
            )
            say(f"  {CLIENT4} -> {SERVER4}:443 (SNI {name})  {what}\n      client got: {got}")
        time.sleep(0.3)
    finally:
        if zfw is not None:
            zfw.stop()
        if tls_server is not None:
            tls_server.kill()
        if server is not None:
            server.kill()
            out = server.stdout.read() if server.stdout else ""
            say("== the server saw these peers (the clients' own addresses):")
            for line in out.splitlines():
                say(f"  {line}")
        if zfw is not None:
            say("== zfw's log:")
            for line in zfw.lines:
                if " zfw/" in line:
                    say("  " + line.split(": ", 1)[1])
        lab.down()
        say("== lab torn down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
