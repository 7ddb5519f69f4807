"""A server certificate's verdict: chain, purpose and name (STAND-IN).

This module is the stand-in that branch ``limbo`` carries so that its x509-limbo
harness (``tests/tls/test_limbo.py``) has something to run against; the lead
replaces it at merge with the module of branch ``verify``, which has the same
interface. It verifies the way zfw's handshake verification does today
(``zfw.tls.contexts.verify``): OpenSSL's chain check (pyOpenSSL's
``X509StoreContext``) at the given time, the TLS-server purpose of the leaf's
extendedKeyUsage, then the name by service_identity (RFC 6125, no CN fallback).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import attrs
import service_identity
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import crypto
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from zfw.addr import is_address


@attrs.frozen
class Verdict:
    """Whether a certificate is trusted for a name, and why (not)."""

    ok: bool
    reason: str


def verify_server(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    name: str,
    at: datetime.datetime,
    *,
    check_name: bool = True,
) -> Verdict:
    """Whether ``leaf`` chains through ``intermediates`` to one of ``roots`` at ``at``
    (aware, UTC), may serve TLS, and names ``name`` (a DNS name or an address; not
    checked with ``check_name=False``)."""
    store = crypto.X509Store()
    for root in roots:
        store.add_cert(crypto.X509.from_cryptography(root))
    store.set_time(at.astimezone(datetime.UTC))
    chain = [crypto.X509.from_cryptography(c) for c in intermediates]
    try:
        crypto.X509StoreContext(
            store, crypto.X509.from_cryptography(leaf), chain
        ).verify_certificate()
    except crypto.X509StoreContextError as e:
        return Verdict(False, str(e))
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    except ValueError as e:  # duplicate or unparsable extensions
        return Verdict(False, f"the certificate's extensions do not parse ({e})")
    else:
        if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            return Verdict(False, "extendedKeyUsage lacks serverAuth")
    if check_name:
        try:
            if is_address(name):
                verify_certificate_ip_address(leaf, name)
            else:
                verify_certificate_hostname(leaf, name)
        except (service_identity.VerificationError, service_identity.CertificateError) as e:
            return Verdict(False, f"the certificate does not name {name} ({e})")
        except ValueError:  # not a name service_identity accepts, or unparsable names
            return Verdict(
                False, f"{name!r} is not a valid name or the certificate's names do not parse"
            )
    return Verdict(True, "verified")
