"""TLS inspection with real programs: nginx with certificates from a test CA made now,
curl and openssl s_client trusting zfw's CA (made with ``zfw ca create``), HttpProxy's
policy applied on the decrypted stream."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import big_file, zfw_in_front
from tests.e2e.pki import hostile_chains, make_pki
from zfw.lab import CLIENT4, CLIENT6, FW_CLIENT4, SERVER4, SERVER6, Lab
from zfw.lab.servers import s_client, start_nginx

SIZE = 100 * 2**20
#: A response of a few records (and of many under Max Fragment Length).
MID = "".join(f"line {i:04}\n" for i in range(500))
NAMES_GOOD = "www.example.com bank.example.com blocked.example.com"
#: openssl s_server's ports (through the untrusted-CA service, and through the strict one).
S_SERVER_PORTS = (9443, 9444)

POLICY = """
from zfw.policy import *

PKI = {pki!r}
InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class Inside(HttpProxy):
    def config(self):
        self.request_header["User-Agent"] = (HTTP_HDR_REPLACE, "zfw-inspected")


VERIFY = ServerCertificateVerifier(ca_file=PKI + "/origin/ca.pem")
TRUSTED = (PKI + "/zfw/ca.pem", PKI + "/zfw/ca.key")
UNTRUSTED = (PKI + "/untrusted/ca.pem", PKI + "/untrusted/ca.key")
INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=TRUSTED, untrusted_ca=UNTRUSTED),
    server_verify=VERIFY,
    bypass=["bank.example.com"],
    reject=["blocked.example.com"],
)
STRICT = TwoSidedEncryption(DynamicCertificate(trusted_ca=TRUSTED), server_verify=VERIFY)
OFFLOAD = ClientOnlyEncryption(StaticCertificate(PKI + "/dmz.pem", PKI + "/dmz.key"))


class Forward(HttpProxyNonTransparent):
    def config(self):
        self.connect_encryption = INSPECT  # CONNECT tunnels inspected, Forward inside


def inspect():
    Service("https", Inside, encryption=INSPECT)
    Service("strict", Inside, encryption=STRICT)
    Service(
        "offload",
        Inside,
        router=DirectedRouter(SockAddrInet("198.51.100.2", 80), forge_addr=True),
        encryption=OFFLOAD,
    )
    Service("forward", Forward, router=InbandRouter())
    Listener(SockAddrInet("", 50443), "https", intercept=443)
    Listener(SockAddrInet("", 50843), "strict", intercept=8443)
    Listener(SockAddrInet("", 50943), "https", intercept=9443)  # openssl s_server
    Listener(SockAddrInet("", 50944), "strict", intercept=9444)
    Listener(SockAddrInet("", 50444), "offload", intercept=4443)
    Listener(SockAddrInet("192.0.2.1", 3128), "forward", transparent=False)
"""

NGINX = """
    log_format peer '$remote_addr $ssl_server_name "$http_user_agent" $request $status';
    access_log {d}/access.log peer;
{servers}
    server {{ listen 80; listen [::]:80; root {d}/www; }}
"""
SERVER = """    server {{
        listen 443 ssl; listen [::]:443 ssl; listen 8443 ssl; listen [::]:8443 ssl;
        server_name {names};
        ssl_certificate {d}/{cert}.pem; ssl_certificate_key {d}/{cert}.key;
        root {d}/www;{extra}
    }}
"""


def _zfw(*args: str) -> subprocess.CompletedProcess[str]:
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    return subprocess.run([zfw, *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def inspect_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    os.chmod(d, 0o755)
    make_pki(str(d))
    hostile = hostile_chains(str(d))
    for ca in ("zfw", "untrusted"):
        made = _zfw("ca", "create", str(d / ca), "--name", f"zfw {ca} CA")
        assert made.returncode == 0, made.stderr
    (d / "www").mkdir()
    (d / "www" / "hello.txt").write_text("hello inside TLS\n")
    (d / "www" / "mid.txt").write_text(MID)
    digest = big_file(d / "www" / "big.bin", SIZE, hashlib.sha256(b"inspect").digest() * 32768)
    servers = "".join(
        SERVER.format(d=d, names=names, cert=cert, extra=extra)
        for names, cert, extra in (
            (NAMES_GOOD, "good", ""),
            ("selfsigned.example.com", "selfsigned", ""),
            ("expired.example.com", "expired", ""),
            ("wrong.example.com", "wrongname", ""),
            (
                "clientcert.example.com",
                "good",
                f"\n        ssl_verify_client on; ssl_client_certificate {d}/origin/ca.pem;",
            ),
            *((name, cert, "") for cert, name in hostile.items()),
        )
    )
    policy = d / "policy.py"
    policy.write_text(POLICY.format(pki=str(d)))
    nginx = start_nginx(lab, str(d), "listen 127.0.0.1:81;", NGINX.format(d=d, servers=servers))
    # nginx does not serve a certificate with two subjectAltName extensions: s_server does.
    s_server = ["openssl", "s_server", "-quiet", "-www", "-cert", str(d / "twosans.pem")]
    s_server += ["-key", str(d / "twosans.key")]
    s_servers = [
        lab.popen(
            "server",
            [*s_server, "-accept", str(port)],
            stdin=subprocess.PIPE,  # (s_server ends at the end of its input)
            stdout=subprocess.DEVNULL,
        )
        for port in S_SERVER_PORTS
    ]
    time.sleep(0.5)
    servers = [nginx, *s_servers]
    with zfw_in_front(lab, servers, str(policy), "inspect", "tls.*:4,http.*:4,core.*:3") as z:
        yield lab, z, d, digest


def curl(
    lab: Lab, d, name: str, *extra: str, server: str = SERVER4, port: int = 443, ca: str = "zfw"
):
    """curl trusting one CA only (zfw's; ``"origin"``: the servers' own), for
    ``https://name:port/hello.txt`` (or the URL path given last in ``extra`` as ``/...``)."""
    host = f"[{server}]" if ":" in server else server
    path = extra[-1] if extra and extra[-1].startswith("/") else "/hello.txt"
    extra = extra[:-1] if extra and extra[-1].startswith("/") else extra
    return lab.run(
        "client",
        [
            "curl",
            "-sS",
            "--max-time",
            "60",
            "--cacert",
            str(d / ca / "ca.pem"),
            "--resolve",
            f"{name}:{port}:{host}",
            *extra,
            f"https://{name}:{port}{path}",
        ],
        check=False,
        timeout=120,
    )


def issuer(lab: Lab, d, name: str, port: int = 443) -> str:
    """The issuer of the certificate the client is shown for ``name``."""
    proc = lab.run(
        "client",
        ["openssl", "s_client", "-connect", f"{SERVER4}:{port}", "-servername", name],
        input="",
        check=False,
        timeout=30,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("issuer="):
            return line
    return proc.stdout + proc.stderr


def access_log(d) -> list[str]:
    return (d / "access.log").read_text().splitlines()


@pytest.mark.parametrize(("client", "server"), [(CLIENT4, SERVER4), (CLIENT6, SERVER6)])
def test_inspected_download_is_intact_and_the_policy_applies_inside(inspect_lab, client, server):
    lab, z, d, digest = inspect_lab
    proc = lab.run(
        "client",
        [
            "sh",
            "-c",
            f"curl -sS --max-time 120 --cacert {d}/zfw/ca.pem "
            f"--resolve www.example.com:443:{f'[{server}]' if ':' in server else server} "
            "https://www.example.com/big.bin | sha256sum",
        ],
        check=False,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == digest
    line = [ln for ln in access_log(d) if "/big.bin" in ln][-1]
    # The server sees the client's own address, and the header HttpProxy rewrote.
    assert line.startswith(f'{client} www.example.com "zfw-inspected" GET /big.bin')
    assert z.wait_for("https://www.example.com/big.bin -> 200")


def test_the_pyopenssl_self_check_is_logged(inspect_lab):
    """CI runs this file again with ZFW_OPENSSL_INTERNALS=public: the fallback is taken."""
    _lab, z, _d, _ = inspect_lab
    public = os.environ.get("ZFW_OPENSSL_INTERNALS") == "public"
    assert z.grep("pyOpenSSL's public API only" if public else "TLS data path is fast")


def test_the_client_sees_a_leaf_of_zfws_trusted_ca_naming_the_server(inspect_lab):
    lab, z, d, _ = inspect_lab
    assert "zfw zfw CA" in issuer(lab, d, "www.example.com")
    proc = curl(lab, d, "www.example.com")
    assert proc.returncode == 0 and proc.stdout == "hello inside TLS\n", proc.stderr
    found = z.wait_for("tls.info")
    assert found is not None
    inspect = [ln for ln in z.grep("tls.info") if "inspect" in ln and "www.example.com" in ln]
    assert inspect and "verify=verified" in inspect[-1] and "leaf=trusted CA" in inspect[-1]


def test_httpproxy_refuses_delete_inside_tls_with_its_error_page(inspect_lab):
    lab, _z, d, _ = inspect_lab
    before = len(access_log(d))
    proc = curl(lab, d, "www.example.com", "-X", "DELETE", "-i")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.1 405 ")
    assert "zfw" in proc.stdout  # zfw's error page, inside TLS
    assert not any("DELETE" in ln for ln in access_log(d)[before:])


def test_a_host_the_server_certificate_does_not_name_gets_421(inspect_lab):
    lab, z, d, _ = inspect_lab
    before = len(access_log(d))
    # Domain fronting: a TLS session for one name, a request for another.
    proc = curl(lab, d, "www.example.com", "-i", "-H", "Host: elsewhere.example.net")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.1 421 ")
    assert "elsewhere.example.net is not named by the server" in proc.stdout
    assert not any("elsewhere" in ln for ln in access_log(d)[before:])
    assert z.wait_for("request rejected: The host elsewhere.example.net is not named")
    # A name the certificate covers may be asked for in the same session.
    proc = curl(lab, d, "www.example.com", "-H", "Host: bank.example.com:443")
    assert proc.returncode == 0 and proc.stdout == "hello inside TLS\n", proc.stderr


def counters(lab: Lab) -> dict[str, dict]:
    """The services' counters, from ``zfw status --json``."""
    socket = lab.control_socket("inspect")
    proc = _zfw("status", "--json", "--socket", socket)
    services = json.loads(proc.stdout)[socket]["services"]
    return {s: services[s]["proxy"] for s in ("https", "strict") if s in services}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("selfsigned.example.com", "self-signed certificate CN=selfsigned.example.com"),
        ("expired.example.com", "verify=expired on "),
        ("wrong.example.com", "name wrong.example.com not in the certificate's names"),
        # Hostile and broken chains (issue #41).
        ("twosans.example.com", "cannot be used: two subjectAltName extensions"),
        ("badip.example.com", "IP address (subjectAltName) that is neither 4 nor 16 bytes"),
        ("encipher.example.com", "key usage lacks digitalSignature"),
        ("clientauth.example.com", "extended key usage clientAuth does not allow serverAuth"),
        ("oldchain.example.com", "intermediate CA CN=old intermediate CA expired on "),
    ],
)
def test_a_bad_server_certificate_gets_an_untrusted_leaf_or_a_refusal(inspect_lab, name, reason):
    """One line with the reason in words, a counter, never a trusted leaf nor a
    traceback: the untrusted leaf (naming the server) or, without an untrusted CA, a
    refusal."""
    lab, z, d, _ = inspect_lab
    port, strict_port = S_SERVER_PORTS if name.startswith("twosans") else (443, 8443)
    before = counters(lab)
    start = len(z.lines)
    proc = curl(lab, d, name, port=port)
    assert proc.returncode == 60, proc.stderr  # curl: the certificate does not verify
    line = z.wait_for(f"sni={name}", start=start)
    assert line is not None and reason in line and "leaf=untrusted CA" in line, line
    strict = curl(lab, d, name, port=strict_port)
    assert strict.returncode != 0 and "zfw" not in strict.stdout
    line = z.wait_for(f"; refused; sni={name}", start=start)  # (no untrusted CA: no session)
    assert line is not None and reason in line, line
    # Last: s_client's session holds its server connection until zfw's idle timeout
    # (s_server serves one connection at a time).
    got = issuer(lab, d, name, port)
    assert "zfw untrusted CA" in got, got  # never a trusted leaf
    after = counters(lab)
    assert after["https"]["tls_untrusted_leaf"] - before["https"].get("tls_untrusted_leaf", 0) == 2
    refused = after["strict"]["tls_rejected_server"]
    assert refused - before.get("strict", {}).get("tls_rejected_server", 0) == 1
    assert not [ln for ln in z.lines[start:] if "Traceback" in ln or "Unhandled" in ln]


def test_a_trailing_dot_name_verifies_and_passes_the_host_check(inspect_lab):
    lab, z, d, _ = inspect_lab
    start = len(z.lines)
    proc = curl(lab, d, "www.example.com.", "-i", "/hello.txt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.1 200 "), proc.stdout
    assert proc.stdout.endswith("hello inside TLS\n")
    line = z.wait_for("sni=www.example.com", start=start)
    assert line is not None and "verify=verified" in line and "leaf=trusted CA" in line, line


def test_a_bypassed_name_is_tunnelled_blindly(inspect_lab):
    lab, z, d, _ = inspect_lab
    assert "origin CA" in issuer(lab, d, "bank.example.com")  # the origin's own certificate
    proc = curl(lab, d, "bank.example.com", ca="origin")
    assert proc.returncode == 0 and proc.stdout == "hello inside TLS\n", proc.stderr
    assert z.wait_for("tunnel: bank.example.com is on the bypass list")


def test_a_rejected_name_is_closed_before_the_server(inspect_lab):
    lab, z, d, _ = inspect_lab
    proc = curl(lab, d, "blocked.example.com")
    assert proc.returncode == 35, proc.stderr  # the handshake never completes
    line = z.wait_for("reject: blocked.example.com is on the reject list")
    assert line is not None and "server_cert=-" in line  # nothing was asked of the server


def test_a_client_offering_only_h2_is_refused_and_one_offering_both_gets_http11(inspect_lab):
    lab, z, d, _ = inspect_lab
    address = f"{SERVER4}:443"
    both = lab.run(
        "client",
        ["openssl", "s_client", "-connect", address, "-servername", "www.example.com",
         "-alpn", "h2,http/1.1", "-CAfile", str(d / "zfw" / "ca.pem")],
        input="",
        check=False,
    ).stdout  # fmt: skip
    assert "ALPN protocol: http/1.1" in both and "Verify return code: 0 (ok)" in both, both
    only = s_client(lab, address, "www.example.com", "-alpn", "h2")
    assert "CONNECTION ESTABLISHED" not in only
    line = z.wait_for("reject: the client offers h2 (ALPN), not http/1.1")
    assert line is not None and "server_cert=-" in line  # nothing was asked of the server


def test_non_transparent_connect_is_inspected(inspect_lab):
    lab, _z, d, _ = inspect_lab
    # CONNECT to the address (the lab has no DNS), with the name in the ClientHello.
    via = ("-x", f"http://{FW_CLIENT4}:3128", "--connect-to", f"www.example.com:443:{SERVER4}:443")
    proc = curl(lab, d, "www.example.com", *via)
    assert proc.returncode == 0 and proc.stdout == "hello inside TLS\n", proc.stderr
    proc = curl(lab, d, "www.example.com", *via, "-X", "DELETE", "-i")
    assert proc.stdout.startswith("HTTP/1.1 200 Connection established")
    assert "\nHTTP/1.1 405 " in proc.stdout and "session inspect/forward:" in proc.stdout


def test_client_only_offload_in_front_of_a_plain_server(inspect_lab):
    lab, _z, d, _ = inspect_lab
    proc = curl(lab, d, "dmz.example.com", port=4443, ca="origin")
    assert proc.returncode == 0 and proc.stdout == "hello inside TLS\n", proc.stderr
    assert any(ln.startswith(f"{CLIENT4} - ") and "/hello.txt" in ln for ln in access_log(d))


def test_a_client_asking_for_small_records_gets_every_byte(inspect_lab):
    """Max Fragment Length (RFC 6066): records of 512 bytes, so that one response of
    a few KB from the server takes many records toward the client."""
    lab, _z, _d, _ = inspect_lab
    request = "GET /mid.txt HTTP/1.1\r\nHost: dmz.example.com\r\nConnection: close\r\n\r\n"
    proc = lab.run(
        "client",
        ["openssl", "s_client", "-connect", f"{SERVER4}:4443", "-servername",
         "dmz.example.com", "-maxfraglen", "512", "-ign_eof", "-trace"],
        input=request,
        check=False,
        timeout=30,
    )  # fmt: skip
    # Asked in the ClientHello and granted in EncryptedExtensions (-trace shows both).
    assert proc.stdout.count("max_fragment_length := 2^9 (512 bytes)") == 2, proc.stdout
    assert "HTTP/1.1 200 OK" in proc.stdout and MID in proc.stdout


#: Drives ``openssl s_client`` (argv) through a key update, then one request: each step
#: once s_client has said it is ready for it (it takes a command only at the start of
#: what it reads).
KEY_UPDATE = """
import subprocess, sys
request = sys.stdin.read()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
out = []
def until(text):
    for line in p.stdout:
        out.append(line)
        if text in line:
            return
until("Verify return code")  # the handshake is done
p.stdin.write("K\\n"); p.stdin.flush()
until("KEYUPDATE")
p.stdin.write(request); p.stdin.flush()
until("line 0499")  # the last line of the response
p.stdin.close()
out.append(p.stdout.read())
p.wait(timeout=10)
print("".join(out))
"""


def test_a_key_update_in_the_middle_of_a_session_is_followed(inspect_lab):
    """TLS 1.3 KeyUpdate, one asking for zfw's in return (s_client's ``K``), before a
    request: zfw reads on with the new key and answers with its own new key."""
    lab, _z, _d, _ = inspect_lab
    s_client = ["openssl", "s_client", "-connect", f"{SERVER4}:4443", "-servername",
                "dmz.example.com", "-crlf", "-msg"]  # fmt: skip
    proc = lab.run(
        "client",
        [sys.executable, "-c", KEY_UPDATE, *s_client],
        input="GET /mid.txt HTTP/1.1\nHost: dmz.example.com\nConnection: close\n\n",
        check=False,
        timeout=30,
    )
    assert ">>> TLS 1.3, Handshake [length 0005], KeyUpdate" in proc.stdout, proc.stdout
    assert "<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in proc.stdout, proc.stdout
    assert "HTTP/1.1 200 OK" in proc.stdout and MID in proc.stdout


def test_hostile_clients_and_a_client_certificate_request_close_cleanly(inspect_lab):
    lab, z, d, _ = inspect_lab
    script = (
        "import socket, sys\n"
        "sys.path.insert(0, {here!r})\n"
        "from tests.tls.test_clienthello import hello, sni_ext\n"
        "for garbage in (b'\\x16\\x03\\x01\\x00\\x05junk!', None):\n"
        f"    s = socket.create_connection(({SERVER4!r}, 443), timeout=10)\n"
        "    s.sendall(hello(sni_ext(b'www.example.com')) if garbage is None else garbage)\n"
        "    if garbage is None:\n"
        "        s.recv(1)\n"
        "        s.close()  # aborts in the middle of the handshake\n"
        "    else:\n"
        "        try:\n"
        "            print(repr(s.recv(100)))\n"
        "        except ConnectionResetError:\n"
        "            print('reset')\n"
    ).format(here=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    proc = lab.run("client", [sys.executable, "-c", script], check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert z.wait_for("tls.violation")
    # A server that asks for a client certificate gets none through zfw: nginx answers
    # 400 (another server might close), and the log says why.
    cert = curl(lab, d, "clientcert.example.com")
    assert "No required SSL certificate was sent" in cert.stdout or cert.returncode != 0
    line = z.wait_for("sni=clientcert.example.com")
    assert line is not None and "client_cert=requested by the server; zfw sends none" in line
    after = curl(lab, d, "www.example.com")  # other sessions are not affected
    assert after.returncode == 0 and after.stdout == "hello inside TLS\n"
