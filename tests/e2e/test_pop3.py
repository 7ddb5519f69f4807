"""The example proxy of docs/proxies.md, Pop3Proxy, between curl and a POP3 server."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from tests.e2e.helpers import zfw_in_front
from zfw.lab import CLIENT4, CLIENT6, SERVER4, SERVER6, Lab

HERE = os.path.dirname(__file__)
POLICY = os.path.join(HERE, "policies", "pop3.py")
SMALL = b"Subject: hello\r\n\r\nthrough zfw\r\n.a line that starts with a dot\r\n"


def _big() -> bytes:
    line = b"x" * 76 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (5 * 2**20 // len(line))


@pytest.fixture(scope="module")
def pop3_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("pop3")
    mail = d / "mail"
    mail.mkdir()
    (mail / "1").write_bytes(SMALL)
    (mail / "2").write_bytes(_big())
    log = d / "commands.log"
    log.touch()
    os.chmod(d, 0o755)
    server = lab.popen(
        "server",
        [sys.executable, "-m", "zfw.lab.pop3server", "--mail", str(mail), "--log", str(log)],
        stdout=-1,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    with zfw_in_front(lab, server, POLICY, "pop3", "pop3.*:4,core.*:3") as z:
        yield lab, z, log


def _curl(lab: Lab, *args: str):
    return lab.run(
        "client", ["curl", "-sS", "--max-time", "60", "-u", "zfw:secret", *args], check=False
    )


@pytest.mark.parametrize("server", [SERVER4, SERVER6])
def test_curl_reads_mail_through_the_proxy(pop3_lab, server):
    lab, _z, log = pop3_lab
    host = f"[{server}]" if ":" in server else server
    proc = _curl(lab, f"pop3://{host}/1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.replace("\r\n", "\n") == SMALL.decode().replace("\r\n", "\n")
    commands = log.read_text().splitlines()
    client = CLIENT6 if ":" in server else CLIENT4  # transparent: the client's own address
    assert f"{client} command RETR 1" in commands
    # STLS and SASL are not passed on in CAPA: curl logs in with USER and PASS.
    assert not any(" command AUTH" in line for line in commands)
    assert any(line.endswith("command USER zfw") for line in commands)


def test_the_server_sees_the_client_and_a_big_message_is_intact(pop3_lab):
    lab, _z, log = pop3_lab
    proc = lab.run(
        "client",
        ["sh", "-c", f"curl -sS -u zfw:secret pop3://{SERVER4}/2 | sha256sum"],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == hashlib.sha256(_big()).hexdigest()
    assert any(
        line.startswith(f"{CLIENT4} command RETR 2") for line in log.read_text().splitlines()
    )


def test_a_command_the_table_rejects_never_reaches_the_server(pop3_lab):
    lab, z, log = pop3_lab
    proc = _curl(lab, "-X", "DELE", f"pop3://{SERVER4}/1")
    assert proc.returncode != 0
    assert z.wait_for("DELE: rejected by policy")
    assert not any(" command DELE" in line for line in log.read_text().splitlines())


def test_garbage_is_a_violation_and_the_connection_closes(pop3_lab):
    lab, z, _log = pop3_lab
    script = (
        "import socket\n"
        f"s = socket.create_connection(({SERVER4!r}, 110), timeout=10)\n"
        "f = s.makefile('rb')\n"
        "print(f.readline())\n"
        "s.sendall(b'USER zfw\\r\\nNOT A COMMAND\\x01\\r\\n')\n"
        "print(f.readline()); print(f.readline()); print(f.read())\n"
    )
    proc = lab.run("client", [sys.executable, "-c", script], check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("b'+OK zfw lab POP3")
    assert lines[1] == "b'+OK\\r\\n'"
    assert lines[2] == "b'-ERR Protocol violation; closing.\\r\\n'" and lines[3] == "b''"
    assert z.wait_for("pop3.violation")
