"""The blind TLS tunnel with real programs: nginx over TLS, curl and openssl s_client."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.e2e.helpers import big_file, passive_opens, zfw_in_front
from zfw.lab import CLIENT4, CLIENT6, SERVER4, SERVER6, Lab
from zfw.lab.servers import s_client, self_signed_cert, start_nginx, tls_server_lines

HERE = os.path.dirname(__file__)
TLS_POLICY = os.path.join(HERE, "policies", "tls.py")
SIZE = 100 * 2**20

ACCESS_LOG = """    log_format peer '$remote_addr $ssl_server_name $request $status $body_bytes_sent';
    access_log {dir}/access.log peer;"""


@pytest.fixture(scope="module")
def tls_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("nginx-tls")
    (d / "www").mkdir()
    self_signed_cert(str(d), "allowed.example", ["*.allowed.example", "denied.example"])
    digest = big_file(d / "www" / "big.bin", SIZE, hashlib.sha256(b"zfw tls").digest() * 32768)
    nginx = start_nginx(
        lab, str(d), tls_server_lines(str(d), f"{d}/www"), ACCESS_LOG.format(dir=d), 256
    )
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, TLS_POLICY, "tls", "tls.*:4") as z:
        yield lab, z, d, digest


def curl(lab: Lab, name: str, path: str = "/", server: str = SERVER4, *extra: str):
    host = f"[{server}]" if ":" in server else server
    return lab.run(
        "client",
        [
            "curl",
            "-sk",
            "--max-time",
            "60",
            "--resolve",
            f"{name}:443:{host}",
            *extra,
            f"https://{name}{path}",
        ],
        check=False,
        timeout=120,
    )


def test_allowed_name_transfers_100_mb_intact(tls_lab):
    lab, z, d, digest = tls_lab
    proc = lab.run(
        "client",
        [
            "sh",
            "-c",
            "curl -sk --max-time 100 --resolve "
            f"allowed.example:443:{SERVER4} https://allowed.example/big.bin"
            " | sha256sum",
        ],
        timeout=150,
    )
    assert proc.stdout.split()[0] == digest
    line = z.wait_for("tls.info(3): (tls/tls:")
    assert "accept:" in line and "sni=allowed.example" in line and "alpn=h2,http/1.1" in line
    assert (
        f"{CLIENT4} allowed.example GET /big.bin HTTP/1.1 200 {SIZE}"
        in (d / "access.log").read_text()
    )


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_openssl_s_client_handshakes_through_the_tunnel(tls_lab, version):
    lab, _z, _d, _ = tls_lab
    out = s_client(lab, f"{SERVER4}:443", "www.allowed.example", "-tls" + version.replace(".", "_"))
    assert "CONNECTION ESTABLISHED" in out and f"Protocol version: TLSv{version}" in out


def test_ipv6_and_the_server_sees_the_client_address(tls_lab):
    lab, _z, d, _ = tls_lab
    proc = curl(lab, "allowed.example", "/", SERVER6, "-o", "/dev/null", "-w", "%{http_code}")
    assert proc.stdout == "403"  # nginx answered (no index file): the tunnel worked
    assert f"{CLIENT6} allowed.example GET / HTTP/1.1 403" in (d / "access.log").read_text()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("denied.example", "denied.example is not in the allowed names"),
        ("bad.allowed.example", "bad.allowed.example is denied"),
    ],
)
def test_denied_name_is_closed_before_reaching_the_server(tls_lab, name, reason):
    lab, z, _d, _ = tls_lab
    before = passive_opens(lab)
    mark = len(z.lines)
    proc = curl(lab, name)
    assert proc.returncode != 0
    line = z.wait_for(f"sni={name}", start=mark)
    assert "reject: " + reason in line
    assert passive_opens(lab) == before  # not a single connection reached the server


def test_no_sni_is_denied_by_default(tls_lab):
    lab, z, _d, _ = tls_lab
    before = passive_opens(lab)
    mark = len(z.lines)
    out = s_client(lab, f"{SERVER4}:443", None)
    assert "CONNECTION ESTABLISHED" not in out
    assert "reject: no server name (SNI)" in z.wait_for("tls.info", start=mark)
    assert passive_opens(lab) == before


def test_not_tls_is_a_violation(tls_lab):
    lab, z, _d, _ = tls_lab
    mark = len(z.lines)
    code = (
        f"import socket; s = socket.create_connection(('{SERVER4}', 443), timeout=5); "
        "s.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n'); print(s.recv(10))"
    )
    lab.run("client", ["python3", "-c", code], check=False)
    line = z.wait_for("tls.violation", start=mark)
    assert "not TLS: the first bytes are 'GET / HTTP/1.1'; refused as pass_through says" in line
