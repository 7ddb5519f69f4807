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


FAIR = """
InetZone('lan', '192.0.2.0/24', outbound_services=['*'])
InetZone('local', '127.0.0.0/8', inbound_services=['*'])

def i():
    InstanceOptions(headroom=0)
    Service('web', HttpProxy, max_sessions=2)
    Listener(SockAddrInet('', 50001), 'web')
"""


def test_at_the_limit_the_busiest_address_yields(write_policy):
    path = write_policy(FAIR)
    policy = load_policy(str(path), "i")
    out = io.StringIO()
    engine = Engine(policy, Log(LogSpec.parse("*:3"), out), MemoryReactorClock())
    engine.accepting = True
    transports = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        for client in ("192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.8"):
            with socket.create_connection(server.getsockname()) as _client:
                accepted, _ = server.accept()
            with accepted:
                transport = StringTransport(peerAddress=IPv4Address("TCP", client, 4000))
                transport.getHandle = lambda a=accepted: a  # type: ignore[method-assign]
                ep = Endpoint("client")
                ep.makeConnection(transport)
                engine.accept(ep, policy.instance.listeners[0])
                transports.append(transport)
    stats = engine.stats.service("web")
    log = out.getvalue()
    # The third from .7 is refused: that address holds the most, at the limit.
    assert stats.refused_fair == 1 and transports[2].disconnecting
    assert "192.0.2.7 holds the most sessions (2) of service 'web', at its limit of 2" in log
    # .8 gets in: .7's oldest session, still reading its first request, makes room.
    assert stats.evicted == 1 and stats.total == 3
    assert transports[0].disconnecting and not transports[1].disconnecting
    assert not transports[3].disconnecting
    assert (
        "(i/web:1): closed to make room: service 'web' is at its limit of 2: 192.0.2.8 "
        "needs room; 192.0.2.7:4000 holds the most sessions (reading a request)"
    ) in log
    assert sorted(s.client[0] for s in engine.sessions.active) == ["192.0.2.7", "192.0.2.8"]
