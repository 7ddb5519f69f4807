"""zfw.tls.decision: one room for TLS decisions, for the tunnel and for inspection."""

from __future__ import annotations

import pytest

from zfw.tls.clienthello import ClientHello
from zfw.tls.decision import (
    INSPECT,
    REJECT,
    TUNNEL,
    Decision,
    Rules,
    decide,
    destination_mismatch,
    inspection_rules,
    tunnel_rules,
)


def hello(sni, alpn=()):
    return ClientHello(
        sni=sni, alpn=alpn, versions=(0x0304,), legacy_version=0x0303, ech=False, size=0
    )


@pytest.mark.parametrize(
    ("sni", "alpn", "expected"),
    [
        ("a.allowed.example", ("h2",), Decision(TUNNEL, "policy")),  # ALPN: no matter here
        ("bad.allowed.example", (), Decision(REJECT, "bad.allowed.example is denied")),
        ("other.example", (), Decision(REJECT, "other.example is not in the allowed names")),
        ("A.Allowed.Example.", (), Decision(TUNNEL, "policy")),
        (None, (), Decision(REJECT, "no server name (SNI)")),
    ],
)
def test_the_tunnels_rules(sni, alpn, expected):
    rules = tunnel_rules(("*.allowed.example",), ("bad.allowed.example",), False)
    assert decide(hello(sni, alpn), rules) == expected


def test_a_tunnel_may_let_a_hello_without_a_name_through():
    rules = tunnel_rules((), (), True)
    assert decide(hello(None), rules).action == TUNNEL


@pytest.mark.parametrize(
    ("sni", "alpn", "h2_only", "expected"),
    [
        ("x.bank.example", (), "reject", Decision(REJECT, "x.bank.example is on the reject list")),
        ("y.bank.example", (), "reject", Decision(TUNNEL, "y.bank.example is on the bypass list")),
        ("www.example", ("h2", "http/1.1"), "reject", Decision(INSPECT, "policy")),
        (
            "www.example",
            ("h2",),
            "reject",
            Decision(REJECT, "the client offers h2 (ALPN), not http/1.1"),
        ),
        (
            "www.example",
            ("h2",),
            "tunnel",
            Decision(TUNNEL, "the client offers h2 (ALPN), not http/1.1"),
        ),
        (
            "y.bank.example",
            ("h2",),
            "reject",
            Decision(TUNNEL, "y.bank.example is on the bypass list"),
        ),
        (None, (), "reject", Decision(INSPECT, "no server name (SNI), permitted")),
        (None, ("h2",), "tunnel", Decision(TUNNEL, "the client offers h2 (ALPN), not http/1.1")),
    ],
)
def test_inspections_rules(sni, alpn, h2_only, expected):
    rules = inspection_rules(("x.bank.example",), ("*.bank.example",), True, h2_only)
    assert decide(hello(sni, alpn), rules) == expected


def test_inspection_may_refuse_a_hello_without_a_name():
    rules = inspection_rules((), (), False, "reject")
    assert decide(hello(None), rules) == Decision(REJECT, "no server name (SNI)")


def test_the_proxies_decide_here(tmp_path):
    # TlsTunnelProxy's check_hello and TwoSidedEncryption's decide are this room's answers.
    from zfw.proxy.tls import TlsTunnelProxy
    from zfw.tls.certs import create_ca
    from zfw.tls.encryption import DynamicCertificate, TwoSidedEncryption

    tunnel = TlsTunnelProxy.__new__(TlsTunnelProxy)
    tunnel.allowed_names, tunnel.denied_names, tunnel.allow_no_sni = ("a.example",), (), False
    assert tunnel.check_hello(hello("a.example")) is True
    assert tunnel.check_hello(hello("b.example")) == "b.example is not in the allowed names"
    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=create_ca(str(tmp_path / "ca"), "zfw test CA")),
        bypass=["a.example"],
    )
    assert enc.rules() == inspection_rules((), ("a.example",), True, "reject")
    assert enc.decide(hello("a.example")) == ("tunnel", "a.example is on the bypass list")


def test_rules_are_values():
    assert Rules() == Rules() and decide(hello("x.example"), Rules()).action == INSPECT


@pytest.mark.parametrize(
    ("sni", "destination", "addresses", "expected"),
    [
        ("a.example", "A.Example.", None, None),
        ("a.example", "b.example", None, "a.example does not name the destination b.example"),
        ("a.example", "198.51.100.2", ["198.51.100.2"], None),
        (
            "a.example",
            "198.51.100.2",
            ["203.0.113.9"],
            "a.example does not resolve to 198.51.100.2",
        ),
    ],
)
def test_the_destination_check(sni, destination, addresses, expected):
    assert destination_mismatch(sni, destination, addresses) == expected
