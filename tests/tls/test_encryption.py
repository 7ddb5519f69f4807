"""zfw.tls.encryption: the policy's names for TLS inspection, checked while it loads."""

from __future__ import annotations

import os

import pytest

from zfw.errors import PolicyError
from zfw.tls.certs import create_ca
from zfw.tls.clienthello import ClientHello
from zfw.tls.encryption import (
    ClientOnlyEncryption,
    DynamicCertificate,
    ServerCertificateVerifier,
    SNIBasedCertificate,
    StaticCertificate,
    TlsOptions,
    TwoSidedEncryption,
    matches,
)


@pytest.fixture
def ca(tmp_path):
    return create_ca(str(tmp_path / "ca"), "zfw test CA")


def hello(sni, alpn=()):
    return ClientHello(
        sni=sni, alpn=alpn, versions=(0x0304,), legacy_version=0x0303, ech=False, size=0
    )


def test_name_patterns():
    assert matches("www.Example.com.", ("www.example.com",))
    assert matches("a.b.example.com", ("*.example.com",))
    assert not matches("example.com", ("*.example.com",))
    assert not matches("badexample.com", ("*.example.com",))
    assert not matches(None, ("*",))


def test_the_decision_by_the_lists(ca):
    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=ca),
        bypass=["*.bank.example"],
        reject=["ads.example", "*.bank.example"],
    )
    assert enc.decide(hello("x.bank.example"))[0] == "reject"  # reject is checked first
    assert enc.decide(hello("www.example.com")) == ("inspect", "policy")
    enc = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), bypass=["*.bank.example"])
    assert enc.decide(hello("x.bank.example")) == (
        "tunnel",
        "x.bank.example is on the bypass list",
    )
    strict = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), allow_no_sni=False)
    assert strict.decide(hello(None))[0] == "reject"


def test_a_client_offering_only_h2_is_handled_as_h2_only_says(ca, tmp_path):
    enc = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), bypass=["*.bank.example"])
    assert enc.decide(hello("www.example.com", ("h2", "http/1.1"))) == ("inspect", "policy")
    assert enc.decide(hello("www.example.com", ("h2",))) == (
        "reject",
        "the client offers h2 (ALPN), not http/1.1",
    )
    assert enc.decide(hello("x.bank.example", ("h2",)))[0] == "tunnel"  # bypassed anyway
    for choice in ("tunnel", "inspect"):
        enc = TwoSidedEncryption(
            DynamicCertificate(trusted_ca=ca), options=TlsOptions(h2_only=choice)
        )
        assert enc.decide(hello("www.example.com", ("h2",)))[0] == choice
    with pytest.raises(
        PolicyError,
        match="TlsOptions: h2_only must be one of",
    ):
        TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), options=TlsOptions(h2_only="h2"))
    from tests.e2e.pki import server_certificate
    from zfw.tls.certs import CertificateAuthority

    server_certificate(str(tmp_path), "a", ["a.example.com"], CertificateAuthority.load(*ca))
    static = StaticCertificate(str(tmp_path / "a.pem"), str(tmp_path / "a.key"))
    offload = ClientOnlyEncryption(static)
    assert offload.decide(hello("a.example.com", ("h2",)))[0] == "reject"
    with pytest.raises(PolicyError, match="h2_only must be reject or inspect"):
        ClientOnlyEncryption(static, TlsOptions(h2_only="tunnel"))  # no TLS server to tunnel to
    with pytest.raises(PolicyError, match="h2_only must be one of"):
        ClientOnlyEncryption(static, TlsOptions(h2_only=""))


def test_a_decide_function_replaces_the_lists(ca):
    enc = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), decide=lambda h: "tunnel")
    assert enc.decide(hello("www.example.com")) == ("tunnel", "by decide()")
    wrong = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), decide=lambda h: "maybe")
    with pytest.raises(ValueError, match="not inspect, tunnel or reject"):
        wrong.decide(hello("www.example.com"))


def test_mistakes_are_policy_errors(ca, tmp_path):
    cert, key = ca
    os.chmod(key, 0o644)
    with pytest.raises(PolicyError, match="readable by others"):
        DynamicCertificate(trusted_ca=ca)
    os.chmod(key, 0o600)
    with pytest.raises(PolicyError, match="No such file"):
        DynamicCertificate(trusted_ca=(cert, str(tmp_path / "missing.key")))
    with pytest.raises(PolicyError, match="not a CA certificate"):
        leaf_dir = tmp_path / "leaf"
        leaf_dir.mkdir()
        from tests.e2e.pki import server_certificate
        from zfw.tls.certs import CertificateAuthority

        server_certificate(str(leaf_dir), "x", ["x.example"], CertificateAuthority.load(cert, key))
        DynamicCertificate(trusted_ca=(str(leaf_dir / "x.pem"), str(leaf_dir / "x.key")))
    with pytest.raises(PolicyError, match="min_version"):
        TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), options=TlsOptions("SSLv3"))
    with pytest.raises(PolicyError, match="client_certificate_generator"):
        TwoSidedEncryption("ca.pem")
    with pytest.raises(PolicyError, match="StaticCertificate"):
        ClientOnlyEncryption(DynamicCertificate(trusted_ca=ca))
    with pytest.raises(PolicyError, match="not a PEM certificate"):
        ServerCertificateVerifier(ca_file=key)


def test_sni_based_certificates_choose_by_name(ca, tmp_path):
    from tests.e2e.pki import server_certificate
    from zfw.tls.certs import CertificateAuthority

    authority = CertificateAuthority.load(*ca)
    for name in ("a", "b"):
        server_certificate(str(tmp_path), name, [f"{name}.example.com"], authority)
    a = StaticCertificate(str(tmp_path / "a.pem"), str(tmp_path / "a.key"))
    b = StaticCertificate(str(tmp_path / "b.pem"), str(tmp_path / "b.key"))
    chooser = SNIBasedCertificate({"a.example.com": a, "*.b.example.com": b})
    assert chooser.choose("a.example.com") is a and chooser.choose("x.b.example.com") is b
    assert chooser.choose("c.example.com") is None
    assert SNIBasedCertificate({"a.example.com": a}, default=b).choose("c.example.com") is b


def test_name_lists_follow_the_one_grammar(ca, tmp_path):
    with pytest.raises(PolicyError, match=r"bypass must be .*not the string '\*\.bank\.example'"):
        TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), bypass="*.bank.example")
    with pytest.raises(PolicyError, match="a wildcard is a whole first label"):
        TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), reject=["*bank.example"])
    enc = TwoSidedEncryption(DynamicCertificate(trusted_ca=ca), bypass=["*.bank.example"])
    assert enc.decide(hello("www.bank.example"))[0] == "tunnel"
    assert enc.decide(hello("evilbank.example"))[0] == "inspect"
    assert enc.decide(hello("bank.example"))[0] == "inspect"
    from tests.e2e.pki import server_certificate
    from zfw.tls.certs import CertificateAuthority

    server_certificate(str(tmp_path), "a", ["a.example.com"], CertificateAuthority.load(*ca))
    static = StaticCertificate(str(tmp_path / "a.pem"), str(tmp_path / "a.key"))
    with pytest.raises(PolicyError, match="a wildcard is a whole first label"):
        SNIBasedCertificate({"*example.com": static})
    with pytest.raises(PolicyError, match="not a StaticCertificate"):
        SNIBasedCertificate({"a.example.com": "a.pem"})
    chosen = SNIBasedCertificate({"*.example.com": static})
    assert chosen.choose("A.Example.com.") is static and chosen.choose("example.com") is None
