"""HttpProxy with real programs: curl in the client, nginx in the server namespace."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.e2e.helpers import big_file, curl, passive_opens, zfw_in_front
from zfw.lab import CLIENT4, CLIENT6, SERVER4, SERVER6, Lab
from zfw.lab.servers import start_nginx
from zfw.lab.tools import pattern_block

HERE = os.path.dirname(__file__)
HTTP_POLICY = os.path.join(HERE, "policies", "http.py")
SIZE = 500 * 2**20

HTTP_LINES = """    log_format zfw '$remote_addr $request_method $request_uri $status $body_bytes_sent '
                   'conn=$connection req=$connection_requests ua="$http_user_agent" '
                   'fwd="$http_x_forwarded_by" connection="$http_connection" body=$request_body_file';
    access_log {dir}/access.log zfw;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:8081;
        access_log off;
        location / {{ return 200 "stored\\n"; }}
    }}"""

SERVER_LINES = """        listen 80;
        listen [::]:80;
        root {dir}/www;
        keepalive_requests 10000;
        location = /upload {{
            client_max_body_size 0;
            client_body_in_file_only on;
            client_body_temp_path {dir}/bodies;
            proxy_pass http://127.0.0.1:8081/stored;
        }}
        location /dav/ {{ dav_methods PUT DELETE; }}"""


@pytest.fixture(scope="module")
def http_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("nginx-http")
    for sub in ("www", "www/dav", "bodies"):
        (d / sub).mkdir()
    (d / "www" / "small.txt").write_text("hello through zfw\n")
    (d / "www" / "dav" / "keep.txt").write_text("do not delete\n")
    digest = big_file(d / "www" / "big.bin", SIZE, pattern_block())
    nginx = start_nginx(lab, str(d), SERVER_LINES.format(dir=d), HTTP_LINES.format(dir=d), 256)
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, HTTP_POLICY, "http", "http.*:4") as z:
        yield lab, z, d, digest


def access_log(d) -> list[str]:
    return (d / "access.log").read_text().splitlines()


def test_get_sees_the_client_address_and_the_rewritten_headers(http_lab):
    lab, z, d, _ = http_lab
    proc = curl(lab, "-A", "curl-original", f"http://{SERVER4}/small.txt")
    assert proc.stdout == "hello through zfw\n"
    line = [ln for ln in access_log(d) if "/small.txt" in ln][-1]
    assert line.startswith(f"{CLIENT4} GET /small.txt 200 ")
    assert 'ua="zfw-checked"' in line and 'fwd="zfw"' in line
    line = z.wait_for("http.request(3)")
    # The access line names the client, the URL with its host, and the server.
    assert f"GET http://{SERVER4}/small.txt -> 200; client={CLIENT4}; server={SERVER4}:80" in line


def test_ipv6(http_lab):
    lab, _z, d, _ = http_lab
    proc = curl(lab, f"http://[{SERVER6}]/small.txt")
    assert proc.stdout == "hello through zfw\n"
    assert any(ln.startswith(f"{CLIENT6} GET /small.txt 200") for ln in access_log(d))


def test_head(http_lab):
    lab, _z, _d, _ = http_lab
    proc = curl(lab, "-I", f"http://{SERVER4}/small.txt")
    assert proc.stdout.startswith("HTTP/1.1 200 OK")
    assert "Content-Length: 18" in proc.stdout


def test_keep_alive_reuses_both_connections(http_lab):
    lab, _z, d, _ = http_lab
    url = f"http://{SERVER4}/small.txt?ka="
    proc = curl(lab, "-v", "-o", "/dev/null", "-o", "/dev/null", url + "1", url + "2")
    assert "Re-using existing connection" in proc.stderr
    lines = {ln.split()[2]: ln for ln in access_log(d) if "?ka=" in ln}
    conn1 = lines["/small.txt?ka=1"].split("conn=")[1].split()[0]
    conn2 = lines["/small.txt?ka=2"].split("conn=")[1].split()[0]
    assert conn1 == conn2 and "req=2" in lines["/small.txt?ka=2"]


def _time_wait(lab: Lab, ns: str, local: str) -> set[tuple[str, str]]:
    """(local, peer) of the sockets in TIME_WAIT on ``local`` (address:port) in ``ns``."""
    out = lab.run(ns, ["ss", "-Htn", "state", "time-wait", "src", local]).stdout
    return {(line.split()[-2], line.split()[-1]) for line in out.splitlines()}


def test_closing_client_makes_the_server_close_first(http_lab):
    # The server hears Connection: close and so keeps the TIME_WAIT, as without the
    # firewall; zfw's connection from the client's address leaves none behind.
    lab, _z, d, _ = http_lab
    before = _time_wait(lab, "server", f"{SERVER4}:80")
    proc = curl(lab, "-H", "Connection: close", f"http://{SERVER4}/small.txt?closing")
    assert proc.stdout == "hello through zfw\n"
    line = [ln for ln in access_log(d) if "?closing" in ln][-1]
    assert ' connection="close" ' in line
    deadline = time.monotonic() + 5
    while not (new := _time_wait(lab, "server", f"{SERVER4}:80") - before):
        assert time.monotonic() < deadline, "the server kept no TIME_WAIT"
        time.sleep(0.05)
    zfw_side = {local for local, _peer in _time_wait(lab, "fw", f"{CLIENT4}:*")}
    assert all(peer.startswith(f"{CLIENT4}:") for _local, peer in new)
    assert not zfw_side & {peer for _local, peer in new}


def test_chunked_post_with_100_continue_arrives_intact(http_lab):
    lab, _z, d, _ = http_lab
    data = pattern_block() * 40  # 2.5 MiB
    (d / "upload.bin").write_bytes(data)
    proc = curl(lab, "-v", "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue",
                "--data-binary", f"@{d}/upload.bin", f"http://{SERVER4}/upload")  # fmt: skip
    assert proc.stdout == "stored\n", proc.stderr
    assert "HTTP/1.1 100 Continue" in proc.stderr
    line = [ln for ln in access_log(d) if " /upload " in ln][-1]
    assert line.startswith(f"{CLIENT4} POST /upload 200")
    stored = line.split("body=")[1].strip()
    with open(stored, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()


def test_500_mb_download_intact(http_lab):
    lab, _z, _d, digest = http_lab
    proc = lab.run(
        "client",
        ["sh", "-c", f"curl -sS --max-time 200 http://{SERVER4}/big.bin | sha256sum"],
        timeout=260,
    )
    assert proc.stdout.split()[0] == digest


def test_delete_is_rejected_and_never_reaches_the_server(http_lab):
    lab, z, d, _ = http_lab
    before = passive_opens(lab)
    mark = len(z.lines)
    proc = curl(lab, "-X", "DELETE", "-w", "%{http_code}", "-o", "/dev/null",
                f"http://{SERVER4}/dav/keep.txt")  # fmt: skip
    assert proc.stdout == "405"
    assert (d / "www" / "dav" / "keep.txt").exists()
    assert "request rejected: DELETE 405" in z.wait_for("http.policy", start=mark)
    assert passive_opens(lab) == before
    assert not any(" DELETE " in ln for ln in access_log(d))


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
    b"0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /smuggled HTTP/1.1\nHost: a\n\n",
]


@pytest.mark.parametrize("raw", SMUGGLING, ids=range(len(SMUGGLING)))
def test_smuggling_attempts_are_answered_400_and_never_forwarded(http_lab, raw):
    lab, z, d, _ = http_lab
    before = passive_opens(lab)
    mark = len(z.lines)
    code = (
        f"import socket,sys; s = socket.create_connection(('{SERVER4}', 80), timeout=10); "
        f"s.sendall({raw!r}); print(s.recv(200).split(b'\\r\\n')[0].decode())"
    )
    proc = lab.run("client", ["python3", "-c", code], check=False)
    assert proc.stdout.startswith(("HTTP/1.1 400 ", "HTTP/1.1 501 ")), proc.stderr
    assert z.wait_for("http.violation", start=mark)
    assert passive_opens(lab) == before
    assert not any("/smuggled" in ln for ln in access_log(d))


def test_bad_chunk_is_not_forwarded(http_lab):
    """The head was valid and went out; the body's bad chunk line and what follows never do."""
    lab, z, d, _ = http_lab
    raw = (
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;\x00\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    mark = len(z.lines)
    code = (
        f"import socket; s = socket.create_connection(('{SERVER4}', 80), timeout=10); "
        f"s.sendall({raw!r}); print(s.recv(200).split(b'\\r\\n')[0].decode())"
    )
    proc = lab.run("client", ["python3", "-c", code], check=False)
    assert proc.stdout.startswith("HTTP/1.1 400 "), proc.stderr
    assert "malformed chunk size line" in z.wait_for("http.violation", start=mark)
    time.sleep(0.5)
    assert not any("/smuggled" in ln for ln in access_log(d))
    assert not any(ln.startswith(f"{CLIENT4} POST /upload 200") and "hello" in ln
                   for ln in access_log(d))  # fmt: skip


def test_slow_reader_keeps_proxy_memory_bounded(http_lab):
    lab, z, _d, _ = http_lab
    before = z.rss_kib()
    proc = curl(lab, "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                "--limit-rate", "25M", "-r", "0-104857599", f"http://{SERVER4}/big.bin")  # fmt: skip
    assert proc.stdout == f"206 {100 * 2**20}"
    assert z.rss_kib() - before < 16 * 1024
