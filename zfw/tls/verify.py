"""The one verdict on a server's certificate: pure and synchronous, no I/O.

:func:`verify_with` is what zfw uses for every server certificate under
inspection (through :func:`zfw.tls.contexts.verify`, with the roots made into a
store once); :func:`verify_server` is the same for a list of roots. The chain
and the name are checked by cryptography's verifier
(``cryptography.x509.verification``: the Web PKI rules browsers apply, no
common-name fallback), then what OpenSSL and that verifier leave out and
browsers check: a keyUsage that does not allow digitalSignature (with (EC)DHE,
the key exchanges zfw offers servers unless ``TlsOptions.ciphers`` says
otherwise, the key signs). Names compare
without a trailing dot. A certificate that cannot be parsed is refused, never
raised. A refusal's ``reason`` says what was wrong in words ("expired on
2026-01-02", "unknown issuer CN=Foo CA", ...).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from zfw.tls.names import normal

#: Names shown in a reason, at most.
_SHOWN_NAMES = 5


@attrs.frozen
class Verdict:
    """Whether a server's certificate is accepted and, if not, why."""

    ok: bool
    reason: str  # "" when ok; otherwise words an administrator can act on


class Roots:
    """Trusted CA certificates, made into a store once (a store of the system's 150
    roots costs more than a verification)."""

    def __init__(self, roots: Sequence[x509.Certificate]):
        self.certificates = tuple(roots)
        self.subjects = {_subject(c) for c in self.certificates}
        self.store = verification.Store(list(self.certificates)) if self.certificates else None


def verify_server(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    name: str | None,
    at: datetime.datetime,
    *,
    check_name: bool = True,
) -> Verdict:
    """The verdict on ``leaf`` (with ``intermediates`` as the server sent them) for TLS
    server use at ``at``, trusting ``roots``; ``name`` (a DNS name or an address; None:
    not checked) must be among its subjectAltNames."""
    return verify_with(leaf, intermediates, Roots(roots), name, at, check_name=check_name)


def verify_with(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Roots,
    name: str | None,
    at: datetime.datetime,
    *,
    check_name: bool = True,
) -> Verdict:
    """:func:`verify_server` with the roots made into a store already."""
    unreadable = _unreadable(leaf)
    if unreadable:
        return Verdict(False, f"the certificate cannot be used: {unreadable}")
    try:
        return _verify(leaf, list(intermediates), roots, name, at, check_name)
    except Exception as e:  # a hostile certificate may break any parser: refused, not raised
        return Verdict(False, f"the certificate cannot be used: {shown(str(e), 120)}")


def _verify(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: Roots,
    name: str | None,
    at: datetime.datetime,
    check_name: bool,
) -> Verdict:
    if roots.store is None:
        return Verdict(False, "no trusted CAs to verify against")
    name = normal(name) if name and check_name else None
    try:
        subject = _subject_name(name) if name else _own_name(leaf)
    except ValueError:
        return Verdict(False, f"{shown(name or '', 80)} is not a DNS name or an address")
    if subject is None:
        return Verdict(False, "the certificate names no DNS name or address (subjectAltName)")
    naive = at.astimezone(datetime.UTC).replace(tzinfo=None)
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(roots.store)
            .time(naive)
            .build_server_verifier(subject)
        )
    except ValueError:  # such as a_b.example.com: an underscore is no DNS name
        if name is None:
            return Verdict(False, "the certificate's first name is not a DNS name")
        return Verdict(False, f"{shown(name, 80)} is not a DNS name or an address")
    try:
        verifier.verify(leaf, intermediates)
    except verification.VerificationError as e:
        why = _diagnose(leaf, intermediates, roots, name, at)
        return Verdict(False, why or f"refused by the verifier: {_verifier_words(str(e))}")
    usage = _key_usage(leaf)
    if usage:
        return Verdict(False, usage)
    wide = _wide_wildcard(leaf, name) if name else None
    if wide:
        return Verdict(False, f"name {name} is matched only by {wide}, a wildcard over a whole TLD")
    return Verdict(True, "")


def covers(cert: x509.Certificate, name: str) -> bool:
    """Whether ``cert``'s subjectAltNames name ``name`` (a DNS name or an address; a
    wildcard stands for one whole first label; no common-name fallback)."""
    try:
        return _covers(_san(cert), normal(name))
    except Exception:  # an unreadable certificate names nothing
        return False


# --- reasons -------------------------------------------------------------------------


def _diagnose(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: Roots,
    name: str | None,
    at: datetime.datetime,
) -> str | None:
    """Why the verifier refused, in words, for the common cases (None: another reason)."""
    when = _validity(leaf, at)
    if when:
        return when
    sans = _san(leaf)
    if name and not _covers(sans, name):
        return f"name {shown(name, 80)} not in the certificate's names ({_listed(sans)})"
    usage = _extended_key_usage(leaf) or _key_usage(leaf)
    if usage:
        return usage
    cert = leaf
    for _ in range(8):
        if _issuer(cert) in roots.subjects:
            return None
        if cert.issuer == cert.subject:
            if cert is leaf:
                return f"self-signed certificate {_dn(cert.subject)}, not a trusted CA"
            return f"the chain ends in {_dn(cert.subject)}, not a trusted CA"
        up = next((c for c in intermediates if c.subject == cert.issuer and c is not cert), None)
        if up is None:
            return f"unknown issuer {_dn(cert.issuer)}"
        when = _validity(up, at)
        if when:
            return f"intermediate CA {_dn(up.subject)} {when}"
        cert = up
    return None


def _validity(cert: x509.Certificate, at: datetime.datetime) -> str | None:
    if at > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if at < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    return None


def _extended_key_usage(cert: x509.Certificate) -> str | None:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        return None
    usages = ", ".join(getattr(u, "_name", u.dotted_string) for u in eku) or "empty"
    return f"extended key usage {usages} does not allow serverAuth"


def _key_usage(cert: x509.Certificate) -> str | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if usage.digital_signature:
        return None
    return "key usage lacks digitalSignature (the server's key signs the key exchange)"


def _verifier_words(message: str) -> str:
    """cryptography's message without its Rust wrapping, extensions by name."""
    for prefix in ("validation failed: ", "candidates exhausted: "):
        message = message.removeprefix(prefix)
    if message.startswith("Other(") and message.endswith(")"):
        message = message[6:-1].strip('"')
    message = message.split(" (encountered processing ")[0]
    if message.startswith("invalid extension: "):
        oid, _, what = message.removeprefix("invalid extension: ").partition(": ")
        with contextlib.suppress(ValueError):
            oid = _oid_name(x509.ObjectIdentifier(oid))
        what = _EXTENSION_WORDS.get(what, what)
        message = f"{what} {oid}" if what in _EXTENSION_WORDS.values() else f"{oid}: {what}"
    return shown(message, 160)


#: cryptography's words for an extension's fault, as a sentence's start.
_EXTENSION_WORDS = {
    "Certificate is missing required extension": "the certificate lacks the required extension",
}


def _unreadable(cert: x509.Certificate) -> str | None:
    """Why zfw cannot read ``cert`` (its names, extensions, validity); None: it can."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.not_valid_after_utc  # noqa: B018 (parsed on access)
        cert.not_valid_before_utc  # noqa: B018
        for ext in cert.extensions:
            ext.value  # noqa: B018
    except x509.DuplicateExtension as e:
        return f"two {_oid_name(e.oid)} extensions"
    except Exception as e:  # ValueError mostly; anything a hostile encoding gives
        if "IPv4 or IPv6 address" in str(e):
            return "an IP address (subjectAltName) that is neither 4 nor 16 bytes"
        return shown(str(e) or type(e).__name__, 120)
    return None


# --- names ---------------------------------------------------------------------------


def _san(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [n for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]


def _covers(sans: list[x509.GeneralName], name: str) -> bool:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for san in sans:
        if isinstance(san, x509.IPAddress):
            if address is not None and san.value == address:
                return True
        elif address is None and _dns_match(normal(san.value), name):
            return True
    return False


def _wide_wildcard(leaf: x509.Certificate, name: str) -> str | None:
    """The wildcard over a whole top-level domain (``*.com``, which browsers refuse and
    no public CA may issue) that is the certificate's only name for ``name``, or None.
    zfw has no public suffix list; ``*.co.uk`` and the like are not caught."""
    sans = _san(leaf)
    wide = [
        s
        for s in sans
        if isinstance(s, x509.DNSName)
        and (p := normal(s.value)).startswith("*.")
        and "." not in p[2:]
        and _dns_match(p, name)
    ]
    if not wide or _covers([s for s in sans if s not in wide], name):
        return None
    return str(wide[0].value)


def _dns_match(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        first, _, rest = name.partition(".")
        return bool(first) and rest == pattern[2:] and "*" not in rest
    return pattern == name


def _subject_name(name: str) -> verification.Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _own_name(leaf: x509.Certificate) -> verification.Subject | None:
    """A name ``leaf`` has, to verify it without checking the name the client asked for."""
    for san in _san(leaf):
        if isinstance(san, x509.IPAddress):
            return san
        return x509.DNSName(normal(san.value).replace("*.", "x.", 1))
    return None


def _listed(sans: list[x509.GeneralName]) -> str:
    if not sans:
        return "none: no subjectAltName, and the common name is not used"
    listed = [shown(str(n.value), 60) for n in sans[:_SHOWN_NAMES]]
    more = f", and {len(sans) - _SHOWN_NAMES} more" if len(sans) > _SHOWN_NAMES else ""
    return ", ".join(listed) + more


def _subject(cert: x509.Certificate) -> x509.Name | None:
    try:
        return cert.subject
    except Exception:
        return None


def _issuer(cert: x509.Certificate) -> x509.Name:
    return cert.issuer


def _dn(name: x509.Name) -> str:
    return shown(name.rfc4514_string(), 100) or "(empty name)"


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return name if name and name != "Unknown OID" else oid.dotted_string


def shown(text: str, limit: int) -> str:
    """``text`` fit for one log line: control characters escaped, at most ``limit``."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
