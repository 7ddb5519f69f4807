"""zfw.tls.stream: the stream contract through TLS, on an in-memory pipe; verification."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from zfw.tls import openssl_compat
from zfw.tls.certs import CertificateAuthority, LeafMinter, create_ca
from zfw.tls.contexts import ClientSide, ServerSide, TlsOptions, verify
from zfw.tls.stream import TlsStream


class Pipe:
    """One end of an in-memory connection that implements the stream contract."""

    def __init__(self, side: str):
        self.side = side
        self.other: Pipe | None = None
        self.received = 0
        self.lost = False
        self.paused = False
        self.closed = self.half_closed = self.aborted = False
        self.on_data = self.on_eof = self.on_write_closed = self.on_lost = lambda *a: None

    def write(self, data: bytes) -> None:
        assert self.other is not None and not self.half_closed
        self.other.received += len(data)
        self.other.on_data(data)

    def half_close(self) -> None:
        self.half_closed = True
        self.other.on_eof(self.other)

    def close(self, drained: bool = False) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.lost = True
        self.on_lost(self, "aborted")

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    producer = None

    def throttle(self, producer) -> None:
        pass

    def unthrottle(self) -> None:
        pass

    peer = ("192.0.2.2", 40000)
    local = ("198.51.100.2", 443)


@pytest.fixture(autouse=True, params=["fast", "public"])
def data_path(request):
    """Every test on both of openssl_compat's ways through pyOpenSSL."""
    openssl_compat.use(
        openssl_compat.FastIO() if request.param == "fast" else openssl_compat.PublicIO()
    )
    yield request.param
    openssl_compat.use(None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.load(*create_ca(str(d / "ca"), "zfw test CA"))
    with open(d / "ca" / "ca.pem", "rb") as f:
        ca_pem = f.read()
    return ca, str(d / "ca" / "ca.pem"), ca_pem


def connected(pki, name="www.example.com", sni="www.example.com"):
    ca, ca_file, _ = pki
    minter = LeafMinter()
    leaf = minter.named(ca, [name])
    a, b = Pipe("client"), Pipe("server")
    a.other, b.other = b, a
    events = []
    server = TlsStream(
        b,
        ClientSide(TlsOptions()).connection(leaf, minter.key),
        lambda s: events.append("server up"),
        lambda s, why: events.append(f"server failed: {why}"),
    )
    side = ServerSide(TlsOptions(), ca_file, None)
    client = TlsStream(
        a,
        side.connection(sni),
        lambda s: events.append("client up"),
        lambda s, why: events.append(f"client failed: {why}"),
    )
    client.start()
    return client, server, events


def test_a_handshake_then_data_both_ways_and_close_notify(pki):
    client, server, events = connected(pki)
    assert events == ["server up", "client up"] or events == ["client up", "server up"]
    assert client.version in ("TLSv1.3", "TLSv1.2") and client.cipher != "-"
    got = []
    server.on_data = got.append
    client.write(b"GET / HTTP/1.1\r\n\r\n" * 1000)
    assert b"".join(got) == b"GET / HTTP/1.1\r\n\r\n" * 1000
    assert server.received == len(b"".join(got))
    back = []
    client.on_data = back.append
    server.write(b"x" * 200_000)
    assert b"".join(back) == b"x" * 200_000
    eofs = []
    server.on_eof = eofs.append
    client.half_close()  # close_notify, then the FIN below
    assert eofs == [server] and client.inner.half_closed


def test_verification_of_the_chain_and_of_the_name(pki):
    client, _server, _ = connected(pki)
    result = verify(client.tls, "www.example.com", check_subject=True)
    assert result.ok and result.reason == "verified"
    assert "zfw test CA" in result.issuer
    client, _server, _ = connected(pki, name="other.example.com", sni="www.example.com")
    result = verify(client.tls, "www.example.com", check_subject=True)
    assert not result.ok and "name www.example.com not in the certificate" in result.reason
    assert verify(client.tls, "www.example.com", check_subject=False).ok


def test_covers_names_the_certificates_hosts_wildcards_included(pki):
    client, _server, _ = connected(pki, name="*.cdn.example.com", sni="a.cdn.example.com")
    result = verify(client.tls, "a.cdn.example.com", check_subject=True)
    assert result.ok
    assert result.covers("b.cdn.example.com")
    assert not result.covers("cdn.example.com") and not result.covers("x.b.cdn.example.com")
    assert not result.covers("www.example.com") and not result.covers("198.51.100.2")
    assert not result.covers("not a name")


def test_an_unknown_issuer_is_recorded_not_fatal(pki, tmp_path):
    other = CertificateAuthority.load(*create_ca(str(tmp_path / "other"), "another CA"))
    minter = LeafMinter()
    leaf = minter.named(other, ["www.example.com"])
    a, b = Pipe("client"), Pipe("server")
    a.other, b.other = b, a
    TlsStream(b, ClientSide(TlsOptions()).connection(leaf, minter.key))
    up = []
    client = TlsStream(
        a, ServerSide(TlsOptions(), pki[1], None).connection("www.example.com"), up.append
    )
    client.start()
    assert up  # the handshake completes: the verdict comes after it
    result = verify(client.tls, "www.example.com", True)
    assert not result.ok and "unknown issuer" in result.reason


def test_garbage_fails_the_handshake_and_aborts_below():
    b = Pipe("server")
    failures = []
    conn = SSL.Connection(SSL.Context(SSL.TLS_SERVER_METHOD), None)
    conn.set_accept_state()
    tls = TlsStream(b, conn, on_failed=lambda s, why: failures.append(why))
    b.other = Pipe("client")
    b.other.other = b
    tls.start(b"\x16\x03\x01\x00\x05hello, not TLS")
    assert failures and failures[0].startswith("handshake failed") and b.aborted


def test_contexts_hold_no_record_buffers_while_idle(pki):
    """MODE_RELEASE_BUFFERS (set where both sides' contexts are made): an idle inspected
    connection keeps none."""
    context = ServerSide(TlsOptions(), pki[1], None).context
    assert context.set_mode(0) & SSL.MODE_RELEASE_BUFFERS  # (0: asks, changes nothing)
