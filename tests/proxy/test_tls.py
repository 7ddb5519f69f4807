"""TlsTunnelProxy's decisions, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.proxy.harness import FakeAttempt
from zfw.engine.decision import Decision
from zfw.engine.endpoint import Endpoint
from zfw.engine.session import Session
from zfw.log import Log, LogSpec
from zfw.model import Service
from zfw.proxy.tls import TlsTunnelProxy
from zfw.tls.names import matches as name_matches

HELLOS = Path(__file__).parent.parent / "tls" / "hellos"


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("a.example", ["a.example"], True),
        ("A.Example", ["a.example"], True),
        ("b.a.example", ["*.a.example"], True),
        ("c.b.a.example", ["*.a.example"], True),
        ("a.example", ["*.a.example"], False),
        ("xa.example", ["*.a.example"], False),
        ("a.example", [], False),
    ],
)
def test_name_patterns(name, patterns, expected):
    assert name_matches(name, patterns) is expected


class Harness:
    def __init__(self, proxy_class=TlsTunnelProxy, **attrs):
        import io

        self.clock = Clock()
        self.out = io.StringIO()
        self.closed = []
        self.connects = []
        session = Session(
            "i/tls:1",
            Service("tls", proxy_class),
            None,
            ("192.0.2.2", 5000),
            ("198.51.100.2", 443),
            Decision(True, "ok", target=("198.51.100.2", 443)),
            Log(LogSpec.parse("*:9"), self.out),
            self.clock,
            self.closed.append,
        )
        session.connect_server = lambda *a: self.connects.append(a) or FakeAttempt()
        self.proxy = proxy_class(session)
        for k, v in attrs.items():
            setattr(self.proxy, k, v)
        self.client = Endpoint("client")
        self.client.makeConnection(StringTransport())
        self.proxy.start(self.client)

    def log(self):
        return self.out.getvalue()


def test_allowed_hello_connects_and_nothing_before():
    h = Harness(allowed_names=["curl.example"])
    data = (HELLOS / "curl.bin").read_bytes()
    h.client.dataReceived(data[:100])
    assert not h.connects
    h.client.dataReceived(data[100:])
    assert len(h.connects) == 1 and not h.closed


def test_denied_hello_is_closed_and_logged():
    h = Harness(allowed_names=["other.example"])
    h.client.dataReceived((HELLOS / "curl.bin").read_bytes())
    assert not h.connects and h.closed
    assert "reject: curl.example is not in the allowed names" in h.log()
    assert "sni=curl.example" in h.log() and "alpn=h2,http/1.1" in h.log()


def test_hello_deadline():
    h = Harness(hello_timeout=5)
    h.client.dataReceived((HELLOS / "curl.bin").read_bytes()[:50])
    h.clock.advance(5)
    assert h.closed and "no complete ClientHello within 5 s" in h.log()
    assert "tls.violation(1)" in h.log()


def test_policy_hook_sees_the_zones_and_may_refuse():
    class Hook(TlsTunnelProxy):
        def check_hello(self, hello):
            return "h2 only" if "h2" not in hello.alpn else True

    h = Harness(Hook)
    h.client.dataReceived((HELLOS / "openssl_tls12.bin").read_bytes())
    assert "reject: h2 only" in h.log() and not h.connects


@pytest.mark.parametrize(
    ("addresses", "connects"), [(["198.51.100.2"], True), (["203.0.113.9"], False)]
)
def test_verify_destination(addresses, connects):
    class Fixed(TlsTunnelProxy):
        def resolve(self, name):
            return defer.succeed(addresses)

    h = Harness(Fixed, verify_destination=True)
    h.client.dataReceived((HELLOS / "curl.bin").read_bytes())
    assert bool(h.connects) is connects
    if not connects:
        assert "curl.example does not resolve to 198.51.100.2" in h.log()


def test_an_ech_offer_is_on_the_end_line_and_not_claimed_to_hide_a_name():
    # A GREASE ECH (every Chromium connection) cannot be told from a real one.
    from tests.tls.test_clienthello import ech_outer, hello, sni_ext

    h = Harness(allowed_names=["public.example"])
    h.proxy.session._log = Log(LogSpec.parse(""), h.out)  # the default levels
    h.client.dataReceived(hello(sni_ext(b"public.example") + ech_outer()))
    _connected(h).connectionLost(None)
    lines = h.log().splitlines()
    assert len(lines) == 1 and "tls.info(3)" in lines[0]
    assert "sni=public.example" in lines[0] and "ech=offered" in lines[0]
    assert "hidden" not in h.log()


def _record(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(payload).to_bytes(2, "big") + payload


def _server_hello(random: bytes, version: int | None = 0x0304) -> bytes:
    exts = b"" if version is None else b"\x00\x2b\x00\x02" + version.to_bytes(2, "big")
    body = b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00"
    body += len(exts).to_bytes(2, "big") + exts
    return _record(22, b"\x02" + len(body).to_bytes(3, "big") + body)


def _tls13_hello(name: bytes) -> bytes:
    from tests.tls.test_clienthello import ext, hello, sni_ext

    return hello(sni_ext(name) + ext(43, b"\x02\x03\x04"))


def _connected(h):
    server = Endpoint("server")
    server.makeConnection(StringTransport())
    h.connects[0][1](server)
    return server


def test_a_server_hello_starts_the_relay():
    h = Harness(allowed_names=["a.example"])
    first = _tls13_hello(b"a.example")
    h.client.dataReceived(first)
    server = _connected(h)
    assert server.transport.value() == first
    h.client.dataReceived(b"early")  # held until the server's first answer is known
    assert server.transport.value() == first
    server.dataReceived(_server_hello(b"\x11" * 32))
    assert h.client.transport.value() == _server_hello(b"\x11" * 32)
    assert server.transport.value() == first + b"early"  # now relayed
    h.client.dataReceived(b" more")
    assert server.transport.value().endswith(b"early more")


def _after_a_retry_request(h):
    """The first hello (for a.example) out, and the server's HelloRetryRequest back."""
    from zfw.tls.retry import HRR_RANDOM

    first = _tls13_hello(b"a.example")
    h.client.dataReceived(first)
    server = _connected(h)
    server.dataReceived(_server_hello(HRR_RANDOM))
    return first, server


def test_after_a_hello_retry_request_the_second_hello_must_name_the_same_server():
    h = Harness(allowed_names=["a.example"])
    first, server = _after_a_retry_request(h)
    h.client.dataReceived(_record(20, b"\x01") + _tls13_hello(b"denied.example"))
    assert server.transport.value() == first  # the second hello never reached it
    assert "the second ClientHello names 'denied.example', the first 'a.example'" in h.log()
    assert "tls.violation(1)" in h.log() and h.closed


def test_a_second_hello_naming_the_same_server_passes():
    h = Harness(allowed_names=["a.example"])
    first, server = _after_a_retry_request(h)
    second = _record(20, b"\x01") + _tls13_hello(b"A.Example")
    h.client.dataReceived(second[:7])
    h.client.dataReceived(second[7:])
    assert server.transport.value() == first + second and not h.closed


@pytest.mark.parametrize(
    ("hello_name", "version", "logged"),
    [
        ("curl.bin", 0x0304, "TLSv1.3"),
        ("curl.bin", None, "TLSv1.2"),
        ("openssl_tls12.bin", None, "TLSv1.2"),
    ],
)
def test_the_end_line_has_the_version_the_server_chose(hello_name, version, logged):
    h = Harness()
    h.client.dataReceived((HELLOS / hello_name).read_bytes())
    server = _connected(h)
    hello = _server_hello(b"\x11" * 32, version)
    server.dataReceived(hello[:20])
    server.dataReceived(hello[20:] + _record(23, b"x"))
    h.client.dataReceived(_record(23, b"y"))
    assert server.transport.value().endswith(_record(23, b"y"))  # relaying
    server.connectionLost(None)
    line = h.log().splitlines()[-1]
    assert f"version={logged}; offered=" in line and "ech=-" in line
