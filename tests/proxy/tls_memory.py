"""TLS on both sides of a proxy in memory: a pyOpenSSL client and server on memory
BIOs around a :class:`~tests.proxy.harness.ProxyHarness`. No sockets, no reactor:
:meth:`TlsPair.pump` moves bytes until nothing moves."""

from __future__ import annotations

import contextlib

from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from tests.proxy.harness import ProxyHarness


def client_connection(ca_file: str, name: str | None, alpn: tuple = ()) -> SSL.Connection:
    """A verifying TLS client (as curl is) trusting ``ca_file``, sending ``name`` (and
    ``alpn``, the protocols it offers)."""
    seen: list = []

    def check(_conn, cert, _errno, depth, ok):
        if depth == 0:
            seen.append(cert.to_cryptography())
        return ok

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(ca_file)
    ctx.set_verify(SSL.VERIFY_PEER, check)
    conn = SSL.Connection(ctx, None)
    conn.set_app_data(seen)  # the leaf shown, also when it failed verification
    if alpn:
        conn.set_alpn_protos(list(alpn))
    if name:
        conn.set_tlsext_host_name(name.encode())
    conn.set_connect_state()
    return conn


def server_connection(cert_file: str, key_file: str) -> SSL.Connection:
    """A TLS server with ``cert_file``."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_chain_file(cert_file)
    ctx.use_privatekey_file(key_file)
    conn = SSL.Connection(ctx, None)
    conn.set_accept_state()
    return conn


class TlsEnd:
    """One end on a memory BIO: its handshake, plaintext in and out."""

    def __init__(self, conn: SSL.Connection):
        self.conn = conn
        self.received = b""
        self.failed: str | None = None
        self.outgoing = b""

    def step(self) -> bytes:
        """Advance; the ciphertext to send."""
        if self.failed is None:
            try:
                self.conn.do_handshake()
                with contextlib.suppress(SSL.WantReadError):
                    while True:
                        self.received += self.conn.recv(65536)
                if self.outgoing:
                    self.conn.sendall(self.outgoing)
                    self.outgoing = b""
            except SSL.WantReadError:
                pass
            except (SSL.Error, SSL.ZeroReturnError) as e:
                self.failed = repr(e)
        out = b""
        with contextlib.suppress(SSL.WantReadError):
            while chunk := self.conn.bio_read(65536):
                out += chunk
        return out

    def feed(self, data: bytes) -> None:
        if data:
            self.conn.bio_write(data)

    def send(self, data: bytes) -> None:
        self.outgoing += data

    def leaf_issuer(self) -> str | None:
        """The CN of the issuer of the leaf this client was shown."""
        seen = self.conn.get_app_data()
        if not seen:
            return None
        (cn,) = seen[-1].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cn.value


class TlsPair:
    """``client`` (a TlsEnd) toward the proxy of ``h``; each server connection the
    proxy opens is answered by a TlsEnd from ``make_server()`` (``servers``)."""

    def __init__(self, h: ProxyHarness, client: SSL.Connection, make_server):
        self.h = h
        self.client = TlsEnd(client)
        self.make_server = make_server
        self.servers: list[TlsEnd] = []

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            out = self.client.step()
            if out and not self.h.client.lost:
                self.h.send(out)
                moved = True
            self.h.clock.advance(0)
            while self.h.pending:
                self.h.connect()
                self.servers.append(TlsEnd(self.make_server()))
                moved = True
            for n, server in enumerate(self.servers):
                server.feed(self.h.to_server(n))
                out = server.step()
                if out:
                    self.h.reply(out, n)
                    moved = True
            back = self.h.to_client()
            if back:
                self.client.feed(back)
                moved = True
            if not moved:
                return
