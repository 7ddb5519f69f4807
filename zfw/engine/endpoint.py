"""One TCP connection of a session, client or server side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from zfw import net


def _ignore(*_args: Any) -> None:
    pass


@implementer(IHalfCloseableProtocol)
class Endpoint(Protocol):
    """A connection whose events a proxy routes by setting callables.

    ``on_data(bytes)``, ``on_eof(endpoint)`` (the peer half-closed) and
    ``on_lost(endpoint, reason)`` start as no-ops, as does ``on_write_closed(endpoint)``
    (our half-close went out after everything written); ``received`` counts bytes.
    Proxies send with ``write(bytes)`` (:func:`zfw.net.writer` of the transport).
    """

    def __init__(self, side: str):
        self.side = side
        self.received = 0
        self.on_data: Callable[[bytes], object] = _ignore
        self.on_eof: Callable[[Endpoint], object] = _ignore
        self.on_lost: Callable[[Endpoint, Failure], object] = _ignore
        self.on_made: Callable[[Endpoint], object] = _ignore
        self.on_write_closed: Callable[[Endpoint], object] = _ignore
        self.lost = False
        self.write: Callable[[bytes], None] = self._write_unconnected

    def _write_unconnected(self, data: bytes) -> None:
        raise RuntimeError(f"write on the {self.side} connection before it was made")

    def silence(self) -> None:
        """From now on no proxy hears of this connection (one that failed to start)."""
        self.on_data = self.on_eof = self.on_lost = self.on_made = self.on_write_closed = _ignore

    def connectionMade(self) -> None:
        self.write = net.writer(self.transport)
        self.on_made(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        self.on_data(data)

    def readConnectionLost(self) -> None:
        self.on_eof(self)

    def writeConnectionLost(self) -> None:
        self.on_write_closed(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        self.on_lost(self, reason)


class ConnectFactory(ClientFactory):
    """Builds the server-side endpoint and reports success or failure once."""

    noisy = False

    def __init__(
        self, on_connected: Callable[[Endpoint], object], on_failed: Callable[[Failure], object]
    ):
        self.on_connected = on_connected
        self.on_failed = on_failed

    def buildProtocol(self, addr: Any) -> Endpoint:
        ep = Endpoint("server")
        ep.on_made = self.on_connected
        return ep

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.on_failed(reason)
