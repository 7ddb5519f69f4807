"""Encryption policies, as a policy names them (in the manner of Zorp's): which side
of a session is TLS, which certificate the client sees, how the server is verified,
and which names are tunnelled blindly or refused.

``Service(name, HttpProxy, encryption=TwoSidedEncryption(...))``: the proxy sees
plaintext only. Files are read when the policy loads, so a missing CA or a key
that others may read is a mistake at the policy's line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from zfw.errors import PolicyError
from zfw.options import (
    Kind,
    argument,
    arguments,
    boolean,
    choice,
    function,
    instance_of,
    integer,
    names,
    optional,
    text,
)
from zfw.policyfiles import LIST, WRITE, policy_file
from zfw.tls.certs import (
    CertificateAuthority,
    CertificateError,
    LeafMinter,
    load_certificate,
    load_key,
)
from zfw.tls.contexts import ClientSide, ServerSide, TlsOptions
from zfw.tls.decision import ACTIONS, INSPECT, Rules, decide, inspection_rules
from zfw.tls.names import matches, pattern_error

__all__ = [
    "ClientOnlyEncryption",
    "DynamicCertificate",
    "SNIBasedCertificate",
    "ServerCertificateVerifier",
    "ServerOnlyEncryption",
    "StaticCertificate",
    "TlsOptions",
    "TwoSidedEncryption",
]


def _loaded(what: Callable[[], Any]) -> Any:
    try:
        return what()
    except CertificateError as e:
        raise PolicyError(str(e)) from None


def _file_pair() -> Kind:
    return Kind(
        "a (certificate_file, key_file) pair",
        lambda v: (
            isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(f, str) and f for f in v)
        ),
    )


def _by_name(v: object) -> bool | str:
    if not isinstance(v, Mapping):
        return False
    for name, cert in v.items():
        if pattern_error(name):
            return str(pattern_error(name))
        if not isinstance(cert, StaticCertificate):
            return f"{name!r} maps to {cert!r}, not a StaticCertificate"
    return True


@arguments(
    ca_file=argument(optional(text()), "PEM file of the CAs servers are verified against"),
    ca_directory=argument(optional(text()), "directory of CAs (OpenSSL's c_rehash form)"),
    check_subject=argument(boolean(), "the certificate must name what the client asked for"),
    permit_invalid=argument(
        boolean(), "accept a certificate that fails (a known internal server only)"
    ),
)
class ServerCertificateVerifier:
    """How zfw verifies servers: the chain against ``ca_file``/``ca_directory`` (default:
    the system's store) and, with ``check_subject``, the name the client asked for
    (SNI, else the address). ``permit_invalid``: accept a certificate that fails (the
    client then gets a trusted leaf: use for a known internal server only)."""

    def __init__(
        self,
        ca_file: str | None = None,
        ca_directory: str | None = None,
        check_subject: bool = True,
        permit_invalid: bool = False,
    ):
        if ca_file is not None:
            ca_file = policy_file(ca_file)
            _loaded(lambda: load_certificate(ca_file))
        self.ca_file = ca_file
        self.ca_directory = ca_directory and policy_file(ca_directory, LIST)
        self.check_subject = check_subject
        self.permit_invalid = permit_invalid
        self._side: ServerSide | None = None

    def side(self, options: TlsOptions) -> ServerSide:
        """The shared context (made on first use)."""
        if self._side is None:
            self._side = ServerSide(options, self.ca_file, self.ca_directory)
        return self._side


@arguments(
    certificate_file=argument(text(), "PEM certificate, then its chain"),
    private_key_file=argument(text(), "PEM private key (mode 600)"),
)
class StaticCertificate:
    """One certificate (and chain) from ``certificate_file`` with ``private_key_file``."""

    def __init__(self, certificate_file: str, private_key_file: str):
        certificate_file = policy_file(certificate_file)
        private_key_file = policy_file(private_key_file)
        self.certificate = _loaded(lambda: load_certificate(certificate_file))
        self.key = _loaded(lambda: load_key(private_key_file))
        self.chain = _loaded(lambda: _chain(certificate_file))

    def choose(self, name: str | None) -> StaticCertificate | None:
        return self


@arguments(
    certificates=argument(
        Kind("a dict of names or '*.domain' patterns to StaticCertificate", _by_name),
        "the certificate for each name",
    ),
    default=argument(
        optional(Kind("a StaticCertificate", lambda v: isinstance(v, StaticCertificate))),
        "for other names (None: refused)",
    ),
)
class SNIBasedCertificate:
    """A :class:`StaticCertificate` chosen by the name the client asked for: keys are
    names or ``*.example.com`` patterns; ``default`` for other names (None: refused)."""

    def __init__(
        self,
        certificates: Mapping[str, StaticCertificate],
        default: StaticCertificate | None = None,
    ):
        self.certificates = dict(certificates)
        self.default = default

    def choose(self, name: str | None) -> StaticCertificate | None:
        for pattern, cert in self.certificates.items():
            if matches(name, (pattern,)):
                return cert
        return self.default


@arguments(
    trusted_ca=argument(_file_pair(), "CA that signs leaves of verified servers"),
    untrusted_ca=argument(optional(_file_pair()), "CA that signs the others (None: refused)"),
    cache_directory=argument(optional(text()), "leaves kept across restarts"),
    max_cached=argument(integer(0), "leaves kept in memory"),
)
class DynamicCertificate:
    """The keybridge: leaves that mirror the server's certificate, signed by
    ``trusted_ca`` when it verified and by ``untrusted_ca`` when it did not (the client
    sees an error, as it would without zfw; None: the session is refused). Each CA is a
    ``(certificate_file, key_file)`` pair; ``zfw ca create DIR`` makes one.
    ``cache_directory``: leaves (and their key) kept across restarts."""

    def __init__(
        self,
        trusted_ca: tuple[str, str],
        untrusted_ca: tuple[str, str] | None = None,
        cache_directory: str | None = None,
        max_cached: int = 4096,
    ):
        trusted_ca = _ca_files(trusted_ca)
        self.trusted = _loaded(lambda: CertificateAuthority.load(*trusted_ca))
        if untrusted_ca:
            untrusted_ca = _ca_files(untrusted_ca)
        self.untrusted = (
            _loaded(lambda: CertificateAuthority.load(*untrusted_ca)) if untrusted_ca else None
        )
        cache_directory = cache_directory and policy_file(cache_directory, WRITE)
        self.cache_directory = cache_directory
        self.minter = _loaded(lambda: LeafMinter(max_cached, cache_directory))


def _ca_files(pair: tuple[str, str]) -> tuple[str, str]:
    """A CA's ``(certificate_file, key_file)``, resolved against the policy's directory."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise PolicyError(f"a CA is a (certificate_file, key_file) pair, not {pair!r}")
    return policy_file(pair[0]), policy_file(pair[1])


class _Encryption:
    """What the three kinds share."""

    #: Whether the client side, the server side is TLS.
    client_tls = True
    server_tls = True
    #: A client whose first bytes are not TLS: refused, or tunnelled (PlugProxy); only
    #: TwoSided offers the choice (a plain server would get what no proxy checked).
    pass_through = "refuse"

    def __init__(self, options: TlsOptions | None):
        options = options or TlsOptions()
        choices = ("reject", "inspect", "tunnel") if self.server_tls else ("reject", "inspect")
        if options.h2_only not in choices:
            raise PolicyError(f"h2_only must be {', '.join(choices[:-1])} or {choices[-1]}")
        self.options = options
        self.client_side = ClientSide(options)

    def rules(self) -> Rules:
        """What decides a ClientHello (:mod:`zfw.tls.decision`): here ALPN alone."""
        return Rules(no_sni=INSPECT, h2_only=self.options.h2_only)

    def decide(self, hello: Any, http: bool = True) -> tuple[str, str]:
        """``(inspect|tunnel|reject, why)`` for a ClientHello; ``http``: HTTP inside, so
        that ALPN decides as ``h2_only`` says (False, as at a STARTTLS: ALPN decides
        nothing)."""
        rules = self.rules()
        if not http:
            rules = replace(rules, h2_only=None)
        decision = decide(hello, rules)
        return decision.action, decision.reason


_OPTIONS = argument(optional(instance_of(TlsOptions)), "TlsOptions (None: defaults)")
_PASS_THROUGH = argument(
    choice(("refuse", "tunnel")),
    'when the client\'s first bytes are not TLS (an SSH banner ...): `"refuse"` them, or '
    '`"tunnel"` them to the server unchanged as PlugProxy does (logged and counted)',
)
_VERIFY = argument(
    optional(instance_of(ServerCertificateVerifier)),
    "how servers are verified (None: the system's CAs)",
)


@arguments(
    client_certificate_generator=argument(
        instance_of(DynamicCertificate, StaticCertificate, SNIBasedCertificate),
        "the certificate the client sees",
    ),
    server_verify=_VERIFY,
    bypass=argument(names(), "names tunnelled blindly (never decrypted)"),
    reject=argument(names(), "names refused before anything reaches the server"),
    decide=argument(optional(function()), "`decide(hello)` returns inspect, tunnel or reject"),
    allow_no_sni=argument(boolean(), "inspect a ClientHello without a name"),
    options=_OPTIONS,
    pass_through=_PASS_THROUGH,
)
class TwoSidedEncryption(_Encryption):
    """TLS from the client terminated with a certificate zfw chooses or makes; TLS to the
    server verified. ``bypass``: names tunnelled blindly (never decrypted);
    ``reject``: names refused before anything reaches the server; ``decide(hello)``,
    if given, returns ``"inspect"``, ``"tunnel"`` or ``"reject"`` instead of the lists.
    A ClientHello without a name is inspected unless ``allow_no_sni`` is False."""

    def __init__(
        self,
        client_certificate_generator: DynamicCertificate | StaticCertificate | SNIBasedCertificate,
        server_verify: ServerCertificateVerifier | None = None,
        bypass: tuple[str, ...] | list[str] = (),
        reject: tuple[str, ...] | list[str] = (),
        decide: Callable[[Any], str] | None = None,
        allow_no_sni: bool = True,
        options: TlsOptions | None = None,
        pass_through: str = "refuse",
    ):
        super().__init__(options)
        self.pass_through = pass_through
        self.certificates = client_certificate_generator
        self.verifier = server_verify or ServerCertificateVerifier()
        self.bypass = tuple(bypass)
        self.reject = tuple(reject)
        self.decide_hook = decide
        self.allow_no_sni = allow_no_sni

    def rules(self) -> Rules:
        """``reject``, then ``bypass``, then a hello without a name, then ALPN."""
        return inspection_rules(self.reject, self.bypass, self.allow_no_sni, self.options.h2_only)

    def decide(self, hello: Any, http: bool = True) -> tuple[str, str]:
        """``(inspect|tunnel|reject, why)`` for a ClientHello (``http``: as above)."""
        if self.decide_hook is not None:
            choice = self.decide_hook(hello)
            if choice not in ACTIONS:
                raise ValueError(f"decide() returned {choice!r}, not inspect, tunnel or reject")
            return choice, "by decide()"
        return super().decide(hello, http)


@arguments(
    client_certificate_generator=argument(
        instance_of(StaticCertificate, SNIBasedCertificate),
        "the certificate the client sees",
    ),
    options=_OPTIONS,
)
class ClientOnlyEncryption(_Encryption):
    """TLS offload: TLS from the client terminated with ``client_certificate_generator``
    (a StaticCertificate or SNIBasedCertificate), plain toward the server."""

    server_tls = False

    def __init__(
        self,
        client_certificate_generator: StaticCertificate | SNIBasedCertificate,
        options: TlsOptions | None = None,
    ):
        super().__init__(options)
        self.certificates = client_certificate_generator


@arguments(
    server_verify=_VERIFY,
    server_name=argument(optional(text()), "the name sent (SNI) and verified (None: the address)"),
    options=_OPTIONS,
)
class ServerOnlyEncryption(_Encryption):
    """Plain from the client, TLS toward the server, verified by ``server_verify``;
    ``server_name``: the name sent (SNI) and verified (None: the server's address)."""

    client_tls = False

    def __init__(
        self,
        server_verify: ServerCertificateVerifier | None = None,
        server_name: str | None = None,
        options: TlsOptions | None = None,
    ):
        super().__init__(options)
        self.verifier = server_verify or ServerCertificateVerifier()
        self.server_name = server_name


def _chain(path: str) -> tuple:
    """The certificates after the first in a PEM file (the chain to send with it)."""
    from cryptography import x509

    with open(path, "rb") as f:
        certs = x509.load_pem_x509_certificates(f.read())
    return tuple(certs[1:])
