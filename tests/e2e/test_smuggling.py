"""Smuggling classes against a plain origin (nginx) through HttpProxy: the smuggled
follower never reaches the origin, and the legal forms that look odd still work."""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.helpers import zfw_in_front
from zfw.lab import SERVER4, Lab
from zfw.lab.servers import start_nginx

POLICY = os.path.join(os.path.dirname(__file__), "policies", "http.py")
FOLLOW = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

RAW = """
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=10)
s.sendall(bytes.fromhex(sys.argv[2]))
s.shutdown(socket.SHUT_WR)  # nothing more: zfw answers what came, then closes
got = b""
try:
    while data := s.recv(65536):
        got += data
except TimeoutError:
    pass
print(got.decode("latin-1"))
"""

HOSTILE = [
    (
        "Content_Length look-alike",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent_Length: 36\r\n\r\n" + FOLLOW,
    ),
    (
        "Transfer.Encoding look-alike",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer.Encoding: chunked\r\n\r\n24\r\n"
        + FOLLOW
        + b"\r\n0\r\n\r\n",
    ),
    (
        "both CL and TE",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + FOLLOW,
    ),
    ("Host list", b"GET /x HTTP/1.1\r\nHost: a, b\r\n\r\n" + FOLLOW),
    ("Host userinfo", b"GET /x HTTP/1.1\r\nHost: user@a\r\n\r\n" + FOLLOW),
    ("Host path", b"GET /x HTTP/1.1\r\nHost: a/b\r\n\r\n" + FOLLOW),
    ("Host port", b"GET /x HTTP/1.1\r\nHost: a:70000\r\n\r\n" + FOLLOW),
    (
        "TE in trailers",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nTransfer-Encoding: chunked\r\n\r\n" + FOLLOW,
    ),
    ("obs-fold", b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n" + FOLLOW),
]

CONTROLS = [
    (
        "chunk extensions",
        b"POST /control HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "trailers",
        b"POST /control HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
    ),
    ("tab around a value", b"GET /control HTTP/1.1\r\nHost:\ta\t\r\nAccept: \t*/*\r\n\r\n"),
    (
        "Chunked in mixed case",
        b"POST /control HTTP/1.1\r\nHost: a\r\n"
        b"Transfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
]


@pytest.fixture(scope="module")
def origin(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("smuggling")
    server = '        listen 80;\n        location / { return 200 "origin\\n"; }'
    nginx = start_nginx(
        lab,
        str(d),
        server,
        f"    log_format uri '$request_uri $status';\n    access_log {d}/access.log uri;",
    )
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, POLICY, "http", "http.*:3") as z:
        yield lab, z, d


def send(lab: Lab, data: bytes) -> str:
    return lab.run("client", ["python3", "-c", RAW, SERVER4, data.hex()], timeout=60).stdout


def reached(d) -> list[str]:
    time.sleep(0.2)  # nginx writes its log line after the response
    path = d / "access.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("data", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_the_smuggled_follower_never_reaches_the_origin(origin, data):
    lab, _z, d = origin
    before = len(reached(d))
    answer = send(lab, data)
    assert answer.startswith("HTTP/1.1 400 "), answer[:200]
    assert not [ln for ln in reached(d)[before:] if "smuggled" in ln]


@pytest.mark.parametrize("data", [c[1] for c in CONTROLS], ids=[c[0] for c in CONTROLS])
def test_legal_forms_still_work(origin, data):
    lab, _z, d = origin
    before = len(reached(d))
    answer = send(lab, data)
    assert answer.startswith("HTTP/1.1 200 ") and "origin" in answer, answer[:300]
    assert reached(d)[before:] == ["/control 200"]


def test_a_valid_request_before_a_bad_one_is_answered_first(origin):
    lab, _z, d = origin
    before = len(reached(d))
    answer = send(
        lab,
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 1x\r\n\r\n" + FOLLOW,
    )
    assert answer.startswith("HTTP/1.1 200 ") and "HTTP/1.1 400 " in answer.split("origin", 1)[1]
    assert reached(d)[before:] == ["/first 200"]
