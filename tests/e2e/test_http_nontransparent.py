"""HttpProxy as a configured proxy (InbandRouter) with curl and openssl in the lab."""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.helpers import passive_opens, zfw_in_front
from zfw.lab import CLIENT4, FW_CLIENT4, FW_SERVER6, SERVER4, SERVER6, Lab
from zfw.lab.servers import self_signed_cert, start_nginx, tls_server_lines

HERE = os.path.dirname(__file__)
POLICY = os.path.join(HERE, "policies", "http_nontransparent.py")
PROXY = f"http://{FW_CLIENT4}:3128"
TLS_PROXY = f"http://{FW_CLIENT4}:3129"
CHILD = f"http://{FW_CLIENT4}:3130"

ACCESS_LOG = """    log_format peer '$remote_addr $scheme $host "$request" $status';
    access_log {dir}/access.log peer;"""


@pytest.fixture(scope="module")
def proxy_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("nginx-proxy")
    (d / "www").mkdir()
    (d / "www" / "small.txt").write_text("hello through the proxy\n")
    self_signed_cert(str(d), "allowed.example", ["denied.example"])
    server = "        listen 80;\n        listen [::]:80;\n" + tls_server_lines(str(d), f"{d}/www")
    nginx = start_nginx(lab, str(d), server, ACCESS_LOG.format(dir=d), 256)
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, POLICY, "proxy", "http.*:4,tls.*:4,plug.*:4,core.*:3") as z:
        yield lab, z, d


def curl(lab: Lab, *args: str):
    return lab.run("client", ["curl", "-sS", "--max-time", "30", *args], check=False, timeout=60)


def last_access(d, needle: str) -> str:
    return [ln for ln in (d / "access.log").read_text().splitlines() if needle in ln][-1]


def test_absolute_form_request_reaches_the_named_server(proxy_lab):
    lab, z, d = proxy_lab
    proc = curl(lab, "-x", PROXY, f"http://{SERVER4}/small.txt")
    assert proc.stdout == "hello through the proxy\n", proc.stderr
    # forge_addr: even through a configured proxy the server sees the client
    assert last_access(d, "small.txt") == (
        f'{CLIENT4} http {SERVER4} "GET /small.txt HTTP/1.1" 200'
    )
    assert z.wait_for(f"GET http://{SERVER4}/small.txt -> 200") is not None


def test_ipv6_server_through_a_proxy_that_does_not_forge(proxy_lab):
    lab, _z, d = proxy_lab
    proc = curl(lab, "-x", TLS_PROXY, f"http://[{SERVER6}]/small.txt?v6")
    assert proc.stdout == "hello through the proxy\n", proc.stderr
    assert last_access(d, "small.txt?v6").startswith(f"{FW_SERVER6} http [{SERVER6}] ")


def test_server_in_a_closed_zone_gets_403_and_nothing_is_connected(proxy_lab):
    lab, z, _d = proxy_lab
    proc = curl(lab, "-i", "-x", PROXY, "http://203.0.113.5/")
    assert proc.stdout.startswith("HTTP/1.1 403 ")
    line = z.wait_for("denied GET http://203.0.113.5/")
    assert "core.policy(1): (proxy/web:" in line and "to zone 'dmz'" in line


def test_a_name_is_resolved_and_its_address_decided(proxy_lab):
    lab, z, _d = proxy_lab
    proc = curl(lab, "-i", "-x", PROXY, "http://localhost/")
    assert proc.stdout.startswith("HTTP/1.1 403 ")  # loopback is in no zone
    assert "is in no zone" in z.wait_for("denied GET http://localhost/")


def test_connect_tunnel_through_plugproxy(proxy_lab):
    lab, z, d = proxy_lab
    before = passive_opens(lab)
    proc = curl(lab, "-k", "-x", PROXY, f"https://{SERVER4}/small.txt")
    assert proc.stdout == "hello through the proxy\n", proc.stderr
    assert passive_opens(lab) == before + 1
    assert last_access(d, "small.txt").startswith(f"{CLIENT4} https {SERVER4} ")
    assert z.wait_for(f"CONNECT {SERVER4}:443 -> 200") is not None
    assert "plug.info(3): (proxy/web:" in z.wait_for("session end")


def test_connect_to_a_port_not_permitted(proxy_lab):
    lab, z, _d = proxy_lab
    before = passive_opens(lab)
    proc = curl(lab, "-p", "-x", PROXY, f"http://{SERVER4}:25/")
    assert "403" in proc.stderr
    assert passive_opens(lab) == before
    assert "CONNECT to port 25 is not permitted" in z.wait_for("port 25")


@pytest.mark.parametrize(
    ("name", "allowed"), [("allowed.example", True), ("denied.example", False)]
)
@pytest.mark.parametrize(
    ("port", "service"),
    [(3129, "tlsweb"), (3131, "childtls")],  # the child: decides, then asks its parent
)
def test_connect_tunnel_checked_by_the_tls_tunnel(proxy_lab, name, allowed, port, service):
    lab, z, _d = proxy_lab
    before, start = passive_opens(lab), len(z.lines)
    s_client = ["openssl", "s_client", "-proxy", f"{FW_CLIENT4}:{port}", "-brief"]
    proc = lab.run(
        "client",
        [*s_client, "-connect", f"{SERVER4}:443", "-servername", name],
        input="",
        check=False,
        timeout=60,
    )
    if allowed:
        assert "CONNECTION ESTABLISHED" in proc.stderr, proc.stderr
        assert passive_opens(lab) == before + 1
        line = z.wait_for(f"CONNECT {SERVER4}:443 -> 200", start=start)
    else:
        assert "CONNECTION ESTABLISHED" not in proc.stderr
        assert passive_opens(lab) == before  # the child never asked its parent
        line = z.wait_for(f"{name} is not in the allowed names", start=start)
    assert line is not None and f"(proxy/{service}:" in line


def test_child_proxy_sends_through_its_parent(proxy_lab):
    lab, z, d = proxy_lab
    proc = curl(lab, "-x", CHILD, f"http://{SERVER4}/small.txt?chain")
    assert proc.stdout == "hello through the proxy\n", proc.stderr
    # the parent forges the address its client (the child, on the firewall) came from
    assert last_access(d, "small.txt?chain").startswith(f"{FW_CLIENT4} http {SERVER4} ")
    first = z.wait_for("/small.txt?chain -> 200")
    second = z.wait_for("/small.txt?chain -> 200", start=z.lines.index(first) + 1)
    assert second is not None  # one line from each proxy
    assert {"(proxy/web:" in first, "(proxy/child:" in second} == {True} or {
        "(proxy/child:" in first,
        "(proxy/web:" in second,
    } == {True}
    proc = curl(lab, "-k", "-x", CHILD, f"https://{SERVER4}/small.txt?tunnel")
    assert proc.stdout == "hello through the proxy\n", proc.stderr
