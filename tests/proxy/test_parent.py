"""ParentTunnel: asking a parent proxy for a CONNECT tunnel, as a connector would."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.proxy.harness import FakeAttempt
from zfw.engine.decision import Decision
from zfw.engine.endpoint import Endpoint
from zfw.engine.session import describe_failure
from zfw.proxy.parent import ParentTunnel

CONNECT = b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n"
PARENT = Decision(True, "ok", target=("198.51.100.8", 3128))


class Setup:
    """A ParentTunnel whose TCP connection the test completes or fails."""

    def __init__(self, timeout=30):
        self.reactor = Clock()
        self.attempts = []
        self.connected = []
        self.failed = []
        self.relay = None  # stands for what takes the tunnel over: its on_data
        self.connector = FakeAttempt()
        self.tunnel = ParentTunnel(self, PARENT, CONNECT, timeout, self._connected, self._failed)

    def connect_server(self, timeout, on_connected, on_failed, decision=None):
        self.attempts.append((timeout, on_connected, on_failed, decision))
        return self.connector

    def _connected(self, ep):
        self.connected.append(ep)
        if self.relay is not None:
            ep.on_data = self.relay

    def _failed(self, reason):
        self.failed.append(describe_failure(reason))

    def tcp_up(self):
        ep = Endpoint("server")
        st = StringTransport(peerAddress=IPv4Address("TCP", *PARENT.target))
        ep.makeConnection(st)
        self.attempts[0][1](ep)
        return ep, st


def test_the_tunnel_is_there_after_a_2xx_and_early_bytes_follow():
    s = Setup()
    assert s.attempts[0][0] == 30 and s.attempts[0][3] is PARENT
    ep, st = s.tcp_up()
    assert st.value() == CONNECT and s.tunnel.state == "connecting"
    seen = []
    s.relay = seen.append
    ep.dataReceived(b"HTTP/1.1 100 Wait\r\n\r\nHTTP/1.1 200 OK\r\n\r\nearly")
    assert s.tunnel.state == "connected" and s.connected == [ep] and seen == [b"early"]
    assert ep.received == len(b"HTTP/1.1 100 Wait\r\n\r\nHTTP/1.1 200 OK\r\n\r\nearly")
    assert not s.reactor.getDelayedCalls() and not s.failed


def test_a_refusal_a_malformed_answer_a_close_and_silence_fail_with_a_reason():
    answers = {
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n": (
            "the parent proxy answered 407 Proxy Authentication Required"
        ),
        b"HTTP/1.1 200 OK\nX: y\r\n\r\n": "malformed answer from the parent proxy: bare CR or LF",
        b"SSH-2.0-OpenSSH\r\n\r\n": "malformed answer from the parent proxy",
    }
    for answer, reason in answers.items():
        s = Setup()
        ep, st = s.tcp_up()
        ep.dataReceived(answer)
        assert s.failed and s.failed[0].startswith(reason), s.failed
        assert st.disconnecting and not s.connected and s.tunnel.state == "disconnected"

    s = Setup()
    ep, st = s.tcp_up()
    ep.readConnectionLost()
    assert s.failed == ["the parent proxy closed the connection before answering CONNECT"]

    s = Setup(timeout=5)
    ep, st = s.tcp_up()
    s.reactor.advance(5)
    assert s.failed == ["no answer from the parent proxy within 5 s"] and st.disconnecting


def test_giving_up_and_a_refused_connection():
    s = Setup()
    s.tunnel.cancel()
    assert not s.connector.pending  # the attempt reports the failure
    s.attempts[0][2](Failure(ConnectionRefusedError()))
    assert len(s.failed) == 1 and not s.tunnel.pending

    s = Setup()
    ep, st = s.tcp_up()
    s.tunnel.cancel()
    assert s.failed == ["gave up waiting for the parent proxy"] and st.disconnecting
    ep.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")  # too late: nothing happens
    assert not s.connected and len(s.failed) == 1
