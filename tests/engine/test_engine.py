"""The engine's accept path, on a real accepted socket and a test transport."""

from __future__ import annotations

import io
import socket

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from zfw.engine.endpoint import Endpoint
from zfw.engine.engine import Engine
from zfw.loader import load_policy
from zfw.log import Log, LogSpec

POLICY = """
InetZone('lan', '192.0.2.0/24', outbound_services=['*'])
InetZone('local', '127.0.0.0/8', inbound_services=['*'])

class HalfStarted(PlugProxy):
    def start(self, client):
        client.on_lost = lambda ep, reason: 1 / 0  # would fail if called
        raise RuntimeError('half started')

def i():
    Service('s', HalfStarted)
    Listener(SockAddrInet('', 50001), 's')
"""


def test_a_proxy_that_failed_to_start_hears_nothing_more(write_policy):
    path = write_policy(POLICY)
    policy = load_policy(str(path), "i")
    out = io.StringIO()
    engine = Engine(policy, Log(LogSpec.parse("*:5"), out), MemoryReactorClock())
    engine.accepting = True
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as _client:
            accepted, _ = server.accept()
        with accepted:  # its own address is the "original destination"
            transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4000))
            transport.getHandle = lambda: accepted  # type: ignore[method-assign]
            ep = Endpoint("client")
            ep.makeConnection(transport)
            engine.accept(ep, policy.instance.listeners[0])
    # One line that names the policy's line, not a traceback.
    assert f"{path}:9: HalfStarted start raised RuntimeError: half started; refused" in (
        out.getvalue()
    )
    assert "Traceback" not in out.getvalue()
    assert transport.disconnecting
    ep.connectionLost(Failure(ConnectionDone()))  # the proxy's 1 / 0 is not called
    assert not engine.sessions.active


WRONG_AT_RUN_TIME = """
InetZone('lan', '192.0.2.0/24', outbound_services=['*'])
InetZone('local', '127.0.0.0/8', inbound_services=['*'])

class Odd(PlugProxy):
    def config(self):
        if self.session.client[0] != '192.0.2.1':  # not the dry session's client
            self.timeout = '60'

def i():
    Service('s', Odd)
    Listener(SockAddrInet('', 50001), 's')
"""


def test_a_wrong_option_at_run_time_refuses_the_session_in_one_line(write_policy):
    path = write_policy(WRONG_AT_RUN_TIME)
    policy = load_policy(str(path), "i")  # the dry session's value is good
    out = io.StringIO()
    engine = Engine(policy, Log(LogSpec.parse("*:5"), out), MemoryReactorClock())
    engine.accepting = True
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as _client:
            accepted, _ = server.accept()
        with accepted:
            transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4000))
            transport.getHandle = lambda: accepted  # type: ignore[method-assign]
            ep = Endpoint("client")
            ep.makeConnection(transport)
            engine.accept(ep, policy.instance.listeners[0])
    assert (
        f"{path}:7: Odd start raised OptionError: PlugProxy.timeout must be a number of "
        "seconds, not '60'; refused"
    ) in out.getvalue()
    assert "Traceback" not in out.getvalue()
    assert transport.disconnecting and not engine.sessions.active
