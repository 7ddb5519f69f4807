"""The gallery in the lab: each policy of policies/, written out by ``zfw example``,
under the packet filter compiled from it, with real programs, does what its comment
promises: which services pass and which are refused, from which zone.

The lab's hosts fall into the gallery's zones as they are: the client's 192.0.2.2
and 2001:db8:1::2 are in the intranet (and in the admin zone where there is one),
192.0.2.130 in the second zone of the client side (internet, guests), the server's
198.51.100.2 and 2001:db8:2::2 on the internet, or in the DMZ and the mail zone. The
default policy, three_zones, is the demo's (tests/e2e/test_demo.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.helpers import curl, start_ftp_servers, stop_all
from tests.e2e.pki import server_certificate
from tests.gallery import DMZ_SITE, write_example
from zfw.lab import (
    CLIENT4,
    CLIENT4_OTHER,
    CLIENT6,
    FW_CLIENT4,
    SERVER4,
    SERVER6,
    Lab,
    ZfwProcess,
)
from zfw.lab.servers import start_nginx
from zfw.tls.certs import CertificateAuthority, create_ca

LOG_SPEC = "core.*:3,http.*:4,tls.*:4,ftp.*:4,pop3.*:4,plug.*:3"
HELLO = "hello from the gallery\n"
#: The names the server's certificate (from a CA of its own) carries: one inspected,
#: one on web_gateway's bypass list, one on its reject list.
NAMES = ["www.example.com", "online.bank.example", "ads.tracker.example"]

NGINX_HTTP = """
    log_format gallery '$remote_addr $host "$request" $status via="$http_via" '
                       'proto="$http_x_forwarded_proto"';
    access_log {d}/access.log gallery;
    server {{
        listen 443 ssl; listen [::]:443 ssl;
        server_name {names};
        ssl_certificate {d}/origin.pem; ssl_certificate_key {d}/origin.key;
        root {d}/www;
    }}
"""

REACH = """
import socket, sys
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
try:
    s = socket.create_connection((host, port), 3, (source, 0) if source else None)
    print(s.recv(100).decode().splitlines()[0])
except TimeoutError:
    print("dropped")
except OSError as e:
    print(f"refused: {e}")
"""

UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 443))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2000)
    s.sendto(data, peer)
"""

QUIC = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], 443))
s.send(b"a QUIC initial, as far as a firewall can tell")
try:
    print("answered" if s.recv(100) else "empty")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("dropped")
"""


def reach(lab: Lab, host: str, port: int, source: str = "", node: str = "client") -> str:
    """A TCP connection from ``node``: the whoami server's first line, or what stopped it."""
    return lab.run(node, [sys.executable, "-c", REACH, host, str(port), source]).stdout.strip()


def whoami(lab: Lab, servers: dict, host: str, client: str) -> bool:
    """Reached the shared whoami server (port 22) from ``client``, and the server saw that
    address; its line is read here, or the next test to ask would read this one."""
    got = reach(lab, host, 22)
    seen = servers["whoami"].stdout.readline()
    return got.startswith(f"you are {client} port ") and seen.startswith(f"peer {client} ")


def start(lab: Lab, node: str, script: list[str]) -> subprocess.Popen[str]:
    """A server in ``node`` that says ``ready`` once listening."""
    proc = lab.popen(node, script)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def access(d: Path) -> list[str]:
    """nginx's access log so far."""
    return (d / "access.log").read_text().splitlines()


@pytest.fixture(scope="module")
def web(lab: Lab, tmp_path_factory) -> Iterator[Path]:
    """nginx in the server: HTTP on 80, HTTPS on 443 with a certificate of an origin CA
    (``DIR/origin-ca/ca.pem``) for NAMES; its log says who asked for what."""
    d = tmp_path_factory.mktemp("gallery-web")
    os.chmod(d, 0o755)
    (d / "www").mkdir()
    (d / "www" / "hello.txt").write_text(HELLO)
    ca = CertificateAuthority.load(*create_ca(str(d / "origin-ca"), "gallery origin CA"))
    server_certificate(str(d), "origin", NAMES, ca)
    nginx = start_nginx(
        lab,
        str(d),
        f"listen 80; listen [::]:80; root {d}/www;",
        NGINX_HTTP.format(d=d, names=" ".join(NAMES)),
    )
    while not (d / "nginx.pid").exists() and nginx.poll() is None:
        time.sleep(0.05)  # nginx listens before it writes its pid
    try:
        yield d
    finally:
        stop_all([nginx])


@contextmanager
def running(
    lab: Lab,
    name: str,
    d: Path,
    instances: tuple[str, ...],
    env: dict[str, str] | None = None,
    backend: str = "iptables",
) -> Iterator[dict[str, ZfwProcess]]:
    """Gallery policy ``name`` written to ``d`` by ``zfw example``, its packet filter
    applied in the firewall and its ``instances`` running; all removed after."""
    policy = str(write_example(name, d))
    lab.tproxy({}, divert="none")
    running: dict[str, ZfwProcess] = {}
    try:
        lab.apply_rules(policy, backend=backend)
        for inst in instances:
            cmd = lab.zfw_command(policy, inst, "--log-spec", LOG_SPEC)
            running[inst] = ZfwProcess(lab.popen("fw", cmd, env={**os.environ, **(env or {})}), 20)
        yield running
    finally:
        for z in running.values():
            z.stop()
        lab.tproxy({}, divert="none")


def https(lab: Lab, name: str, cacert: Path, *extra: str, path: str = "/hello.txt", server=SERVER4):
    """curl of ``https://name/...`` at ``server``, trusting ``cacert`` only (through a
    proxy: CONNECT to the address, the lab has no DNS)."""
    host = f"[{server}]" if ":" in server else server
    return curl(
        lab,
        "--connect-timeout",
        "5",
        "--cacert",
        str(cacert),
        "--connect-to",
        f"{name}:443:{host}:443",
        *extra,
        f"https://{name}{path}",
        timeout=30,
    )


@pytest.mark.parametrize("backend", ["iptables", "nft"])
def test_minimal_web_out_of_the_intranet_and_nothing_else(lab, web, servers, tmp_path, backend):
    with running(lab, "minimal", tmp_path, ("intra",), backend=backend) as z:
        for client, url in ((CLIENT4, SERVER4), (CLIENT6, f"[{SERVER6}]")):
            got = curl(lab, "-g", f"http://{url}/hello.txt")
            assert got.stdout == HELLO, got.stderr
            # HttpProxy on 50080 passed it on with the client's own address.
            assert access(web)[-1].startswith(f'{client} {url} "GET /hello.txt HTTP/1.1" 200')
        assert z["intra"].wait_for("/hello.txt -> 200")
        # No other port: the server's SSH and HTTPS are not reached.
        assert reach(lab, SERVER4, 22) == "dropped"
        refused = https(lab, "www.example.com", web / "origin-ca" / "ca.pem")
        assert refused.returncode != 0 and refused.stdout == ""


def test_web_gateway_inspects_bypasses_rejects_and_blocks_quic(lab, web, servers, tmp_path):
    udp = start(lab, "server", [sys.executable, "-c", UDP_ECHO])
    origin = web / "origin-ca" / "ca.pem"
    mine = tmp_path / "ca" / "ca.pem"  # made by tests.gallery as the policy's comment says
    try:
        env = {"SSL_CERT_FILE": str(origin)}  # "the system's trust store" of the lab
        with running(lab, "web_gateway", tmp_path, ("gateway",), env) as zs:
            z = zs["gateway"]
            # Port 80, transparently, with the LAN's HTTP policy.
            got = curl(lab, f"http://{SERVER4}/hello.txt")
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].startswith(f"{CLIENT4} {SERVER4} ")
            assert access(web)[-1].endswith('via="1.1 zfw" proto="-"')
            refused = curl(lab, "-X", "DELETE", f"http://{SERVER4}/hello.txt")
            assert "Deleting is not permitted from here." in refused.stdout
            # HTTPS: inspected with a leaf of the gateway's CA, the same policy inside.
            got = https(lab, "www.example.com", mine)
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].startswith(f'{CLIENT4} www.example.com "GET /hello.txt')
            assert access(web)[-1].endswith('via="1.1 zfw" proto="-"')
            assert z.wait_for("https://www.example.com/hello.txt -> 200")
            got = https(lab, "www.example.com", mine, server=SERVER6)  # and over IPv6
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].startswith(f'{CLIENT6} www.example.com "GET /hello.txt')
            refused = https(lab, "www.example.com", mine, "-X", "DELETE")
            assert "Deleting is not permitted from here." in refused.stdout
            # The bypass list: the server's own certificate, never decrypted.
            assert https(lab, "online.bank.example", mine).returncode != 0
            got = https(lab, "online.bank.example", origin)
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].endswith('via="-" proto="-"')  # untouched by HttpProxy
            assert z.wait_for("tunnel: online.bank.example is on the bypass list")
            # The reject list: closed before anything reaches the server.
            for ca in (mine, origin):
                assert https(lab, "ads.tracker.example", ca).returncode != 0
            assert not [line for line in access(web) if "ads.tracker.example" in line]
            assert z.wait_for("reject: ads.tracker.example is on the reject list")
            # The explicit proxy on 3128: the same policy, CONNECT inspected alike.
            proxy = ["-x", f"http://{FW_CLIENT4}:3128"]
            got = curl(lab, *proxy, f"http://{SERVER4}/hello.txt")
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].endswith('via="1.1 zfw" proto="-"')
            got = https(lab, "www.example.com", mine, *proxy)
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].endswith('via="1.1 zfw" proto="-"')
            # QUIC: the server answers UDP 443, but nothing forwards it: refused at once.
            assert lab.run("fw", [sys.executable, "-c", QUIC, SERVER4]).stdout == "answered\n"
            assert lab.run("client", [sys.executable, "-c", QUIC, SERVER4]).stdout == "refused\n"
            # Nothing but the web leaves the LAN.
            assert reach(lab, SERVER4, 22) == "dropped"
    finally:
        stop_all([udp])


def test_dmz_offloads_https_serves_ftp_read_only_and_ssh_to_admins(lab, web, servers, tmp_path):
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "readme.txt").write_text("hello from the FTP server\n")
    ftp = start_ftp_servers(lab, root, [21])
    site = tmp_path / "tls" / "www.pem"  # self-signed by tests.gallery, the site's own
    try:
        with running(lab, "dmz", tmp_path, ("dmz",)) as zs:
            z = zs["dmz"]
            # HTTPS from the internet (192.0.2.130): TLS ends in zfw, nginx gets plain
            # HTTP on port 80, with the client's own address.
            internet = ["--interface", CLIENT4_OTHER]
            got = https(lab, DMZ_SITE, site, *internet)
            assert got.stdout == HELLO, got.stderr
            assert access(web)[-1].startswith(f'{CLIENT4_OTHER} {DMZ_SITE} "GET /hello.txt')
            assert access(web)[-1].endswith('proto="https"')
            refused = https(lab, DMZ_SITE, site, *internet, "-d", "x=1")
            assert "This site takes no forms." in refused.stdout
            # Plain HTTP is not offered.
            got = curl(lab, *internet, "--connect-timeout", "3", f"http://{SERVER4}/hello.txt")
            assert got.returncode != 0 and got.stdout == ""
            # FTP: anonymous downloads; no upload, no named user.
            out = tmp_path / "got.txt"
            script = (
                f"set net:socket-bind-ipv4 {CLIENT4_OTHER}; set net:max-retries 1; "
                f"set net:timeout 20; get readme.txt -o {out}; put {out} -o up.txt; bye"
            )
            proc = lab.run("client", ["lftp", "-e", script, SERVER4], check=False, timeout=120)
            assert out.read_text() == "hello from the FTP server\n", proc.stderr
            assert "550" in proc.stderr and not (root / "up.txt").exists()
            assert z.wait_for("STOR: rejected by policy (550)")
            proc = lab.run(
                "client",
                ["lftp", "-u", "zfw,secret", "-e", "set net:max-retries 1; ls; bye", SERVER4],
                check=False,
                timeout=120,
            )
            assert proc.returncode != 0 and "530" in proc.stderr
            # SSH: from the admin zone (192.0.2.2, 2001:db8:1::2) only.
            assert whoami(lab, servers, SERVER4, CLIENT4)
            assert whoami(lab, servers, SERVER6, CLIENT6)
            assert reach(lab, SERVER4, 22, CLIENT4_OTHER) == "dropped"
            # The admin zone may do what the internet may, too (its admin_parent).
            assert https(lab, DMZ_SITE, site).stdout == HELLO
            assert access(web)[-1].startswith(f"{CLIENT4} {DMZ_SITE} ")
    finally:
        stop_all(ftp)


def test_mail_pop3_from_the_intranet_smtp_in_and_out(lab, tmp_path):
    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    (mailbox / "1").write_bytes(b"Subject: hello\r\n\r\nthrough the gallery\r\n")
    log = tmp_path / "pop3.log"
    log.touch()
    os.chmod(tmp_path, 0o755)
    servers = [
        start(
            lab,
            "server",
            [sys.executable, "-m", "zfw.lab.pop3server", "--mail", str(mailbox), "--log", str(log)],
        ),
        start(lab, "server", [sys.executable, "-m", "zfw.lab.tools", "whoami", "25"]),
        start(lab, "client", [sys.executable, "-m", "zfw.lab.tools", "whoami", "25"]),
    ]
    try:
        with running(lab, "mail", tmp_path, ("mail",)) as zs:
            z = zs["mail"]
            pop3 = ["--connect-timeout", "3", "-u"]
            # POP3 from the intranet (192.0.2.2).
            got = curl(lab, *pop3, "zfw:secret", f"pop3://{SERVER4}/1")
            assert "through the gallery" in got.stdout, got.stderr
            assert f"{CLIENT4} command RETR 1" in log.read_text()
            got = curl(lab, *pop3, "zfw:secret", "-g", f"pop3://[{SERVER6}]/1")
            assert "through the gallery" in got.stdout, got.stderr
            assert f"{CLIENT6} command RETR 1" in log.read_text()
            # ... but not to a role mailbox.
            got = curl(lab, *pop3, "postmaster:secret", f"pop3://{SERVER4}/1")
            assert got.returncode != 0
            assert z.wait_for("USER: rejected by policy")
            assert "USER postmaster" not in log.read_text()
            # No POP3 from the internet (192.0.2.130).
            got = curl(
                lab, "--interface", CLIENT4_OTHER, *pop3, "zfw:secret", f"pop3://{SERVER4}/1"
            )
            assert got.returncode != 0 and CLIENT4_OTHER not in log.read_text()
            # SMTP into the mail zone, from the intranet and the internet.
            assert reach(lab, SERVER4, 25).startswith(f"you are {CLIENT4} port ")
            assert reach(lab, SERVER4, 25, CLIENT4_OTHER).startswith(f"you are {CLIENT4_OTHER} ")
            # SMTP out of the mail zone, to the internet only (not into the intranet).
            got = reach(lab, CLIENT4_OTHER, 25, node="server")
            assert got.startswith(f"you are {SERVER4} port ")
            assert reach(lab, CLIENT4, 25, node="server") == "dropped"
            assert z.wait_for("plug.info(3)")
            # Nothing else: the server's HTTP is out of reach.
            assert reach(lab, SERVER4, 80) == "dropped"
    finally:
        stop_all(servers)


def test_two_instances_share_one_packet_filter(lab, web, servers, tmp_path):
    with running(lab, "two_instances", tmp_path, ("office", "guests")) as zs:
        office, guests = zs["office"], zs["guests"]
        guest = ["--interface", CLIENT4_OTHER, "--connect-timeout", "3"]
        # Each zone's web traffic goes to its own instance.
        assert curl(lab, f"http://{SERVER4}/hello.txt?office").stdout == HELLO
        assert curl(lab, *guest, f"http://{SERVER4}/hello.txt?guest").stdout == HELLO
        assert office.wait_for("/hello.txt?office -> 200")
        assert guests.wait_for("/hello.txt?guest -> 200")
        assert not office.grep("?guest") and not guests.grep("?office")
        # Each with its own policy: guests send no forms (the office's POST reaches nginx,
        # which refuses POST to a file on its own).
        got = curl(lab, *guest, "-d", "x=1", f"http://{SERVER4}/hello.txt")
        assert "Guests may not send forms." in got.stdout
        got = curl(lab, "-d", "x=1", f"http://{SERVER4}/hello.txt")
        assert "Guests may not send forms." not in got.stdout
        assert '"POST /hello.txt HTTP/1.1" 405' in access(web)[-1]
        # TLS (tunnelled: the server's own certificate) and SSH for the office only.
        origin = web / "origin-ca" / "ca.pem"
        assert https(lab, "www.example.com", origin).stdout == HELLO
        assert office.wait_for("tls.info")
        refused = https(lab, "www.example.com", origin, "--interface", CLIENT4_OTHER)
        assert refused.returncode != 0 and refused.stdout == ""
        assert whoami(lab, servers, SERVER4, CLIENT4)
        assert reach(lab, SERVER4, 22, CLIENT4_OTHER) == "dropped"
        # One instance stopped: the other serves on.
        guests.stop()
        assert curl(lab, *guest, "--max-time", "5", f"http://{SERVER4}/hello.txt").stdout == ""
        assert curl(lab, f"http://{SERVER4}/hello.txt").stdout == HELLO
