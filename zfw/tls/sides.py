"""TLS on a stream a proxy already holds, for either side: verified TLS to a server,
the leaf a client sees, and TLS with the client. EncryptionProxy uses them when a
session starts; a STARTTLS proxy (Pop3Proxy's STLS) calls them mid-session.

They take a :class:`~zfw.stream.Stream` and an encryption policy
(:mod:`zfw.tls.encryption`) and answer through callbacks; no Twisted here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zfw.stream import Stream
from zfw.tls.contexts import Verification, verify
from zfw.tls.encryption import DynamicCertificate
from zfw.tls.stream import TlsStream


@dataclass(frozen=True)
class Leaf:
    """What the client is shown: a certificate, its key, the chain sent with it, and
    who signed it (``trusted CA``, ``untrusted CA`` or ``static``), for the log."""

    certificate: Any
    key: Any
    chain: tuple
    signer: str


def server_tls(
    stream: Stream,
    encryption: Any,
    name: str | None,
    address: str,
    on_ready: Callable[[TlsStream], object],
    on_failed: Callable[[str], object],
) -> TlsStream:
    """Start TLS as the client on ``stream`` (connected to the server), sending ``name``
    (SNI; None: none). Once the handshake is done, the server's certificate is
    verified by ``encryption.verifier`` against ``name``, else ``address``; the
    verdict is the TlsStream's ``verification`` when ``on_ready`` is called (a
    failed verification is for the caller to act on). ``on_failed(reason)``: the
    handshake failed."""
    verifier = encryption.verifier
    side = verifier.side(encryption.options)

    def handshaken(tls: TlsStream) -> None:
        tls.verification = verify(tls.tls, name or address, verifier.check_subject)
        on_ready(tls)

    tls = TlsStream(stream, side.connection(name), handshaken, lambda _t, why: on_failed(why))
    tls.start()
    return tls


def static_leaf(encryption: Any, sni: str | None) -> Leaf | None:
    """The policy's own certificate for ``sni`` (Static or SNIBased), or None."""
    chosen = encryption.certificates.choose(sni)
    if chosen is None:
        return None
    return Leaf(chosen.certificate, chosen.key, chosen.chain, "static")


def client_leaf(encryption: Any, verification: Verification, sni: str | None) -> Leaf | None:
    """The leaf the client gets after the server's ``verification``, or None: refused.

    With a DynamicCertificate it mirrors the server's certificate, signed by the
    trusted CA when the server verified (or ``permit_invalid``), else by the
    untrusted CA (None: refused); a static certificate only for a verified server."""
    certs = encryption.certificates
    trusted = verification.ok or encryption.verifier.permit_invalid
    if not isinstance(certs, DynamicCertificate):
        return static_leaf(encryption, sni) if trusted else None
    ca = certs.trusted if trusted else certs.untrusted
    if ca is None:
        return None
    leaf = certs.minter.mirror(ca, verification.certificate, sni)
    return Leaf(leaf, certs.minter.key, (), "trusted CA" if trusted else "untrusted CA")


def client_tls(
    stream: Stream,
    encryption: Any,
    leaf: Leaf,
    on_ready: Callable[[TlsStream], object],
    on_failed: Callable[[TlsStream, str], object],
    received: bytes = b"",
) -> TlsStream:
    """Start TLS as the server on ``stream`` (the client's) with ``leaf``; ``received``:
    the client's bytes already read (its ClientHello)."""
    conn = encryption.client_side.connection(leaf.certificate, leaf.key, leaf.chain)
    tls = TlsStream(stream, conn, on_ready, on_failed)
    tls.start(received)
    return tls
