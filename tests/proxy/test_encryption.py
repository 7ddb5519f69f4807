"""EncryptionProxy in memory: its decisions, and the bypass path through the tunnel's relay."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyHarness
from tests.proxy.test_tls import _record, _server_hello, _tls13_hello
from zfw.proxy.base import Proxy
from zfw.proxy.encryption import EncryptionProxy
from zfw.proxy.http import HttpProxy
from zfw.tls.certs import create_ca
from zfw.tls.encryption import DynamicCertificate, TwoSidedEncryption
from zfw.tls.retry import HRR_RANDOM

DEST = ("198.51.100.2", 443)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return create_ca(str(tmp_path_factory.mktemp("pki") / "ca"), "zfw test CA")


def _bypassing(ca):
    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=ca), bypass=["a.example"], reject=["denied.example"]
    )
    return ProxyHarness(EncryptionProxy, DEST, encryption=enc, inner_proxy=HttpProxy)


def test_a_bypassed_name_is_relayed_untouched(ca):
    h = _bypassing(ca)
    first = _tls13_hello(b"a.example")
    h.send(first)
    h.connect()
    assert h.to_server() == first
    h.reply(_server_hello(b"\x11" * 32))
    h.send(_record(23, b"x"))
    assert h.to_server() == _record(23, b"x") and not h.closed
    assert "tunnel: a.example is on the bypass list" in h.log()


def test_a_denied_name_in_a_second_hello_after_a_retry_request_is_refused(ca):
    # As on the TLS tunnel (tests/proxy/test_tls.py): the bypass path relays through it.
    h = _bypassing(ca)
    first = _tls13_hello(b"a.example")
    h.send(first)
    h.connect()
    assert h.to_server() == first
    h.reply(_server_hello(HRR_RANDOM))
    h.send(_record(20, b"\x01") + _tls13_hello(b"denied.example"))
    assert h.to_server() == b""  # the second hello never reached the server
    assert "the second ClientHello names 'denied.example', the first 'a.example'" in h.log()
    assert "tls.violation(1)" in h.log() and h.closed


def test_a_second_hello_naming_the_same_server_passes_on_the_bypass_path(ca):
    h = _bypassing(ca)
    h.send(_tls13_hello(b"a.example"))
    h.connect()
    h.to_server()
    h.reply(_server_hello(HRR_RANDOM))
    second = _record(20, b"\x01") + _tls13_hello(b"a.example")
    h.send(second)
    assert h.to_server() == second and not h.closed


# --- both sides TLS, in memory ---------------------------------------------------------


def _inspecting(pki, name, server_cert="good", client_ca=None, **policy):
    from tests.proxy.tls_memory import TlsPair, client_connection, server_connection
    from zfw.tls.encryption import ServerCertificateVerifier

    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=pki["zfw_ca"], untrusted_ca=pki["zfw_untrusted"]),
        ServerCertificateVerifier(ca_file=pki["origin_ca"]),
        **policy,
    )
    h = ProxyHarness(EncryptionProxy, DEST, encryption=enc, inner_proxy=HttpProxy)
    d = pki["dir"]
    pair = TlsPair(
        h,
        client_connection(client_ca or pki["zfw_ca"][0], name),
        lambda: server_connection(f"{d}/{server_cert}.pem", f"{d}/{server_cert}.key"),
    )
    return h, pair


def _issuer(end):
    return end.leaf_issuer()


def test_a_request_is_inspected_end_to_end(pki):
    h, pair = _inspecting(pki, "www.example.com")
    pair.pump()
    assert pair.client.failed is None and _issuer(pair.client) == "zfw test CA"
    pair.client.send(b"GET /x HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    pair.pump()
    (server,) = pair.servers
    assert server.received.startswith(b"GET /x HTTP/1.1\r\n")
    server.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    pair.pump()
    assert pair.client.received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert pair.client.received.endswith(b"\r\n\r\nhello")
    assert "inspect; sni=www.example.com" in h.log() and "leaf=trusted CA" in h.log()


def test_the_server_opened_in_advance_is_closed_when_the_client_leaves_first(pki):
    h, pair = _inspecting(pki, "www.example.com")
    pair.pump()
    assert pair.client.failed is None and len(h.servers) == 1
    h.client.connectionLost(None)  # gone before its first request
    pair.pump()
    _server, transport = h.servers[0]
    assert h.closed and transport.disconnecting


def test_a_bypassed_name_reaches_the_server_untouched(pki):
    h, pair = _inspecting(
        pki, "bank.example.com", client_ca=pki["origin_ca"], bypass=["bank.example.com"]
    )
    pair.pump()
    # The client's handshake is with the server itself: its certificate, the origin CA's.
    assert pair.client.failed is None and _issuer(pair.client) == "origin CA"
    pair.client.send(b"ping")
    pair.pump()
    assert pair.servers[0].received == b"ping"
    assert "tunnel: bank.example.com is on the bypass list" in h.log()


def test_a_rejected_name_never_reaches_the_server(pki):
    h, pair = _inspecting(pki, "blocked.example.com", reject=["blocked.example.com"])
    pair.pump()
    assert not pair.servers and h.closed
    assert "reject: blocked.example.com is on the reject list" in h.log()


def test_a_server_that_fails_verification_gets_the_untrusted_leaf(pki):
    h, pair = _inspecting(pki, "expired.example.com", server_cert="expired")
    pair.pump()
    assert "certificate verify failed" in (pair.client.failed or "")
    assert _issuer(pair.client) == "zfw untrusted CA"
    assert "leaf=untrusted CA" in h.log() and "expired" in h.log()


class BrokenHttp(HttpProxy):
    def config(self):
        raise RuntimeError("broken policy")


def test_an_inner_proxy_whose_config_fails_ends_the_session(pki):
    """The inner proxy's config() first runs once both sides are up: its failure is
    one line, and the client, the verified server stream and the session end."""
    from tests.proxy.tls_memory import TlsPair, client_connection, server_connection
    from zfw.tls.encryption import ServerCertificateVerifier

    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=pki["zfw_ca"], untrusted_ca=pki["zfw_untrusted"]),
        ServerCertificateVerifier(ca_file=pki["origin_ca"]),
    )
    h = ProxyHarness(EncryptionProxy, DEST, encryption=enc, inner_proxy=BrokenHttp)
    d = pki["dir"]
    pair = TlsPair(
        h,
        client_connection(pki["zfw_ca"][0], "www.example.com"),
        lambda: server_connection(f"{d}/good.pem", f"{d}/good.key"),
    )
    pair.pump()
    _server, transport = h.servers[0]
    assert h.closed and h.ct.disconnecting and transport.disconnecting
    assert h.proxy.session.stats.proxy["policy_failures"] == 1
    assert "BrokenHttp config() raised RuntimeError: broken policy; refused" in h.log()


class Holder(Proxy):
    """An inner proxy that only keeps what it is handed."""

    def start(self, client, handover=None):
        self.handover = handover


def test_the_first_server_given_up_before_it_is_passed_on_is_closed(pki):
    from tests.proxy.tls_memory import TlsPair, client_connection, server_connection
    from zfw.tls.encryption import ServerCertificateVerifier

    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=pki["zfw_ca"]),
        ServerCertificateVerifier(ca_file=pki["origin_ca"]),
    )
    h = ProxyHarness(EncryptionProxy, DEST, encryption=enc, inner_proxy=Holder)
    d = pki["dir"]
    pair = TlsPair(
        h,
        client_connection(pki["zfw_ca"][0], "www.example.com"),
        lambda: server_connection(f"{d}/good.pem", f"{d}/good.key"),
    )
    pair.pump()
    inner = h.proxy.session.proxy
    assert isinstance(inner, Holder)
    got = []
    attempt = inner.handover.connect(5, got.append, got.append)
    attempt.cancel()
    h.clock.advance(0)
    _server, transport = h.servers[0]
    assert got == [] and transport.disconnecting
