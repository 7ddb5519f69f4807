"""Pop3Proxy's STLS under an encryption policy, with TLS on both sides in memory."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyHarness
from tests.proxy.tls_memory import TlsEnd, TlsPair, client_connection, server_connection
from zfw.proxy.pop3 import Pop3Proxy
from zfw.tls.encryption import DynamicCertificate, ServerCertificateVerifier, TwoSidedEncryption

DEST = ("198.51.100.2", 110)


def _greeted(encryption=None):
    h = ProxyHarness(Pop3Proxy, DEST, encryption=encryption)
    h.connect()
    h.reply(b"+OK ready\r\n")
    assert h.to_client() == b"+OK ready\r\n"
    return h


def _policy(pki, **kw):
    return TwoSidedEncryption(
        DynamicCertificate(trusted_ca=pki["zfw_ca"], untrusted_ca=pki["zfw_untrusted"]),
        ServerCertificateVerifier(ca_file=pki["origin_ca"]),
        **kw,
    )


def _after_stls(pki, name="www.example.com", server_cert="good", alpn=(), **kw):
    h = _greeted(_policy(pki, **kw))
    h.send(b"STLS\r\n")
    assert h.to_server() == b"STLS\r\n"
    h.reply(b"+OK Begin TLS\r\n")
    assert h.to_client() == b"+OK Begin TLS\r\n"
    d = pki["dir"]
    pair = TlsPair(h, client_connection(pki["zfw_ca"][0], name, alpn), None)
    pair.servers.append(
        TlsEnd(server_connection(f"{d}/{server_cert}.pem", f"{d}/{server_cert}.key"))
    )
    pair.pump()
    return h, pair


def test_without_an_encryption_policy_stls_is_refused_as_before():
    h = _greeted()
    h.send(b"STLS\r\n")
    assert h.to_client().startswith(b"-ERR TLS is not available") and h.to_server() == b""


def test_capa_offers_stls_only_when_zfw_can_answer_it(pki):
    h = _greeted(_policy(pki))
    h.send(b"CAPA\r\n")
    h.to_server()
    h.reply(b"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n")
    assert h.to_client() == b"+OK\r\nUSER\r\nSTLS\r\n.\r\n"


def test_stls_is_inspected_and_the_table_applies_inside_tls(pki):
    h, pair = _after_stls(pki)
    assert pair.client.failed is None and pair.client.leaf_issuer() == "zfw test CA"
    assert "inspect (STARTTLS)" in h.log() and "verify=verified" in h.log()
    pair.client.send(b"USER zfw\r\n")
    pair.pump()
    (server,) = pair.servers
    assert server.received == b"USER zfw\r\n"
    server.send(b"+OK\r\n")
    pair.client.send(b"AUTH PLAIN\r\n")
    pair.pump()
    assert pair.client.received == b"+OK\r\n-ERR Use USER and PASS.\r\n"
    assert server.received == b"USER zfw\r\n"  # AUTH never reached it
    pair.client.send(b"STLS\r\n")
    pair.pump()
    assert pair.client.received.endswith(b"-ERR Already in TLS.\r\n")


def test_a_server_that_fails_verification_gets_the_untrusted_leaf(pki):
    h, pair = _after_stls(pki, "expired.example.com", server_cert="expired")
    assert pair.client.leaf_issuer() == "zfw untrusted CA"
    assert "leaf=untrusted CA" in h.log()


def test_a_rejected_name_closes_the_session(pki):
    h, pair = _after_stls(pki, "blocked.example.com", reject=["blocked.example.com"])
    assert h.closed and "blocked.example.com is on the reject list" in h.log()
    assert pair.servers[0].received == b""


@pytest.mark.parametrize("after", [b"USER evil\r\n", b"US"])
def test_a_command_pipelined_after_stls_is_a_violation(pki, after):
    # It would be taken as sent inside TLS (the STARTTLS command injection).
    h = _greeted(_policy(pki))
    h.send(b"STLS\r\n" + after)
    h.reply(b"+OK Begin TLS\r\n")
    assert h.closed and "STLS: more came after it before TLS" in h.log()


def test_alpn_is_not_https_business_at_stls(pki):
    # h2_only is about HTTP: a POP3 client offering ALPN "pop3" is inspected.
    h, pair = _after_stls(pki, alpn=(b"pop3",))
    assert pair.client.failed is None and "inspect (STARTTLS)" in h.log()
