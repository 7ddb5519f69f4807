"""The relay over in-memory transports: data, half-close, backpressure, idle timeout."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from zfw.engine.endpoint import Endpoint
from zfw.engine.idle import IdleWatch
from zfw.proxy.relay import Relay


class HalfCloseTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.write_closed = False
        self.aborted = False

    def unregisterProducer(self):  # real transports allow this twice
        self.producer = None

    def loseWriteConnection(self):
        self.write_closed = True

    def abortConnection(self):
        self.aborted = True
        self.loseConnection()


def pair(timeout=None):
    clock = Clock()
    c, s = Endpoint("client"), Endpoint("server")
    c.makeConnection(HalfCloseTransport())
    s.makeConnection(HalfCloseTransport())
    done = []
    relay = Relay(c, s, IdleWatch(clock, tick=1), timeout, lambda r, why: done.append(why))
    relay.start(to_server=b"early")
    return relay, c, s, clock, done


def test_bytes_flow_both_ways_and_are_counted():
    _relay, c, s, _clock, _done = pair()
    c.dataReceived(b"abc")
    s.dataReceived(b"xyz!")
    assert s.transport.value() == b"earlyabc"
    assert c.transport.value() == b"xyz!"
    assert (c.received, s.received) == (3, 4)


def test_each_transport_produces_for_the_other():
    _relay, c, s, _clock, _done = pair()
    assert c.transport.producer is s.transport and c.transport.streaming
    assert s.transport.producer is c.transport


def test_half_close_is_passed_on_and_both_ends_finish():
    _relay, c, s, _clock, done = pair()
    c.readConnectionLost()
    assert s.transport.write_closed and s.transport.producer is None
    assert not done
    s.dataReceived(b"still answering")
    assert c.transport.value() == b"still answering"
    s.readConnectionLost()
    assert c.transport.disconnecting  # both directions over: closed at once
    assert done == ["closed by both sides"]


def test_closing_at_once_reports_the_end_once_with_its_reason(monkeypatch):
    """close_drained() tells the protocol of the loss before it returns (real TCP)."""
    closed = []

    def close_drained(transport):
        ep = c if transport is c.transport else s
        closed.append(ep.side)
        ep.connectionLost()
        return True

    monkeypatch.setattr("zfw.twisted_compat.close_now", close_drained)
    _relay, c, s, _clock, done = pair()
    c.readConnectionLost()
    s.readConnectionLost()
    assert closed == ["client", "server"]
    assert done == ["closed by both sides"]


def test_lost_side_closes_the_other():
    _relay, c, s, _clock, done = pair()
    s.connectionLost()
    assert c.transport.disconnecting
    assert done == ["server connection lost"]


def test_idle_timeout_counts_only_silence():
    relay, c, s, clock, done = pair(timeout=10)
    for _ in range(5):
        clock.advance(1)
    c.dataReceived(b"x")  # traffic at t=5 restarts the count
    for _ in range(9):
        clock.advance(1)
    assert not done
    for _ in range(2):
        clock.advance(1)
    assert done == ["idle for 10 s"]
    assert c.transport.disconnecting and s.transport.disconnecting
    assert len(relay.idle_watch) == 0 and not clock.getDelayedCalls()


def test_finished_relays_leave_the_watch():
    relay, c, s, clock, done = pair(timeout=10)
    c.readConnectionLost()
    s.readConnectionLost()
    assert done == ["closed by both sides"]
    assert len(relay.idle_watch) == 0
    clock.advance(1)
    assert not clock.getDelayedCalls()  # the sweep stops when nothing is watched
