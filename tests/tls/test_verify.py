"""zfw.tls.verify: the verdict on a server certificate and its reasons in words."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from tests.e2e.pki import MALFORMED_IP_SAN, certificate, two_sans
from zfw.tls.certs import CertificateAuthority, LeafMinter
from zfw.tls.verify import Verdict, covers, verify_server

NOW = datetime.datetime.now(datetime.UTC)


def authority(name: str, issuer: CertificateAuthority | None = None, days=(-1, 3650)):
    cert, key = certificate([name], issuer, ca=True, san=False, days=days)
    return CertificateAuthority(cert, key, name.encode())


@pytest.fixture(scope="module")
def pki():
    root = authority("Root CA")
    return root, authority("Intermediate CA", root)


def check(pki, leaf, name="www.example.com", chain=None, **kw) -> Verdict:
    root, inter = pki
    chain = [inter.certificate] if chain is None else chain
    return verify_server(leaf, chain, [root.certificate], name, NOW, **kw)


def test_a_good_chain_verifies_for_its_names_with_or_without_a_trailing_dot(pki):
    leaf, _ = certificate(["www.example.com", "*.cdn.example.com"], pki[1])
    for name in ("www.example.com", "www.example.com.", "WWW.Example.COM", "a.cdn.example.com."):
        assert check(pki, leaf, name) == Verdict(True, "")
    assert check(pki, leaf, None).ok
    assert check(pki, leaf, "elsewhere.example.net", check_name=False).ok


def test_a_name_not_in_the_certificate_is_named_with_the_certificates_names(pki):
    leaf, _ = certificate(["a.example", "b.example"], pki[1])
    verdict = check(pki, leaf, "www.example.com")
    assert verdict == Verdict(
        False, "name www.example.com not in the certificate's names (a.example, b.example)"
    )
    assert not check(pki, leaf, "x.a.example").ok  # a name is no wildcard
    assert not check(pki, leaf, "192.0.2.1").ok


def test_a_wildcard_over_a_whole_tld_names_nothing(pki):
    leaf, _ = certificate(["*.com"], pki[1])
    assert check(pki, leaf, "example.com") == Verdict(
        False, "name example.com is matched only by *.com, a wildcard over a whole TLD"
    )
    both, _ = certificate(["*.com", "example.com"], pki[1])
    assert check(pki, both, "example.com").ok  # named as well by a name of its own


def test_no_common_name_fallback(pki):
    leaf, _ = certificate(["www.example.com"], pki[1], san=False)
    verdict = check(pki, leaf)
    assert not verdict.ok and "no subjectAltName, and the common name is not used" in verdict.reason
    assert not covers(leaf, "www.example.com")


def test_an_ip_address_is_matched_as_an_address(pki):
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("192.0.2.7"))])
    leaf, _ = certificate(["ip"], pki[1], san=False, extensions=((san, False),))
    assert check(pki, leaf, "192.0.2.7").ok
    assert not check(pki, leaf, "192.0.2.8").ok
    assert covers(leaf, "192.0.2.7") and not covers(leaf, "ip")


@pytest.mark.parametrize(
    ("days", "reason"),
    [((-30, -2), "expired on "), ((2, 30), "not valid before ")],
)
def test_a_leaf_out_of_its_validity_says_when(pki, days, reason):
    leaf, _ = certificate(["www.example.com"], pki[1], days=days)
    verdict = check(pki, leaf)
    assert not verdict.ok and verdict.reason.startswith(reason)
    edge = leaf.not_valid_after_utc if days[1] < 0 else leaf.not_valid_before_utc
    assert verdict.reason.endswith(f"{edge:%Y-%m-%d}")


def test_issuers_unknown_self_signed_and_expired_are_named(pki):
    root, _ = pki
    other = authority("Foo CA")
    leaf, _ = certificate(["www.example.com"], other)
    assert check(pki, leaf, chain=[]) == Verdict(False, "unknown issuer CN=Foo CA")
    leaf, _ = certificate(["www.example.com"], pki[1])
    assert check(pki, leaf, chain=[]) == Verdict(False, "unknown issuer CN=Intermediate CA")
    own, _ = certificate(["www.example.com"], None)
    assert check(pki, own) == Verdict(
        False, "self-signed certificate CN=www.example.com, not a trusted CA"
    )
    old = authority("Old CA", root, days=(-60, -2))
    leaf, _ = certificate(["www.example.com"], old)
    verdict = check(pki, leaf, chain=[old.certificate])
    assert not verdict.ok and verdict.reason.startswith("intermediate CA CN=Old CA expired on ")


def test_key_usages_for_a_tls_server(pki):
    encipher = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    key = rsa.generate_private_key(65537, 2048)
    leaf, _ = certificate(["www.example.com"], pki[1], key=key, extensions=((encipher, True),))
    verdict = check(pki, leaf)
    assert not verdict.ok and verdict.reason.startswith("key usage lacks digitalSignature")
    signs = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    leaf, _ = certificate(["www.example.com"], pki[1], key=key, extensions=((signs, True),))
    assert check(pki, leaf).ok
    client = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    leaf, _ = certificate(["www.example.com"], pki[1], extensions=((client, False),))
    assert check(pki, leaf) == Verdict(
        False, "extended key usage clientAuth does not allow serverAuth"
    )


def test_hostile_certificates_are_refused_never_raised(pki):
    leaf, _ = two_sans(["www.example.com"], pki[1])
    assert check(pki, leaf) == Verdict(
        False, "the certificate cannot be used: two subjectAltName extensions"
    )
    assert not covers(leaf, "www.example.com")
    bad = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, MALFORMED_IP_SAN)
    leaf, _ = certificate(["www.example.com"], pki[1], san=False, extensions=((bad, False),))
    verdict = check(pki, leaf)
    assert not verdict.ok and "neither 4 nor 16 bytes" in verdict.reason


def test_a_hostile_name_is_shown_on_one_line(pki):
    leaf, _ = certificate(["www.example.com"], pki[1])
    verdict = check(pki, leaf, "evil\nexample.com")
    assert verdict == Verdict(False, "evil\\nexample.com is not a DNS name or an address")
    assert check(pki, leaf, "a_b.example.com") == Verdict(
        False, "a_b.example.com is not a DNS name or an address"
    )


def test_no_roots_is_a_refusal(pki):
    leaf, _ = certificate(["www.example.com"], pki[1])
    assert verify_server(leaf, [], [], "www.example.com", NOW) == Verdict(
        False, "no trusted CAs to verify against"
    )


def test_the_leaf_of_a_certificate_that_cannot_be_parsed_names_what_the_client_asked(pki):
    minter = LeafMinter()
    leaf, _ = two_sans(["www.example.com"], pki[1])
    minted = minter.mirror(pki[0], leaf, "www.example.com")
    san = minted.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert minted.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"


def test_the_names_match_without_the_trailing_dot_on_either_side(pki):
    leaf, _ = certificate(["www.example.com.", "*.example.org"], pki[1])
    assert covers(leaf, "www.example.com") and covers(leaf, "WWW.example.com.")
    assert covers(leaf, "a.example.org.") and not covers(leaf, "example.org")
    assert not covers(leaf, "a.b.example.org")
