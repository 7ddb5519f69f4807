"""pyOpenSSL contexts for TLS inspection, built once and shared.

- :class:`ServerSide`: zfw as the client of servers. One context and one store
  of trusted roots per verifier (building them per connection costs
  milliseconds); OpenSSL does not judge the server's certificate: after the
  handshake :func:`verify` hands the peer's chain to
  :func:`zfw.tls.verify.verify_with`, so that a failed verification can still
  give the client a leaf from the untrusted CA. TLS 1.2 key exchange is
  (EC)DHE only (no RSA key transport, as browsers), so the server's key signs.
- :class:`ClientSide`: zfw as the server toward clients, one context per leaf
  (kept with the leaf), so that TLS session resumption works per name.

Both: TLS 1.2 at least, no compression, no renegotiation, ALPN ``http/1.1``
only (HTTP/2 is not proxied).
"""

from __future__ import annotations

import datetime
import os
import re
import ssl
import warnings
from collections import OrderedDict
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.utils import CryptographyDeprecationWarning
from OpenSSL import SSL, crypto

from zfw.addr import is_address
from zfw.options import choice, field, optional, seconds, text
from zfw.tls.names import normal
from zfw.tls.verify import Roots, covers, shown, verify_with

VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}
_HTTP11 = b"http/1.1"


@attrs.frozen
class TlsOptions:
    """Settings both sides share; every one has a safe default."""

    min_version: str = field(
        choice(tuple(VERSIONS)),
        "TLSv1.2",
        "the lowest TLS version accepted, toward clients and servers",
    )
    ciphers: str | None = field(
        optional(text()), None, "OpenSSL cipher list for TLS 1.2 (None: OpenSSL's defaults)"
    )
    handshake_timeout: float = field(
        seconds(), 10.0, "seconds for the handshakes of a session (both sides, and the ClientHello)"
    )
    h2_only: str = field(
        choice(("reject", "inspect", "tunnel")),
        "reject",
        "a client whose ALPN offers protocols but not `http/1.1` (HTTP/2 only, which zfw does "
        'not proxy): `"reject"` (closed before anything reaches the server), `"tunnel"` '
        '(relayed blindly, not inspected) or `"inspect"` (no ALPN answer; HTTP/1.1 or nothing)',
    )


def _base(method: int, options: TlsOptions) -> SSL.Context:
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(VERSIONS[options.min_version])
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    # Record buffers only while a record is in flight, as nginx does: an idle connection
    # holds none (two of about 17 KiB each otherwise).
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if options.ciphers:
        ctx.set_cipher_list(options.ciphers.encode("ascii"))
    return ctx


@attrs.define
class Verification:
    """What zfw found of a server's certificate."""

    ok: bool = False
    reason: str = ""
    certificate: x509.Certificate | None = None
    #: The server asked for a client certificate (zfw sends none).
    client_certificate_requested: bool = False
    #: What the certificate is verified against (the connection's ServerSide's).
    roots: Roots | None = attrs.field(default=None, repr=False)

    @property
    def subject(self) -> str:
        return _dn(self.certificate, "subject")

    @property
    def issuer(self) -> str:
        return _dn(self.certificate, "issuer")

    def covers(self, host: str) -> bool:
        """Whether the certificate names ``host`` (a DNS name or an address)."""
        return self.certificate is not None and covers(self.certificate, host)


def _dn(cert: x509.Certificate | None, which: str) -> str:
    if cert is None:
        return "-"
    try:
        return shown(getattr(cert, which).rfc4514_string(), 200)
    except Exception:  # a hostile certificate
        return "(unreadable)"


def load_roots(ca_file: str | None, ca_directory: str | None) -> list[x509.Certificate]:
    """The certificates of ``ca_file`` and of every file in ``ca_directory`` (c_rehash
    form: the hash links and the files they name count once); neither: the system's
    store (OpenSSL's default file, else its default directory). Files that hold no
    PEM certificate are passed over."""
    if not (ca_file or ca_directory):
        paths = ssl.get_default_verify_paths()
        if paths.cafile:
            ca_file = paths.cafile
        else:
            ca_directory = paths.capath
    found: dict[bytes, x509.Certificate] = {}
    files = [ca_file] if ca_file else []
    if ca_directory and os.path.isdir(ca_directory):
        files += [os.path.join(ca_directory, n) for n in sorted(os.listdir(ca_directory))]
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for block in _PEM.findall(data):  # one by one: a bad CA does not hide the others
            try:
                with warnings.catch_warnings():  # (a system CA with a negative serial)
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    cert = x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            found.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    return list(found.values())


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class ServerSide:
    """Connections toward servers, verified against ``ca_file``/``ca_directory`` (None:
    the system's store)."""

    def __init__(self, options: TlsOptions, ca_file: str | None, ca_directory: str | None):
        ctx = _base(SSL.TLS_CLIENT_METHOD, options)
        if not options.ciphers:
            ctx.set_cipher_list(b"DEFAULT:!kRSA")
        ctx.set_verify(SSL.VERIFY_NONE)  # judged after the handshake, by verify()
        ctx.set_alpn_protos([_HTTP11])
        self.context = ctx
        self.roots = Roots(load_roots(ca_file, ca_directory))

    def connection(self, server_name: str | None) -> SSL.Connection:
        """A client connection that sends ``server_name`` (SNI) unless it is an address."""
        conn = SSL.Connection(self.context, None)
        conn.set_connect_state()
        if server_name and not is_address(server_name):
            conn.set_tlsext_host_name(normal(server_name).encode("idna"))
        conn.set_app_data(Verification(roots=self.roots))
        return conn


def verify(conn: SSL.Connection, name: str | None, check_subject: bool) -> Verification:
    """The verdict on the server's certificate after the handshake: the chain it sent,
    against the ServerSide's roots, for ``name`` (SNI, or the address; with
    ``check_subject``), by :func:`zfw.tls.verify.verify_with`."""
    result: Verification = conn.get_app_data()
    result.client_certificate_requested = bool(conn.get_client_ca_list())
    sent = conn.get_peer_cert_chain() or []  # the leaf first
    cert = _readable(sent[0]) if sent else None
    result.certificate = cert
    if cert is None:
        why = "cannot be read" if sent else "was not sent"
        result.reason = f"the server's certificate {why}"
        return result
    intermediates = [c for c in map(_readable, sent[1:]) if c is not None]
    at = datetime.datetime.now(datetime.UTC)
    assert result.roots is not None
    verdict = verify_with(cert, intermediates, result.roots, name, at, check_name=check_subject)
    result.ok = verdict.ok
    result.reason = "verified" if verdict.ok else verdict.reason
    return result


def _readable(cert: crypto.X509) -> x509.Certificate | None:
    try:
        return cert.to_cryptography()
    except Exception:  # a certificate OpenSSL took and cryptography does not
        return None


def _alpn(_conn: SSL.Connection, offered: list[bytes]) -> bytes | object:
    return _HTTP11 if _HTTP11 in offered else SSL.NO_OVERLAPPING_PROTOCOLS


class ClientSide:
    """Contexts toward clients, one per leaf (a bounded cache)."""

    def __init__(self, options: TlsOptions, max_cached: int = 4096):
        self.options = options
        self.max_cached = max_cached
        self._contexts: OrderedDict[bytes, SSL.Context] = OrderedDict()

    def connection(self, cert: x509.Certificate, key: Any, chain: tuple = ()) -> SSL.Connection:
        """A server connection presenting ``cert`` (and ``chain``) with ``key``."""
        fp = cert.fingerprint(hashes.SHA256())
        ctx = self._contexts.get(fp)
        if ctx is None:
            ctx = _base(SSL.TLS_SERVER_METHOD, self.options)
            ctx.use_certificate(cert)
            for extra in chain:
                ctx.add_extra_chain_cert(extra)
            ctx.use_privatekey(key)
            ctx.set_alpn_select_callback(_alpn)
            ctx.set_session_id(b"zfw")
            self._contexts[fp] = ctx
            if len(self._contexts) > self.max_cached:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(fp)
        conn = SSL.Connection(ctx, None)
        conn.set_accept_state()
        return conn
