"""HttpProxy with an InbandRouter: absolute-form requests, CONNECT, a parent proxy."""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from tests.proxy.harness import ProxyHarness
from tests.tls.test_clienthello import hello, sni_ext
from zfw.engine.decision import Decision
from zfw.model import InbandRouter
from zfw.options import OptionError
from zfw.proxy.http import HttpProxy, HttpProxyNonTransparent
from zfw.proxy.plug import PlugProxy
from zfw.proxy.tls import TlsTunnelProxy

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
DENIED_NET = "203.0.113."


class Harness(ProxyHarness):
    """A non-transparent HttpProxy; servers in 203.0.113.0/24 are in a forbidden zone."""

    def __init__(self, proxy_class=HttpProxyNonTransparent, **attrs):
        super().__init__(proxy_class, ("192.0.2.1", 3128), router=InbandRouter(), **attrs)
        self.proxy.session.decide_server = self._decide
        self.asked = []

    def _decide(self, server):
        self.asked.append(server)
        if server[0].startswith(DENIED_NET):
            return Decision(False, "service 'web' is not permitted from zone 'lan' to 'dmz'")
        return Decision(True, "permitted", target=server)


def test_absolute_form_goes_to_the_named_server_in_origin_form():
    h = Harness()
    h.send(
        b"GET http://198.51.100.2:8080/a?b=1 HTTP/1.1\r\nHost: other.example\r\n"
        b"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nAccept: */*\r\n\r\n"
    )
    assert h.asked == [("198.51.100.2", 8080)]
    assert h.decisions[0].target == ("198.51.100.2", 8080)
    st = h.connect()
    assert st.value() == (b"GET /a?b=1 HTTP/1.1\r\nHost: 198.51.100.2:8080\r\nAccept: */*\r\n\r\n")
    h.reply(OK)
    assert h.to_client() == OK
    assert "GET http://198.51.100.2:8080/a?b=1 -> 200" in h.log()


def test_same_server_reuses_the_connection_another_server_gets_a_new_one():
    h = Harness()
    h.send(b"GET http://198.51.100.2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    first = h.connect()
    assert first.value().startswith(b"GET / HTTP/1.1\r\nHost: 198.51.100.2\r\n")
    h.reply(OK)
    h.send(b"GET http://198.51.100.2/b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not h.pending and b"GET /b " in first.value()
    h.reply(OK)
    h.send(b"GET http://[2001:db8:2::2]/c HTTP/1.1\r\nHost: x\r\n\r\n")
    assert first.disconnecting and h.asked[-1] == ("2001:db8:2::2", 80)
    second = h.connect()
    assert second.value().startswith(b"GET /c HTTP/1.1\r\nHost: [2001:db8:2::2]\r\n")


def test_server_in_a_forbidden_zone_gets_403_and_a_policy_line():
    h = Harness()
    h.send(b"GET http://203.0.113.5/ HTTP/1.1\r\nHost: 203.0.113.5\r\n\r\n")
    assert not h.pending
    assert h.to_client().startswith(b"HTTP/1.1 403 ")
    assert "core.policy(1): (i/http:1): denied GET http://203.0.113.5/: 203.0.113.5:" in h.log()


def test_origin_form_and_other_schemes_are_refused():
    h = Harness()
    h.send(b"GET /a HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 400 ") and not h.pending
    h = Harness()
    h.send(b"GET ftp://198.51.100.2/a HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 501 ")
    h = Harness()
    h.send(b"GET http://u:p@198.51.100.2/ HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 400 ")


def test_transparent_mode_refuses_absolute_form_and_connect():
    h = ProxyHarness(HttpProxyNonTransparent, ("198.51.100.2", 80))
    h.send(b"GET http://198.51.100.2/ HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 400 ")
    h = ProxyHarness(HttpProxy, ("198.51.100.2", 80))
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 405 ") and not h.pending


def test_connect_relays_bytes_through_plugproxy_after_200():
    h = Harness()
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\nearly")
    assert h.decisions[0].target == ("198.51.100.2", 443)
    assert h.to_client() == b""  # 200 only once the server answered
    st = h.connect()
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert st.value() == b"early"  # what the client sent before the 200 is not lost
    h.send(b"\x16\x03\x01 tls bytes")
    assert st.value().endswith(b"\x16\x03\x01 tls bytes")
    h.reply(b"from server")
    assert h.to_client() == b"from server"
    assert "CONNECT 198.51.100.2:443 -> 200" in h.log()
    assert h.proxy.session.destination == ("198.51.100.2", 443)


def test_connect_to_a_port_not_permitted_gets_403():
    h = Harness()
    h.send(b"CONNECT 198.51.100.2:25 HTTP/1.1\r\nHost: 198.51.100.2:25\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 403 ") and not h.pending
    assert "CONNECT to port 25 is not permitted" in h.log()


def test_connect_needs_the_request_table_to_accept_it():
    h = Harness(HttpProxy)
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 405 ") and not h.pending


def test_connect_failure_gives_502_not_200():
    h = Harness()
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    _ok, failed = h.pending.pop(0)
    failed(Failure(ConnectionRefusedError()))
    assert h.to_client().startswith(b"HTTP/1.1 502 ") and h.ct.disconnecting


def tls_hello(name: str) -> bytes:
    return hello(sni_ext(name.encode()))


def test_connect_with_a_tls_tunnel_decides_by_the_client_hello():
    class OnlyExample(TlsTunnelProxy):
        def config(self):
            self.allowed_names = ("www.example.org",)

    h = Harness(connect_proxy=OnlyExample)
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert not h.pending  # nothing reaches the server before the ClientHello
    h.send(tls_hello("www.example.org"))
    st = h.connect()
    assert st.value() == tls_hello("www.example.org")
    assert h.proxy.session.decision.target == ("198.51.100.2", 443)

    h = Harness(connect_proxy=OnlyExample)
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    h.to_client()
    h.send(tls_hello("evil.example"))
    assert not h.pending and h.ct.disconnecting
    assert "evil.example is not in the allowed names" in h.log()


def test_parent_proxy_gets_absolute_form_and_the_credentials():
    h = Harness(parent_proxy=("198.51.100.8", 3128))
    h.send(
        b"GET http://www.example.org/a HTTP/1.1\r\nHost: www.example.org\r\n"
        b"Proxy-Authorization: Basic eDp5\r\n\r\n"
    )
    assert h.asked == [("198.51.100.8", 3128)]
    st = h.connect()
    assert st.value() == (
        b"GET http://www.example.org/a HTTP/1.1\r\nHost: www.example.org\r\n"
        b"Proxy-Authorization: Basic eDp5\r\n\r\n"
    )
    h.reply(OK)
    assert h.to_client() == OK


def test_connect_through_a_parent_proxy():
    h = Harness(parent_proxy=("198.51.100.8", 3128))
    h.send(b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\nhello")
    st = h.connect()
    assert st.value() == (
        b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n"
    )
    st.clear()
    h.reply(b"HTTP/1.1 200 Connection established\r\n\r\nserver hello")
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\nserver hello"
    assert st.value() == b"hello"
    h.send(b"more")
    assert st.value() == b"hellomore"
    assert isinstance(h.proxy.session.proxy, PlugProxy) and h.proxy.session.proxy.relay
    h.proxy.session.abort()  # (zfw kill)
    assert h.ct.disconnecting and st.disconnecting


def test_parent_refusing_connect_is_passed_on_and_the_client_closed():
    h = Harness(parent_proxy=("198.51.100.8", 3128))
    h.send(b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n")
    h.connect()
    h.reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert h.ct.disconnecting


def test_a_request_naming_the_proxy_itself_is_a_loop():
    h = Harness()
    h.send(b"GET http://192.0.2.1:3128/ HTTP/1.1\r\nHost: 192.0.2.1:3128\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 508 ") and not h.pending


def test_connect_proxy_must_be_a_proxy_class():
    """Refused when the session is configured, before any request."""
    with pytest.raises(OptionError, match=r"HttpProxy\.connect_proxy must be a Proxy class"):
        Harness(connect_proxy=str)


def test_any_proxy_can_take_over_a_connect_tunnel():
    """The hand-over is the documented interface, not a list of classes: HttpProxy
    itself can carry plain HTTP inside a CONNECT tunnel."""
    h = Harness(connect_proxy=HttpProxy, connect_ports=(80,))
    h.send(b"CONNECT 198.51.100.2:80 HTTP/1.1\r\nHost: 198.51.100.2:80\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    inner = h.proxy.session.proxy
    assert type(inner) is HttpProxy and h.proxy.session.destination == ("198.51.100.2", 80)
    h.send(b"GET /x HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n")
    assert h.connect().value().startswith(b"GET /x HTTP/1.1\r\n")


class OnlyExample(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ("www.example.org",)


PARENT = ("198.51.100.8", 3128)
CONNECT = b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n"


def test_tls_tunnel_through_a_parent_decides_by_the_client_hello_first():
    h = Harness(parent_proxy=PARENT, connect_proxy=OnlyExample)
    h.send(CONNECT[:-2] + b"Proxy-Authorization: Basic eDp5\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert h.asked == [PARENT] and not h.pending  # the parent only after the hello
    h.send(tls_hello("www.example.org"))
    assert h.decisions[0].target == PARENT
    st = h.connect()
    assert st.value() == CONNECT[:-2] + b"Proxy-Authorization: Basic eDp5\r\n\r\n"
    st.clear()
    h.reply(b"HTTP/1.1 200 Connection established\r\n\r\nserver hello")
    assert st.value() == tls_hello("www.example.org")
    assert h.to_client() == b"server hello"
    h.send(b"more")
    assert st.value() == tls_hello("www.example.org") + b"more"
    assert isinstance(h.proxy.session.proxy, TlsTunnelProxy)
    assert "http.request(3): (i/http:1): CONNECT www.example.org:443 -> 200" in h.log()


def test_tls_tunnel_through_a_parent_refuses_a_hello_without_asking_it():
    h = Harness(parent_proxy=PARENT, connect_proxy=OnlyExample)
    h.send(CONNECT)
    h.to_client()
    h.send(tls_hello("evil.example"))
    assert not h.pending and h.ct.disconnecting
    assert "evil.example is not in the allowed names" in h.log()


def test_tls_tunnel_through_a_parent_that_refuses_or_stays_silent():
    h = Harness(parent_proxy=PARENT, connect_proxy=OnlyExample)
    h.send(CONNECT + tls_hello("www.example.org"))
    st = h.connect()
    h.reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    assert h.ct.disconnecting and st.disconnecting
    assert "the parent proxy answered 403 Forbidden" in h.log()
    assert h.closed  # the session is over

    h = Harness(parent_proxy=PARENT, connect_proxy=OnlyExample)
    h.send(CONNECT + tls_hello("www.example.org"))
    st = h.connect()
    h.clock.advance(30)
    assert h.ct.disconnecting and st.disconnecting
    assert "no answer from the parent proxy within 30 s" in h.log()


def test_tls_tunnel_through_a_parent_checks_the_name_against_connect():
    class Strict(OnlyExample):
        def config(self):
            super().config()
            self.verify_destination = True

    h = Harness(parent_proxy=PARENT, connect_proxy=Strict)
    h.send(CONNECT + tls_hello("www.example.org"))
    assert len(h.pending) == 1

    class AnyName(TlsTunnelProxy):
        def config(self):
            self.verify_destination = True

    h = Harness(parent_proxy=PARENT, connect_proxy=AnyName)
    h.send(CONNECT + tls_hello("other.example"))
    assert not h.pending and h.ct.disconnecting
    assert "other.example does not name the destination www.example.org" in h.log()


def test_connect_never_goes_over_a_kept_connection_to_the_same_server():
    h = Harness()
    h.send(b"GET http://198.51.100.2:443/ HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    first = h.connect()
    h.reply(OK)
    assert h.to_client() == OK
    first.clear()
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    assert first.value() == b"" and first.disconnecting
    second = h.connect()
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    h.send(b"tls")
    assert second.value() == b"tls"


def _two_sided(tmp_path):
    from zfw.tls.certs import create_ca
    from zfw.tls.encryption import DynamicCertificate, TwoSidedEncryption

    return TwoSidedEncryption(DynamicCertificate(trusted_ca=create_ca(str(tmp_path / "ca"), "ca")))


def test_connect_encryption_inspects_the_tunnel_with_this_proxy_inside(tmp_path):
    from zfw.proxy.encryption import EncryptionProxy

    class Web(HttpProxyNonTransparent):
        pass

    inspect = _two_sided(tmp_path)
    h = Harness(Web, connect_encryption=inspect)
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 200 Connection established\r\n\r\n"
    tunnel = h.proxy.session.proxy
    assert type(tunnel) is EncryptionProxy and not h.pending  # it reads the hello first
    assert tunnel.encryption is inspect and tunnel.inner is Web
    assert h.proxy.session.destination == ("198.51.100.2", 443)


def test_connect_encryption_must_be_two_sided_and_not_through_a_parent(tmp_path):
    """Both are declared option checks: refused when the session is configured (and at
    zfw check), before any CONNECT."""
    for attrs, reason in (
        ({"connect_encryption": "yes"}, "connect_encryption must be TwoSidedEncryption or None"),
        (
            {"connect_encryption": _two_sided(tmp_path), "parent_proxy": ("198.51.100.8", 3128)},
            "connect_encryption and parent_proxy cannot both be set",
        ),
    ):
        with pytest.raises(OptionError) as info:
            Harness(**attrs)
        assert reason in str(info.value)


class BadPlug(PlugProxy):
    def config(self):
        raise RuntimeError("broken policy")


class WrongOption(PlugProxy):
    def config(self):
        self.timeout = "soon"


@pytest.mark.parametrize("proxy_class", [BadPlug, WrongOption])
def test_a_connect_proxy_whose_config_fails_closes_the_session(proxy_class):
    """One line naming the policy, the client and the opened server aborted, the
    session closed: no traceback, no stuck client."""
    h = Harness(connect_proxy=proxy_class)
    h.send(b"CONNECT 198.51.100.2:443 HTTP/1.1\r\nHost: 198.51.100.2:443\r\n\r\n")
    st = h.connect()  # PlugProxy needs the server first
    assert h.closed and h.ct.disconnecting and st.disconnecting
    assert h.proxy.session.stats.proxy["policy_failures"] == 1
    (line,) = [x for x in h.log().splitlines() if "core.policy" in x]
    assert f"{__file__}:" in line and line.endswith("; refused")
