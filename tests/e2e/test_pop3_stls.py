"""POP3 STLS inspected: curl --ssl-reqd through zfw to the lab's POP3 server with TLS,
zfw answering STLS under the service's TwoSidedEncryption and applying the command
table inside TLS."""

from __future__ import annotations

import os
import sys

import pytest

from tests.e2e.helpers import zfw_in_front
from tests.e2e.pki import make_pki
from zfw.lab import CLIENT4, SERVER4, Lab
from zfw.tls.certs import create_ca

MAIL = b"Subject: hello\r\n\r\nthrough zfw, inside TLS\r\n"

POLICY = """
from zfw.policy import *

PKI = {pki!r}
InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class ReadMail(Pop3Proxy):
    def config(self):
        self.request["DELE"] = (POP3_REQ_REJECT, "Deleting mail is not permitted here.")


INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=(PKI + "/zfw/ca.pem", PKI + "/zfw/ca.key")),
    server_verify=ServerCertificateVerifier(ca_file=PKI + "/origin/ca.pem"),
)


def pop3():
    Service("pop3s", ReadMail, encryption=INSPECT)
    Listener(SockAddrInet("", 50110), "pop3s")
"""


@pytest.fixture(scope="module")
def stls_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("stls")
    os.chmod(d, 0o755)
    make_pki(str(d))
    create_ca(str(d / "zfw"), "zfw test CA")
    (d / "mail").mkdir()
    (d / "mail" / "1").write_bytes(MAIL)
    log = d / "commands.log"
    log.touch()
    policy = d / "policy.py"
    policy.write_text(POLICY.format(pki=str(d)))
    server = lab.popen(
        "server",
        [
            sys.executable, "-m", "zfw.lab.pop3server", "--mail", str(d / "mail"),
            "--log", str(log), "--tls", f"{d}/good.pem:{d}/good.key",
        ],
        stdout=-1,
    )  # fmt: skip
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    with zfw_in_front(lab, server, str(policy), "pop3", "pop3.*:4,tls.*:4,core.*:3") as z:
        yield lab, z, d, log


def _curl(lab: Lab, d, *args: str):
    return lab.run(
        "client",
        [
            "curl", "-sS", "-v", "--max-time", "60", "--ssl-reqd", "--cacert",
            str(d / "zfw" / "ca.pem"), "--resolve", f"www.example.com:110:{SERVER4}",
            "-u", "zfw:secret", *args,
        ],
        check=False,
        timeout=120,
    )  # fmt: skip


def test_curl_reads_mail_inside_stls_and_sees_zfws_leaf(stls_lab):
    lab, z, d, log = stls_lab
    proc = _curl(lab, d, "pop3://www.example.com/1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.replace("\r\n", "\n") == MAIL.decode().replace("\r\n", "\n")
    assert "issuer: CN=zfw test CA" in proc.stderr  # zfw's leaf, signed by the test CA
    line = z.wait_for("inspect (STARTTLS)")
    assert "sni=www.example.com" in line and "verify=verified" in line
    commands = log.read_text().splitlines()
    assert f"{CLIENT4} command STLS" in commands and f"{CLIENT4} command RETR 1" in commands


def test_a_command_the_table_refuses_inside_tls_never_reaches_the_server(stls_lab):
    lab, z, d, log = stls_lab
    proc = _curl(lab, d, "-X", "DELE", "pop3://www.example.com/1")
    assert proc.returncode != 0
    assert "Deleting mail is not permitted here." in proc.stderr
    assert z.wait_for("DELE: rejected by policy")
    assert not any(" command DELE" in line for line in log.read_text().splitlines())
