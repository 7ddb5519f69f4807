"""Valve: one stream's reading, held closed by any of several reasons."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from zfw.engine.endpoint import Endpoint
from zfw.proxy.valve import Valve


def _stream() -> tuple[Endpoint, StringTransport]:
    ep, t = Endpoint("client"), StringTransport()
    ep.makeConnection(t)
    return ep, t


def test_reading_resumes_only_when_no_reason_holds():
    ep, t = _stream()
    v = Valve(ep)
    v.hold("wait")
    v.pauseProducing()  # the other side's write buffer is full
    assert t.producerState == "paused" and v.reasons == {"wait", "backpressure"}
    v.release("wait")
    assert t.producerState == "paused"
    v.resumeProducing()
    assert t.producerState == "producing" and not v.reasons


def test_holding_twice_and_releasing_what_is_not_held_change_nothing():
    ep, t = _stream()
    v = Valve(ep)
    v.release("wait")
    assert t.producerState == "producing"
    v.hold("wait")
    v.hold("wait")
    v.release("wait")
    assert t.producerState == "producing"


def test_a_new_transport_starts_paused_while_held():
    v = Valve()
    v.hold("backpressure")  # no transport yet: only remembered
    ep, t = _stream()
    v.attach(ep)
    assert t.producerState == "paused"
    v.release("backpressure")
    assert t.producerState == "producing"
    v.attach(None)
    v.hold("wait")  # nothing to pause


def test_stop_producing_leaves_closing_to_the_proxy():
    t = StringTransport()
    Valve(t).stopProducing()
    assert not t.disconnecting and t.producerState == "producing"
