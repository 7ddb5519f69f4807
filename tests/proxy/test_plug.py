"""PlugProxy over in-memory transports: what the client sends before the server answers."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError as Refused
from twisted.python.failure import Failure

from tests.proxy.harness import CLIENT, ProxyHarness
from tests.proxy.test_relay import HalfCloseTransport
from zfw.engine.endpoint import Endpoint
from zfw.proxy.plug import PlugProxy

SERVER = ("198.51.100.2", 22)


class PlugHarness(ProxyHarness):
    """Server transports that take a half-close, as TCP ones do."""

    def connect(self):
        on_connected, _failed = self.pending.pop(0)
        ep = Endpoint("server")
        st = HalfCloseTransport()
        st.hostAddress = IPv4Address("TCP", CLIENT[0], 40000)
        st.peerAddress = IPv4Address("TCP", *SERVER)
        ep.makeConnection(st)
        on_connected(ep)
        self.servers.append((ep, st))
        return st


def test_what_the_client_sends_while_connecting_reaches_the_server_first():
    h = PlugHarness(PlugProxy, SERVER)
    assert h.ct.producerState == "producing"  # the client is read on, not paused
    h.send(b"SSH-2.0-")
    h.send(b"client\r\n")
    st = h.connect()
    h.send(b"more")
    assert st.value() == b"SSH-2.0-client\r\nmore"
    h.reply(b"SSH-2.0-server\r\n")
    assert h.to_client() == b"SSH-2.0-server\r\n"


def test_a_client_that_sends_much_before_the_server_answers_is_paused_until_then():
    h = PlugHarness(PlugProxy, SERVER, max_early_data=10)
    h.send(b"0123456789")
    assert h.ct.producerState == "paused"
    st = h.connect()
    assert h.ct.producerState == "producing"
    assert st.value() == b"0123456789"


def test_a_half_close_before_the_server_answers_follows_the_early_data():
    h = PlugHarness(PlugProxy, SERVER)
    h.send(b"request")
    h.client.readConnectionLost()
    st = h.connect()
    assert st.value() == b"request" and st.write_closed
    assert h.ct.producerState == "producing"  # not resumed: Twisted reads no more of it
    h.reply(b"answer")
    assert h.to_client() == b"answer"


def test_a_client_gone_before_the_server_answers_gives_up():
    h = PlugHarness(PlugProxy, SERVER)
    attempt = h.proxy._attempt
    h.send(b"early")
    h.client.connectionLost(Failure(Exception("reset")))
    assert not attempt.pending
    assert "client left before the server answered" in h.log()


def test_a_refused_connection_closes_the_client_and_the_session():
    h = PlugHarness(PlugProxy, SERVER)
    h.send(b"early")
    _connected, failed = h.pending.pop(0)
    failed(Failure(Refused()))
    assert h.ct.disconnecting and h.closed
    assert "connecting to the server failed" in h.log()


def test_a_session_may_yield_until_the_server_has_spoken():
    """Near a limit (zfw.engine.fair): still opening, nothing from the server yet."""
    h = PlugHarness(PlugProxy, SERVER)
    h.client.dataReceived(b"SSH-2.0-client\r\n")
    assert h.proxy.may_yield()
    h.connect()
    h.proxy.session.track(h.servers[-1][0])  # (as Session.connect_server does)
    assert h.proxy.may_yield()
    h.reply(b"SSH-2.0-server\r\n")
    assert not h.proxy.may_yield()
