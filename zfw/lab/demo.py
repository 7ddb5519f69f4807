"""The demo: the lab, zfw running the example policy, real traffic, what happened.

``contrib/demo`` runs this as root; it tears the lab down whatever happens.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import tempfile
import time

from zfw.lab import (
    CLIENT4,
    CLIENT4_OTHER,
    CLIENT6,
    FW_CLIENT4,
    SERVER4,
    SERVER6,
    Lab,
    LabError,
    ZfwProcess,
)
from zfw.lab.servers import s_client, self_signed_cert, start_nginx

POLICY = os.path.join(os.path.dirname(__file__), "..", "gallery", "policies", "three_zones.py")

CLIENT = """
import socket, sys
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    s = socket.create_connection((host, port), timeout=2, source_address=(source, 0))
    s.sendall(b"hello through zfw\\n")
    s.shutdown(socket.SHUT_WR)  # done sending: read the answer and the echo to the end
    data = b""
    while piece := s.recv(200):
        data += piece
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


HTTP_LOG = """    log_format demo '$remote_addr "$request" $status via="$http_via"';
    access_log {dir}/access.log demo;"""

SMUGGLE = """
import socket
s = socket.create_connection(("198.51.100.2", 80), timeout=5)
s.sendall(b"POST / HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 4\\r\\n"
          b"Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nGET /admin HTTP/1.1\\r\\n\\r\\n")
print(s.recv(100).split(b"\\r\\n")[0].decode())
"""


def start_web_server(lab: Lab) -> tuple[subprocess.Popen[str], str]:
    """nginx on port 80 of the server, logging the peer address it sees."""
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/www")
    with open(f"{d}/www/index.html", "w") as f:
        f.write("hello from the web server\n")
    conf = f"        listen 80;\n        listen [::]:80;\n        root {d}/www;"
    proc = start_nginx(lab, d, conf, HTTP_LOG.format(dir=d), 64)
    time.sleep(0.3)
    return proc, d


def start_ftp_server(lab: Lab) -> tuple[subprocess.Popen[str], str]:
    """pyftpdlib on port 21 of the server, logging the peer of every data connection."""
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/root")
    with open(f"{d}/root/readme.txt", "w") as f:
        f.write("hello from the FTP server\n")
    proc = lab.popen(
        "server",
        [sys.executable, "-m", "zfw.lab.ftpserver", "--root", f"{d}/root", "--log", f"{d}/ftp.log"],
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc, d


def curl(lab: Lab, *args: str) -> str:
    """curl from the client: the body (an error page's explanation) and status, or the error."""
    proc = lab.run(
        "client", ["curl", "-sS", "--max-time", "5", "-w", "\n[HTTP %{http_code}]", *args],
        check=False,
    )  # fmt: skip
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    status = lines.pop() if lines else ""
    info = re.search(r"<p>(.*?)</p>", proc.stdout)  # zfw's error page says why
    body = html.unescape(info.group(1)) if info else (lines[0] if lines else "")
    return f"{body} {status}".strip() or proc.stderr.strip()


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
    web = None
    web_dir = ""
    ftp = None
    ftp_dir = ""
    try:
        say("== packet filter: zfw rules apply policies/three_zones.py (in the firewall namespace)")
        lab.apply_rules(os.path.abspath(POLICY))
        server = lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "whoami", "22"])
        assert server.stdout is not None
        server.stdout.readline()
        tls_server = start_tls_server(lab)
        web, web_dir = start_web_server(lab)
        ftp, ftp_dir = start_ftp_server(lab)
        say("== zfw: twistd -n zfw --policy policies/three_zones.py --instance intra")
        zfw = lab.start_zfw(os.path.abspath(POLICY), "intra", "--log-spec", "core.*:4")
        say("== traffic from the client namespace")
        for host, port, source, what in (
            (SERVER4, 22, CLIENT4, "SSH port from the admin zone (IPv4), relayed by PlugProxy"),
            (SERVER6, 22, CLIENT6, "the same over IPv6"),
            (SERVER4, 22, CLIENT4_OTHER, "SSH port from the intranet"),
            (SERVER4, 25, CLIENT4, "SMTP: no service for it, the packet filter drops it"),
        ):
            out = lab.run("client", ["python3", "-c", CLIENT, host, str(port), source]).stdout
            say(f"  {source} -> {host}:{port}  {what}\n      client got: {out.strip()}")
        for args, what in (
            ([f"http://{SERVER4}/"], "HTTP GET through HttpProxy"),
            ([f"http://[{SERVER6}]/"], "the same over IPv6"),
            (["-X", "DELETE", f"http://{SERVER4}/"], "HTTP DELETE: the policy rejects it"),
            (
                ["-x", f"http://{FW_CLIENT4}:3128", f"http://{SERVER4}/"],
                "through the configured proxy (non-transparent HttpProxy)",
            ),
            (
                ["-x", f"http://{FW_CLIENT4}:3128", "http://203.0.113.5/"],
                "the same to a DMZ server: its zone does not admit the service",
            ),
        ):
            say(f"  curl {' '.join(args)}  {what}\n      client got: {curl(lab, *args)}")
        out = lab.run("client", ["python3", "-c", SMUGGLE], check=False).stdout.strip()
        say(f"  request smuggling attempt (Content-Length and Transfer-Encoding)\n"
            f"      client got: {out or '(closed)'}")  # fmt: skip
        for args, what in (
            ([], "FTP, client passive (EPSV): zfw listens on the server's address"),
            (["--ftp-port", "-"], "FTP, client active (EPRT): zfw connects from the server"),
        ):
            proc = lab.run(
                "client",
                ["curl", "-sS", "--max-time", "5", *args, f"ftp://{SERVER4}/readme.txt"],
                check=False,
            )
            got = proc.stdout.strip() or proc.stderr.strip()
            say(f"  curl {' '.join([*args, f'ftp://{SERVER4}/readme.txt'])}\n"
                f"      {what}\n      client got: {got}")  # fmt: skip
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
        if web is not None:
            web.kill()
            web.wait()
            show_file(
                "the web server's log (peer address, request, status, Via header)",
                f"{web_dir}/access.log",
            )
        if ftp is not None:
            ftp.kill()
            ftp.wait()
            say("== the FTP server's log (control and data connections from the client):")
            try:
                with open(f"{ftp_dir}/ftp.log") as f:
                    for line in f:
                        if "data connection" in line or "RETR" in line:
                            say(f"  {line.rstrip()}")
            except OSError:
                pass
        if server is not None:
            server.kill()
            out = server.stdout.read() if server.stdout else ""
            say("== the server saw these peers (the clients' own addresses):")
            for line in out.splitlines():
                say(f"  {line}")
        if zfw is not None:
            show_zfw_log(zfw)
        lab.down()
        say("== lab torn down")
    return 0


def show_file(what: str, path: str) -> None:
    """Say ``what`` and the lines of ``path`` (nothing when it was never written)."""
    say(f"== {what}:")
    try:
        with open(path) as f:
            for line in f:
                say(f"  {line.rstrip()}")
    except OSError:
        pass


def show_zfw_log(zfw: ZfwProcess) -> None:
    """Say what zfw logged about its sessions."""
    say("== zfw's log:")
    for line in zfw.lines:
        if " zfw/" in line:
            say("  " + line.split(": ", 1)[1])


if __name__ == "__main__":
    sys.exit(main())
