"""Bridged mode in the lab (zfw.lab.bridge): client and server in one subnet, the
firewall a bridge between them, the rules compiled from tests/e2e/policies/bridge.py
and loaded by the nft backend; real programs (curl, lftp, ping, nginx, pyftpdlib)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import big_file, start_ftp_servers, stop_all
from tests.e2e.pki import make_pki, server_certificate
from tests.e2e.test_rules import UDP_ECHO, UDP_PROBE
from zfw.lab import LabError, ZfwProcess
from zfw.lab.bridge import CLIENT4, CLIENT6, SERVER4, SERVER6, BridgeLab
from zfw.lab.servers import start_nginx
from zfw.tls.certs import CertificateAuthority

HERE = os.path.dirname(__file__)
POLICY = os.path.join(HERE, "policies", "bridge.py")
ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
SIZE = 4 * 2**20
NGINX = """
    log_format peer '$remote_addr "$http_user_agent" $request $status';
    access_log {d}/access.log peer;
    server {{
        listen 443 ssl; listen [::]:443 ssl; listen 8443 ssl; listen [::]:8443 ssl;
        ssl_certificate {d}/site.pem; ssl_certificate_key {d}/site.key;
        root {d}/www;
    }}
"""
TCP_PROBE = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(b"hi\\n")
    print(s.recv(100).decode().strip() or "closed")
except OSError as e:
    print(type(e).__name__)
"""


class Bridged:
    """The module's lab and what runs in it."""

    def __init__(self, lab: BridgeLab, d: Path, digest: str):
        self.lab, self.d, self.digest = lab, d, digest
        self.zfw: ZfwProcess | None = None

    def rules(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [ZFW, "rules", *args, "--netns", self.lab.ns["fw"]],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def nft(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.run("fw", ["nft", *args], check=check)

    def start(self) -> None:
        self.zfw = self.lab.start_zfw(POLICY, "main", "--log-spec", "core.*:3,ftp.*:4")

    def stop(self) -> None:
        if self.zfw is not None:
            self.zfw.stop()
            self.zfw = None

    def curl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.lab.run(
            "client", ["curl", "-sS", "--max-time", "30", *args], check=False, timeout=60
        )

    def tcp(self, server: str, port: int) -> str:
        return self.lab.run(
            "client", ["python3", "-c", TCP_PROBE, server, str(port)]
        ).stdout.strip()

    def udp(self, server: str, port: int) -> str:
        return self.lab.run(
            "client", ["python3", "-c", UDP_PROBE, server, str(port)]
        ).stdout.strip()

    def peers(self) -> list[str]:
        return (self.d / "access.log").read_text().splitlines()


@pytest.fixture(scope="module")
def bridged(tmp_path_factory) -> Iterator[Bridged]:
    lab = BridgeLab(f"zfwb{os.getpid()}")
    try:
        lab.up()
    except LabError as e:
        if os.environ.get("CI"):
            pytest.fail(f"the bridged lab cannot be made under CI: {e}", pytrace=False)
        pytest.skip(f"lab unavailable: {e}")
    procs: list[subprocess.Popen[str]] = []
    b = None
    try:
        d = tmp_path_factory.mktemp("bridge")
        os.chmod(d, 0o755)
        make_pki(str(d))
        origin = CertificateAuthority.load(
            str(d / "origin" / "ca.pem"), str(d / "origin" / "ca.key")
        )
        server_certificate(str(d), "site", ["allowed.example", "www.example.com"], origin)
        made = subprocess.run(
            [ZFW, "ca", "create", str(d / "zfw"), "--name", "zfw CA"],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        (d / "www").mkdir()
        (d / "www" / "hello.txt").write_text("hello across the bridge\n")
        root = d / "ftp"
        root.mkdir()
        digest = big_file(root / "big.bin", SIZE, hashlib.sha256(b"bridge").digest() * 4096)
        plain = f"listen 80; listen [::]:80; root {d}/www;"
        procs.append(start_nginx(lab, str(d), plain, NGINX.format(d=d)))
        procs += start_ftp_servers(lab, root, [21])
        for args in (["echo", "7"], ["whoami", "22"]):
            p = lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", *args])
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for addr in (SERVER4, SERVER6):
            p = lab.popen("server", [sys.executable, "-c", UDP_ECHO, addr, "7", "9"])
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        os.environ["ZFW_PKI"] = str(d)
        b = Bridged(lab, d, digest)
        time.sleep(0.5)
        b.rules("apply", POLICY, "--backend", "nft")
        b.start()
        yield b
    finally:
        if b is not None:
            b.stop()
        os.environ.pop("ZFW_PKI", None)
        stop_all(procs)
        lab.down()


@pytest.mark.parametrize("server", [SERVER4, SERVER6])
def test_http_through_the_bridge_keeps_both_addresses(bridged, server):
    host = f"[{server}]" if ":" in server else server
    proc = bridged.curl("-g", "-w", "%{remote_ip}", f"http://{host}/hello.txt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"hello across the bridge\n{server}"  # the client saw the server
    client = CLIENT6 if ":" in server else CLIENT4
    assert bridged.peers()[-1].startswith(f"{client} ")  # and the server the client
    assert bridged.zfw is not None and bridged.zfw.grep("web")


@pytest.mark.parametrize("server", [SERVER4, SERVER6])
def test_https_tunnelled_by_name_and_inspected(bridged, server):
    ca = bridged.d / "origin" / "ca.pem"
    tunnel = bridged.curl(
        "--cacert", str(ca), "--resolve", f"allowed.example:443:{server}",
        "https://allowed.example/hello.txt",
    )  # fmt: skip
    assert tunnel.returncode == 0 and tunnel.stdout == "hello across the bridge\n", tunnel.stderr
    inspected = bridged.curl(
        "--cacert", str(bridged.d / "zfw" / "ca.pem"), "--resolve",
        f"www.example.com:8443:{server}", "https://www.example.com:8443/hello.txt",
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    client = CLIENT6 if ":" in server else CLIENT4
    assert bridged.peers()[-1].startswith(f'{client} "zfw-inspected"')
    # the origin's own certificate is not what the client saw when inspected
    refused = bridged.curl(
        "--cacert", str(ca), "--resolve", f"www.example.com:8443:{server}",
        "https://www.example.com:8443/hello.txt",
    )  # fmt: skip
    assert refused.returncode != 0


@pytest.mark.parametrize("server", [SERVER4, SERVER6])
@pytest.mark.parametrize("passive", ["on", "off"])
def test_ftp_passive_and_active(bridged, server, passive):
    out = bridged.d / f"got-{passive}.bin"
    script = (
        f"set ftp:passive-mode {passive}; set net:max-retries 1; set net:timeout 20; "
        f"get big.bin -o {out}; bye"
    )
    host = f"[{server}]" if ":" in server else server
    proc = bridged.lab.run(
        "client", ["lftp", "-u", "zfw,secret", "-e", script, host], check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == bridged.digest
    out.unlink()
    client = CLIENT6 if ":" in server else CLIENT4
    log = (bridged.d / "ftp21.log").read_text().splitlines()
    assert f"data connection from {client}:" in [ln for ln in log if "data connection" in ln][-1]


def test_ping_and_neighbour_discovery(bridged):
    lab = bridged.lab
    for server in (SERVER4, SERVER6):
        lab.run("client", ["ping", "-c", "1", "-W", "5", server])
    server_mac = lab.run("server", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    neigh = lab.run("client", ["ip", "neigh"]).stdout
    for server in (SERVER4, SERVER6):
        assert any(ln.startswith(f"{server} ") and server_mac in ln for ln in neigh.splitlines()), (
            neigh
        )


def test_what_no_service_takes_is_dropped_unless_named(bridged):
    for server in (SERVER4, SERVER6):
        assert bridged.tcp(server, 22) == "TimeoutError"  # no service, not named: dropped
        assert bridged.tcp(server, 7) == "hi"  # bridge_traffic "tcp/7"
        assert bridged.udp(server, 7) == "echo"  # "udp/7"
        assert bridged.udp(server, 9) == "silent"


def test_other_tables_and_a_second_bridge_are_left_alone(bridged, tmp_path):
    lab = bridged.lab
    lab.run("fw", ["ip", "link", "add", "br1", "type", "bridge"])
    other = "table bridge other {\n\tchain forward {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tip saddr 203.0.113.9 drop\n\t}\n}\n"
    lab.run("fw", ["nft", "-f", "-"], input=other)
    try:
        before = bridged.nft("list", "table", "bridge", "other").stdout
        bridged.rules("apply", POLICY, "--backend", "nft")
        changed = tmp_path / "changed.py"
        changed.write_text(Path(POLICY).read_text().replace('"tcp/7", ', ""))
        proc = bridged.rules("try", str(changed), "--backend", "nft", "--timeout", "1", check=False)
        assert proc.returncode == 3 and "restored" in proc.stderr
        zfw_bridge = bridged.nft("list", "table", "bridge", "zfw").stdout
        assert "dport 7 accept" in zfw_bridge  # the bridge part was rolled back too
        assert bridged.nft("list", "table", "bridge", "other").stdout == before
        assert "br1" in lab.run("fw", ["ip", "-br", "link"]).stdout
        assert bridged.rules("diff", POLICY, "--backend", "nft", check=False).returncode == 0
        shown = bridged.rules("show", POLICY, "--backend", "nft").stdout
        assert "table bridge zfw" in shown
        refused = bridged.rules("show", POLICY, "--backend", "iptables", check=False)
        assert refused.returncode != 0 and "needs the nft backend" in refused.stderr
    finally:
        lab.run("fw", ["nft", "delete", "table", "bridge", "other"], check=False)
        lab.run("fw", ["ip", "link", "del", "br1"], check=False)


def test_with_zfw_stopped_nothing_diverted_reaches_the_server(bridged):
    opens_before = _passive_opens(bridged)
    bridged.stop()
    try:
        for server in (SERVER4, SERVER6):
            host = f"[{server}]" if ":" in server else server
            assert bridged.curl("-g", "--max-time", "3", f"http://{host}/hello.txt").returncode != 0
        assert _passive_opens(bridged) == opens_before
    finally:
        bridged.start()
    assert bridged.curl(f"http://{SERVER4}/hello.txt").returncode == 0


def test_flush_removes_the_bridge_part(bridged):
    bridged.rules("flush", "--backend", "nft")
    try:
        assert bridged.nft("list", "table", "bridge", "zfw", check=False).returncode != 0
    finally:
        bridged.rules("apply", POLICY, "--backend", "nft")


def _passive_opens(bridged: Bridged) -> int:
    lines = bridged.lab.run("server", ["cat", "/proc/net/snmp"]).stdout.splitlines()
    tcp = [ln.split() for ln in lines if ln.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("PassiveOpens")])


def test_a_policy_that_does_not_load_leaves_the_bridge_part_in_force(bridged, tmp_path):
    before = bridged.nft("list", "table", "bridge", "zfw").stdout
    broken = tmp_path / "broken.py"
    broken.write_text("from zfw.policy import *\nInetZone(\n")
    state = ["--state-dir", str(tmp_path / "state")]  # no last good ruleset recorded there
    proc = bridged.rules("apply", str(broken), "--backend", "nft", *state, check=False)
    assert proc.returncode != 0 and "kept zfw's rules" in proc.stderr, proc.stderr
    assert bridged.nft("list", "table", "bridge", "zfw").stdout == before
    assert bridged.tcp(SERVER4, 22) == "TimeoutError"


def test_start_refuses_a_bridge_unlike_the_policys_in_one_line(bridged, tmp_path):
    other = tmp_path / "other_mac.py"
    other.write_text(Path(POLICY).read_text().replace("02:00:00:00:00:01", "02:00:00:00:00:02"))
    cmd = bridged.lab.zfw_command(str(other), "main")
    cmd[cmd.index("--control-socket") + 1] = str(tmp_path / "ctl.sock")
    proc = bridged.lab.run("fw", cmd, check=False, timeout=60)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0
    assert out.splitlines()[-1] == (
        "zfw: bridge br0: its MAC address is 02:00:00:00:00:01, the policy says "
        "02:00:00:00:00:02 (ip link set br0 address 02:00:00:00:00:02)"
    ), out
    assert "Traceback" not in out
