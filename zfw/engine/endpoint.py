"""One TCP connection of a session, client or server side: the stream contract on TCP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from zfw import twisted_compat


def _ignore(*_args: Any) -> None:
    pass


@implementer(IHalfCloseableProtocol)
class Endpoint(Protocol):
    """A TCP connection that implements :class:`zfw.stream.Stream` over its transport.

    ``on_made(endpoint)`` is called when the connection is made (for the
    factories that build endpoints). Writes go out at once when nothing is
    queued (:func:`zfw.twisted_compat.writer`); closes and half-closes of a
    drained connection happen now, not on the reactor's next turn.
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

    # -- the stream contract ----------------------------------------------------------

    def pause(self) -> None:
        """Stop reading."""
        self.transport.pauseProducing()

    def resume(self) -> None:
        """Read again."""
        self.transport.resumeProducing()

    @property
    def producer(self) -> Any:
        """Pauses and resumes this connection's reading (the transport itself)."""
        return self.transport

    def throttle(self, producer: Any) -> None:
        """Pause ``producer`` while our send queue is full."""
        self.transport.registerProducer(producer, True)

    def unthrottle(self) -> None:
        """Forget the producer (if there is one)."""
        if self.transport.producer is not None:
            self.transport.unregisterProducer()

    def half_close(self) -> None:
        """Send our FIN after what is queued; keep reading."""
        self.unthrottle()
        t = self.transport
        if not twisted_compat.half_close_now(t):
            t.loseWriteConnection()

    def close(self, drained: bool = False) -> None:
        """Close after what is queued; ``drained``: at once if nothing is."""
        self.unthrottle()
        t = self.transport
        if not (drained and twisted_compat.close_now(t)):
            t.loseConnection()

    def abort(self) -> None:
        """Drop the connection now."""
        self.transport.abortConnection()

    @property
    def peer(self) -> tuple[str, int]:
        """The peer's address."""
        a = self.transport.getPeer()
        return a.host, a.port

    @property
    def local(self) -> tuple[str, int]:
        """Our address."""
        a = self.transport.getHost()
        return a.host, a.port

    # -- Twisted's protocol -----------------------------------------------------------

    def connectionMade(self) -> None:
        self.write = twisted_compat.writer(self.transport)
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
