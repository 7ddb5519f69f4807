"""A pause switch for one connection that several reasons can hold closed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

if TYPE_CHECKING:
    from zfw.stream import Stream


@implementer(IPushProducer)
class Valve:
    """Reads from ``stream`` only while nothing holds the valve.

    Given to the *other* stream's ``throttle``, it is held while that stream's
    send queue is full (backpressure); a proxy holds
    it too while it waits (say, for a response before the next pipelined
    request). ``stopProducing`` does nothing: the proxy decides what to close.
    """

    def __init__(self, stream: Stream | None = None):
        self.stream = stream
        self.reasons: set[str] = set()

    def attach(self, stream: Stream) -> None:
        """Switch to ``stream`` (a new server connection), paused if held."""
        self.stream = stream
        if self.reasons:
            stream.pause()

    def hold(self, reason: str) -> None:
        """Stop reading for ``reason``."""
        if not self.reasons and self.stream is not None:
            self.stream.pause()
        self.reasons.add(reason)

    def release(self, reason: str) -> None:
        """``reason`` no longer holds; read again when no other reason does."""
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and self.stream is not None:
            self.stream.resume()

    def pauseProducing(self) -> None:
        self.hold("backpressure")

    def resumeProducing(self) -> None:
        self.release("backpressure")

    def stopProducing(self) -> None:
        pass
