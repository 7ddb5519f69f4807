"""pyOpenSSL contexts for TLS inspection, built once and shared.

- :class:`ServerSide`: zfw as the client of servers. One context per verifier
  holds the trust store (building one per connection costs milliseconds);
  verification errors are recorded per connection and judged after the
  handshake, together with the name (service_identity), so that a failed
  verification can still give the client a leaf from the untrusted CA.
- :class:`ClientSide`: zfw as the server toward clients, one context per leaf
  (kept with the leaf), so that TLS session resumption works per name.

Both: TLS 1.2 at least, no compression, no renegotiation, ALPN ``http/1.1``
only (HTTP/2 is not proxied).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import attrs
import service_identity
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from zfw.addr import is_address
from zfw.options import choice, field, optional, seconds, text

VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}
#: OpenSSL's X509_V_ERR codes zfw names in its log (others show their number).
VERIFY_ERRORS = {
    2: "unable to get the issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "unable to get the local issuer certificate",
    21: "unable to verify the first certificate",
    26: "unsuitable certificate purpose",
}
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

    errors: list[tuple[int, int]] = attrs.Factory(list)  # (depth, X509_V_ERR)
    ok: bool = False
    reason: str = ""
    certificate: x509.Certificate | None = None
    #: The server asked for a client certificate (zfw sends none).
    client_certificate_requested: bool = False

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string() if self.certificate else "-"

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string() if self.certificate else "-"

    def covers(self, host: str) -> bool:
        """Whether the certificate names ``host`` (a DNS name or an address)."""
        return self.certificate is not None and _names(self.certificate, host) is None


def _record(conn: SSL.Connection, _cert: Any, errno: int, depth: int, ok: int) -> bool:
    if not ok:
        conn.get_app_data().errors.append((depth, errno))
    return True  # go on: the verdict is made after the handshake


class ServerSide:
    """Connections toward servers, verified against ``ca_file``/``ca_directory`` (None:
    the system's store)."""

    def __init__(self, options: TlsOptions, ca_file: str | None, ca_directory: str | None):
        ctx = _base(SSL.TLS_CLIENT_METHOD, options)
        if ca_file or ca_directory:
            ctx.load_verify_locations(ca_file, ca_directory)
        else:
            ctx.set_default_verify_paths()
        ctx.set_verify(SSL.VERIFY_PEER, _record)
        ctx.set_alpn_protos([_HTTP11])
        self.context = ctx

    def connection(self, server_name: str | None) -> SSL.Connection:
        """A client connection that sends ``server_name`` (SNI) unless it is an address."""
        conn = SSL.Connection(self.context, None)
        conn.set_connect_state()
        if server_name and not is_address(server_name):
            conn.set_tlsext_host_name(server_name.encode("idna"))
        conn.set_app_data(Verification())
        return conn


def verify(conn: SSL.Connection, name: str | None, check_subject: bool) -> Verification:
    """The verdict on the server's certificate after the handshake: the chain (as
    recorded), then ``name`` (SNI, or the address) against its subjectAltNames."""
    result: Verification = conn.get_app_data()
    cert = conn.get_peer_certificate(as_cryptography=True)
    result.certificate = cert
    result.client_certificate_requested = bool(conn.get_client_ca_list())
    if cert is None:
        result.reason = "the server sent no certificate"
        return result
    if result.errors:
        depth, errno = result.errors[0]
        what = VERIFY_ERRORS.get(errno, f"verification error {errno}")
        result.reason = f"{what} (depth {depth})"
        return result
    if check_subject and name:
        mismatch = _names(cert, name)
        if mismatch is not None:
            result.reason = f"the certificate does not name {name} ({mismatch})"
            return result
    result.ok = True
    result.reason = "verified"
    return result


def _names(cert: x509.Certificate, name: str) -> str | None:
    """None if ``cert`` names ``name`` (service_identity's rules), else why not."""
    try:
        if is_address(name):
            verify_certificate_ip_address(cert, name)
        else:
            verify_certificate_hostname(cert, name)
    except (service_identity.VerificationError, service_identity.CertificateError) as e:
        return str(e)
    except ValueError:  # not a name service_identity accepts
        return "not a valid name"
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
