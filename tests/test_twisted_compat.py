"""zfw.twisted_compat: the self-check finds a changed internal, and the public API relays."""

from __future__ import annotations

import socket
import time

import pytest
from twisted.internet import epollreactor, tcp
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from zfw import net, twisted_compat
from zfw.engine.endpoint import ConnectFactory, Endpoint
from zfw.proxy.relay import Relay


@pytest.fixture(autouse=True)
def _fresh_check():
    twisted_compat.reset()
    yield
    twisted_compat.reset()


def test_the_internals_of_this_twisted_hold():
    assert twisted_compat.check() == []
    assert twisted_compat.fast()
    assert "fast paths on" in twisted_compat.status()


def test_a_missing_member_is_found(monkeypatch):
    monkeypatch.setattr(
        twisted_compat, "REQUIRED", (*twisted_compat.REQUIRED, (tcp.Connection, "_zfw_gone"))
    )
    problems = twisted_compat.check()
    assert problems == ["twisted.internet.tcp.Connection._zfw_gone is gone"]
    assert not twisted_compat.fast()
    assert "public API only (twisted.internet.tcp.Connection._zfw_gone is gone)" in (
        twisted_compat.status()
    )


def test_an_attribute_no_longer_set_is_found(monkeypatch):
    monkeypatch.setattr(
        twisted_compat,
        "ASSIGNED",
        (*twisted_compat.ASSIGNED, (tcp.Client.__init__, "_zfw_never_set")),
    )
    assert twisted_compat.check() == ["_BaseTCPClient.__init__ no longer sets _zfw_never_set"]


def test_a_changed_behaviour_is_found(monkeypatch):
    """A queue that Twisted keeps elsewhere than zfw reads: the probe notices."""
    monkeypatch.setattr(twisted_compat, "_idle", lambda t: True)
    assert "queued data is not seen (_tempDataLen, dataBuffer, offset)" in twisted_compat.check()


def test_the_switch_turns_the_fast_paths_off(monkeypatch):
    monkeypatch.setenv(twisted_compat.SWITCH, "public")
    assert not twisted_compat.fast()
    assert "ZFW_TWISTED_INTERNALS=public" in twisted_compat.status()


def test_off_the_fast_paths_nothing_internal_is_used():
    twisted_compat.use_public_api("test")
    a, b = socket.socketpair()
    try:
        t = tcp.Connection(a, Protocol(), None)
        assert twisted_compat.writer(t) == t.write
        assert not twisted_compat.close_now(t) and not twisted_compat.half_close_now(t)
    finally:
        a.close()
        b.close()


class _Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()


def _spin(reactor, done, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "nothing happened in time"
        reactor.runUntilCurrent()
        reactor.doIteration(0.05)


@pytest.mark.parametrize("source", [None, ("127.0.0.1", 0)])
def test_a_relay_on_the_public_api_carries_bytes_and_half_closes(source):
    """Twisted's own reactor, Twisted's own connect (or ours, adopted, from a source
    address), Twisted's own writes and closes: the relay works the same."""
    twisted_compat.use_public_api("test")
    reactor = epollreactor.EPollReactor()
    try:
        echo = reactor.listenTCP(0, Factory.forProtocol(_Echo), interface="127.0.0.1")
        front = socket.create_server(("127.0.0.1", 0))
        front.setblocking(False)
        user = socket.create_connection(front.getsockname())
        accepted, _ = front.accept()
        client = Endpoint("client")
        done: list[str] = []
        servers: list[Endpoint] = []

        class Adopt(ClientFactory):
            def buildProtocol(self, addr):
                return client

        reactor.adoptStreamConnection(accepted.fileno(), socket.AF_INET, Adopt())
        accepted.close()
        factory = ConnectFactory(servers.append, lambda r: done.append(f"failed {r.value}"))
        attempt = net.connect(reactor, "127.0.0.1", echo.getHost().port, factory, source)
        _spin(reactor, lambda: servers or done)
        assert servers and not attempt.pending
        relay = Relay(client, servers[0], None, None, lambda r, why: done.append(why))
        relay.start()
        user.sendall(b"x" * 100_000)
        user.shutdown(socket.SHUT_WR)
        got = bytearray()
        user.setblocking(False)

        def read() -> bool:
            try:
                chunk = user.recv(65536)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            got.extend(chunk)
            return False

        _spin(reactor, lambda: read() and bool(done))
        assert bytes(got) == b"x" * 100_000
        assert done == ["closed by both sides"]
        user.close()
        front.close()
        echo.stopListening()
    finally:
        reactor._poller.close()
