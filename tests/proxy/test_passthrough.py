"""Pass-through: HttpProxy, TlsTunnelProxy and EncryptionProxy with a client whose first
bytes are not their protocol, refused (the default) or tunnelled as PlugProxy does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxy.harness import ProxyHarness
from zfw.errors import PolicyError
from zfw.options import OptionError
from zfw.proxy.base import Handover
from zfw.proxy.encryption import EncryptionProxy
from zfw.proxy.http import HttpProxy
from zfw.proxy.plug import PlugProxy
from zfw.proxy.tls import TlsTunnelProxy
from zfw.tls.contexts import TlsOptions
from zfw.tls.encryption import (
    ClientOnlyEncryption,
    DynamicCertificate,
    StaticCertificate,
    TwoSidedEncryption,
    _Encryption,
)

SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
HELLO = (Path(__file__).parent.parent / "tls" / "hellos" / "curl.bin").read_bytes()
GET = b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n"


def http(**attrs):
    return ProxyHarness(HttpProxy, ("198.51.100.2", 80), **attrs)


def tls(**attrs):
    return ProxyHarness(TlsTunnelProxy, ("198.51.100.2", 443), **attrs)


class _Plain(_Encryption):
    """An encryption policy that never gets as far as a certificate."""

    def __init__(self, pass_through):
        super().__init__(TlsOptions())
        self.pass_through = pass_through


def inspecting(pass_through):
    return ProxyHarness(
        EncryptionProxy,
        ("198.51.100.2", 443),
        encryption=_Plain(pass_through),
        inner_proxy=HttpProxy,
    )


def counters(h):
    return h.proxy.session.stats.proxy


def test_refuse_is_the_default():
    assert HttpProxy.pass_through == "refuse" and TlsTunnelProxy.pass_through == "refuse"
    assert _Encryption.pass_through == "refuse"


def test_only_refuse_or_tunnel():
    with pytest.raises(OptionError, match="pass_through"):
        http(pass_through="plug")


@pytest.mark.parametrize(
    ("first", "why"),
    [
        (SSH, "an SSH banner 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3'"),
        (HELLO, "a TLS handshake record (0x16 0x03)"),
    ],
)
def test_http_tunnels_another_protocol_with_its_first_bytes(first, why):
    h = http(pass_through="tunnel")
    h.send(first[:1])
    assert not h.pending  # undecided
    h.send(first[1:])
    assert isinstance(h.proxy.session.proxy, PlugProxy)
    h.connect()
    assert h.to_server() == first
    h.send(b"more")
    h.reply(b"SSH-2.0-server\r\n")
    assert h.to_server() == b"more" and h.to_client() == b"SSH-2.0-server\r\n"
    assert f"not HTTP: {why}; tunnelled as pass_through says" in h.log()
    assert counters(h) == {"passed_through": 1}


def test_http_refuses_another_protocol_at_once_by_default():
    h = http()
    h.send(SSH)
    assert not h.pending and h.ct.disconnecting
    assert h.to_client().startswith(b"HTTP/1.1 400 ")
    assert "not HTTP: an SSH banner" in h.log()
    assert "; refused as pass_through says" in h.log()
    assert counters(h)["refused_not_protocol"] == 1


def test_http_as_ever_for_http():
    h = http(pass_through="tunnel")
    h.send(GET)
    h.connect()
    assert h.to_server().startswith(b"GET / HTTP/1.1\r\n")
    assert "passed_through" not in counters(h)


def test_a_malformed_request_line_is_a_400_never_a_tunnel():
    h = http(pass_through="tunnel")
    h.send(b"GET /\x01 HTTP/1.1\r\n\r\n")
    assert not h.pending and h.to_client().startswith(b"HTTP/1.1 400 ")
    assert "passed_through" not in counters(h)


def test_after_a_request_nothing_is_tunnelled():
    h = http(pass_through="tunnel")
    h.send(GET)
    h.connect()
    h.to_server()
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    h.to_client()
    h.send(SSH + b"\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 400 ")
    assert len(h.servers) == 1 and "passed_through" not in counters(h)


def test_a_lone_token_then_the_end_is_refused_as_ever():
    h = http(pass_through="tunnel")
    h.send(b"hello")
    h.client.readConnectionLost()
    assert not h.pending and "passed_through" not in counters(h)


@pytest.mark.parametrize("first", [SSH, b"GET / HTTP/1.1\r\n\r\n"])
def test_tls_tunnels_another_protocol(first):
    h = tls(pass_through="tunnel")
    h.send(first)
    assert isinstance(h.proxy.session.proxy, PlugProxy)
    h.connect()
    assert h.to_server() == first
    why = f"not TLS: the first bytes are {first_line(first)}; tunnelled as pass_through says"
    assert why in h.log()
    assert counters(h) == {"passed_through": 1}


def first_line(data):
    from zfw.http.sniff import first_line as line

    return line(data)


def test_tls_refuses_another_protocol_by_default():
    h = tls()
    h.send(SSH)
    assert not h.pending and h.closed
    assert "not TLS: the first bytes are 'SSH-2.0-" in h.log()
    assert "violation: not TLS" in h.log()  # the end line
    assert counters(h) == {"refused_not_protocol": 1, "tls_violations": 1}


def test_tls_as_ever_for_tls():
    h = tls(pass_through="tunnel", allowed_names=["curl.example"])
    h.send(HELLO[:1])
    h.send(HELLO[1:])
    assert h.proxy.session.proxy is None  # never handed over
    h.connect()
    assert h.to_server() == HELLO


def test_broken_tls_is_a_violation_never_a_tunnel():
    h = tls(pass_through="tunnel")
    h.send(b"\x16\x03\x01\x00\x00")
    assert h.closed and not h.pending and "passed_through" not in counters(h)
    assert counters(h) == {"tls_violations": 1}


def test_inspection_tunnels_another_protocol_when_its_policy_says():
    h = inspecting("tunnel")
    h.send(SSH)
    assert isinstance(h.proxy.session.proxy, PlugProxy)
    h.connect()
    assert h.to_server() == SSH
    assert "not TLS: the first bytes are 'SSH-2.0-" in h.log()
    assert counters(h) == {"passed_through": 1}


def test_inspection_refuses_another_protocol_by_default():
    h = inspecting("refuse")
    h.send(SSH)
    assert h.closed and not h.pending
    assert "; refused as pass_through says" in h.log()
    assert counters(h) == {"refused_not_protocol": 1, "tls_violations": 1}


def test_an_encryption_policy_takes_refuse_or_tunnel_and_offload_has_no_choice():
    leaf = object.__new__(DynamicCertificate)
    assert TwoSidedEncryption(leaf).pass_through == "refuse"
    assert TwoSidedEncryption(leaf, pass_through="tunnel").pass_through == "tunnel"
    with pytest.raises(OptionError, match="pass_through"):
        TwoSidedEncryption(leaf, pass_through="plug")
    with pytest.raises(PolicyError, match="pass_through"):
        ClientOnlyEncryption(object.__new__(StaticCertificate), pass_through="tunnel")


def connect_tunnel(proxy_class, pending=b"", **attrs):
    """``proxy_class`` taking over a CONNECT tunnel, as HttpProxyNonTransparent hands it."""
    return ProxyHarness(
        proxy_class, ("198.51.100.2", 443), handover=Handover(pending=pending), **attrs
    )


@pytest.mark.parametrize("early", [True, False])
def test_a_connect_tunnel_never_passes_another_protocol_through(early):
    """Inside CONNECT, pass_through="tunnel" would carry anything to any allowed
    host:port past the name lists: what is not TLS is a violation there."""
    h = connect_tunnel(
        TlsTunnelProxy, SSH if early else b"", pass_through="tunnel", allowed_names=["a.example"]
    )
    if not early:
        h.send(SSH)
    assert h.proxy.session.proxy is None and not h.pending and h.closed
    assert counters(h) == {"tls_violations": 1}


def test_inspecting_a_connect_tunnel_never_passes_another_protocol_through():
    h = ProxyHarness(
        EncryptionProxy,
        ("198.51.100.2", 443),
        handover=Handover(),
        encryption=_Plain("tunnel"),
        inner_proxy=HttpProxy,
    )
    h.send(SSH)
    assert h.proxy.session.proxy is None and not h.pending and h.closed
    assert counters(h) == {"tls_violations": 1}


def test_a_connect_tunnel_still_takes_tls():
    h = connect_tunnel(TlsTunnelProxy, pass_through="tunnel", allowed_names=["curl.example"])
    h.send(HELLO)
    h.connect()
    assert h.to_server() == HELLO


def test_first_bytes_are_held_until_they_decide():
    from zfw.proxy.passthrough import FirstBytes
    from zfw.tls.sniff import not_tls

    first = FirstBytes(not_tls, True)
    assert first.feed(b"\x16") == (b"", None) and first.held == b"\x16"
    assert first.feed(b"\x03\x01") == (b"\x16\x03\x01", None) and not first.deciding
    assert first.feed(b"more") == (b"more", None)
    other = FirstBytes(not_tls, True)
    data, why = other.feed(SSH)
    assert data == SSH and why is not None and why.startswith("the first bytes are")
    off = FirstBytes(not_tls, False)
    assert not off.deciding and off.feed(SSH) == (SSH, None) and off.take() == b""
