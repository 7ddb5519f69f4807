"""A real browser through zfw: headless Chromium in the client loads a page of nginx in
the server whose script tries a redirect, gzip, chunked answers, a 1 MB POST, cookies,
fetch with a custom header, a missing page and a WebSocket (tests/e2e/site), without
zfw, then through transparent HTTP, inspected HTTPS, the explicit proxy (CONNECT
inspected) and the blind TLS tunnel. Every way must give what the load without zfw gave.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import stop_all, zfw_in_front
from tests.e2e.pki import make_pki
from tests.tls.test_clienthello import chromium_like_hello
from zfw.lab import FW_CLIENT4, SERVER4, Lab, browser
from zfw.lab.servers import start_nginx

SITE = Path(__file__).parent / "site"
NAME = "www.example.com"
#: A GIF of one pixel.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)

POLICY = """
from zfw.policy import *

PKI = {pki!r}
InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])

INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=(PKI + "/zfw/ca.pem", PKI + "/zfw/ca.key")),
    server_verify=ServerCertificateVerifier(ca_file=PKI + "/origin/ca.pem"),
)


class Web(HttpProxy):
    def config(self):
        self.permit_upgrade = ("websocket",)


class WebProxy(HttpProxyNonTransparent):
    def config(self):
        self.permit_upgrade = ("websocket",)
        self.connect_encryption = INSPECT


def browser():
    Service("http", Web)
    Service("https", Web, encryption=INSPECT)
    Service("strict", HttpProxy)  # no permit_upgrade
    Service("tunnel", TlsTunnelProxy)
    Service("proxy", WebProxy, router=InbandRouter())
    Listener(SockAddrInet("", 50080), "http", intercept=80)
    Listener(SockAddrInet("", 50443), "https", intercept=443)
    Listener(SockAddrInet("", 50088), "strict", intercept=8080)
    Listener(SockAddrInet("", 50843), "tunnel", intercept=8443)
    Listener(SockAddrInet("192.0.2.1", 3128), "proxy", transparent=False)
"""

NGINX_HTTP = """
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    types {{ text/html html; text/css css; text/javascript js; image/gif gif; text/plain txt; }}
    gzip on; gzip_types text/plain; gzip_min_length 1000;
    server {{
        listen 80; listen 8080;
        listen 443 ssl; listen 8443 ssl;
        ssl_certificate {d}/good.pem; ssl_certificate_key {d}/good.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        server_name {name};
        root {d}/www;
        location = /redirect {{ return 302 /hello.txt; }}
        location /app/ {{
            proxy_pass http://127.0.0.1:8081;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
"""


@pytest.fixture(scope="module")
def browser_lab(lab: Lab, tmp_path_factory):
    if browser.missing():  # as the lab itself: never skipped under CI
        why = f"not installed: {', '.join(browser.missing())} (contrib/install-deps)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    d = tmp_path_factory.mktemp("browser")
    os.chmod(d, 0o755)
    make_pki(str(d))
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    lab.run("fw", [zfw, "ca", "create", str(d / "zfw"), "--name", "zfw browser CA"])
    www = d / "www"
    shutil.copytree(SITE, www)
    (www / "hello.txt").write_text("hello\n")
    (www / "big.txt").write_text(
        "".join(f"line {i:05} of a compressible text\n" for i in range(5000))
    )
    (www / "pixel.gif").write_bytes(PIXEL)
    homes = d / "homes"
    origin = browser.trusting_home(str(homes / "origin"), str(d / "origin" / "ca.pem"))
    inspected = browser.trusting_home(str(homes / "zfw"), str(d / "zfw" / "ca.pem"))
    results = d / "results"
    results.mkdir()
    app = lab.popen("server", [sys.executable, "-m", "zfw.lab.webapp", "8081", str(results)])
    assert app.stdout is not None and app.stdout.readline().strip() == "ready"
    nginx = start_nginx(
        lab, str(d), "        listen 127.0.0.1:81;", NGINX_HTTP.format(d=d, name=NAME)
    )
    try:
        time.sleep(0.5)
        resolve = f"--host-resolver-rules=MAP {NAME} {SERVER4}"
        lab.tproxy({}, divert="none")  # plain routing: the loads without zfw
        plain = {
            scheme: browser.load(
                lab, origin, f"{scheme}://{NAME}/index.html", str(results), [resolve]
            )
            for scheme in ("http", "https")
        }
        lab.hosts("fw", {NAME: SERVER4})  # the explicit proxy resolves the names it is sent
        policy = d / "policy.py"
        policy.write_text(POLICY.format(pki=str(d)))
        with zfw_in_front(lab, [nginx, app], str(policy), "browser", "*:3") as z:
            yield (
                lab,
                z,
                plain,
                {
                    "origin": origin,
                    "zfw": inspected,
                    "resolve": resolve,
                    "results": str(results),
                },
            )
    finally:
        stop_all([nginx, app])
        lab.hosts("fw", {})


def test_without_zfw_every_step_works(browser_lab):
    _lab, _z, plain, _homes = browser_lab
    for scheme, got in plain.items():
        assert got["scheme"] == f"{scheme}:", got
        assert got["script"] is True and got["style"] == "7px" and got["image"] == 1, got
        assert got["redirect"] == [200, True, "/hello.txt", "hello\n"], got
        assert got["gzip"][0] == "gzip" and got["post"][1]["length"] == 1 << 20, got
        assert got["headers"] == {"x-zfw-test": "custom value", "cookie": "zfw=baked"}, got
        assert got["websocket"] == ["echoed", 5, 70000], (scheme, got)


@pytest.mark.parametrize(
    ("way", "url", "home", "flags"),
    [
        ("transparent http", f"http://{NAME}/index.html", "origin", ["resolve"]),
        ("inspected https", f"https://{NAME}/index.html", "zfw", ["resolve"]),
        ("explicit proxy, inspected", f"https://{NAME}/index.html", "zfw", ["proxy"]),
        ("tls tunnel", f"https://{NAME}:8443/index.html", "origin", ["resolve"]),
    ],
)
def test_the_page_loads_through_zfw_as_without(browser_lab, way, url, home, flags):
    lab, z, plain, homes = browser_lab
    start = len(z.lines)
    before = counters(lab)
    options = {"resolve": homes["resolve"], "proxy": f"--proxy-server=http://{FW_CLIENT4}:3128"}
    got = browser.load(lab, homes[home], url, homes["results"], [options[f] for f in flags])
    assert got == plain[url.split(":")[0]], way
    if way == "tls tunnel":  # (a line when a connection ends: the browser has been stopped)
        assert z.wait_for(f"sni={NAME}", start=start) is not None
        tunnel = [ln for ln in z.lines[start:] if "tls.info(3)" in ln]
        assert all("accept:" in ln and "version=TLSv1.3" in ln for ln in tunnel), tunnel
        assert not [ln for ln in tunnel if "0x" in ln or "hidden" in ln], tunnel
        return
    scheme = url.split(":")[0]
    ws = z.wait_for(f"GET {scheme}://{NAME}/app/ws -> 101", start=start)
    assert ws is not None, z.lines[start:]
    fields = dict(f.split("=", 1) for f in ws.split("; ")[1:])
    assert int(fields["bytes"]) > 70000 and int(fields["client_bytes"]) > 70000, ws
    if scheme == "https":  # decrypted: the requests inside are HttpProxy's
        assert "tls=TLSv1.3" in ws and "verify=verified" in ws, ws
    if "proxy" in flags:
        assert z.grep(f"CONNECT {NAME}:443 -> 200"), z.lines[start:]
    assert not [ln for ln in z.lines[start:] if "handshake failed" in ln]
    if way == "transparent http":
        after = counters(lab)["http"]
        upgrades = after["proxy"]["http_upgrades"] - before["http"]["proxy"].get("http_upgrades", 0)
        assert upgrades == 1, after
        # The 1 MB POST, the requests' heads, and the 70 KB relayed after the upgrade.
        sent = after["bytes_from_client"] - before["http"]["bytes_from_client"]
        assert sent > 2**20 + 70000, after


def test_a_websocket_not_permitted_is_refused_with_its_reason(browser_lab):
    lab, z, plain, homes = browser_lab
    start = len(z.lines)
    url = f"http://{NAME}:8080/index.html"
    before = counters(lab)["strict"]["proxy"].get("http_upgrades_refused", 0)
    got = browser.load(lab, homes["origin"], url, homes["results"], [homes["resolve"]])
    assert got.pop("websocket")[0] == "closed"
    assert got == {k: v for k, v in plain["http"].items() if k != "websocket"}
    assert z.wait_for(f"GET http://{NAME}:8080/app/ws -> 403", start=start) is not None
    refused = [ln for ln in z.lines[start:] if "/app/ws" in ln or "websocket" in ln]
    assert counters(lab)["strict"]["proxy"]["http_upgrades_refused"] - before == 1
    assert [ln for ln in refused if "policy(3)" in ln] == [
        next(
            ln for ln in refused if "request rejected: Upgrade to websocket is not permitted." in ln
        )
    ], refused


def test_a_hello_that_offers_ech_is_said_to_through_the_tunnel(browser_lab):
    lab, z, _plain, _homes = browser_lab
    start = len(z.lines)
    send = (
        "import socket, sys; s = socket.create_connection((sys.argv[1], 8443), timeout=30); "
        "s.sendall(bytes.fromhex(sys.argv[2])); s.recv(100)"
    )
    lab.run(
        "client", [sys.executable, "-c", send, SERVER4, chromium_like_hello().hex()], check=False
    )
    line = z.wait_for("sni=www.example.com", start=start)
    assert line is not None and "ech=offered" in line and "offered=TLSv1.3" in line, line


def counters(lab: Lab) -> dict[str, dict]:
    """The services' counters, from ``zfw status --json``."""
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    socket = lab.control_socket("browser")
    proc = subprocess.run(
        [zfw, "status", "--json", "--socket", socket], capture_output=True, text=True, timeout=60
    )
    return json.loads(proc.stdout)[socket]["services"]


def test_http_through_the_explicit_proxy_and_its_websocket_limit(browser_lab):
    """Plain http:// through the explicit proxy (absolute-form requests) loads as
    without zfw; only the WebSocket differs: Chromium sends ws:// through a proxy as
    ``CONNECT host:80``, which ``connect_ports`` (443 only) refuses, as it should
    here, since ``connect_encryption`` takes every tunnel for TLS."""
    lab, z, plain, homes = browser_lab
    start = len(z.lines)
    url = f"http://{NAME}/index.html"
    proxy = f"--proxy-server=http://{FW_CLIENT4}:3128"
    got = browser.load(lab, homes["origin"], url, homes["results"], [proxy])
    assert got.pop("websocket")[0] == "closed"
    assert got == {k: v for k, v in plain["http"].items() if k != "websocket"}
    assert z.wait_for(f"GET http://{NAME}/app/cookie -> 200", start=start) is not None
    assert z.wait_for(f"CONNECT {NAME}:80 -> 403", start=start) is not None
