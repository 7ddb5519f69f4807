"""A pause switch for one connection that several reasons can hold closed."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class Valve:
    """Reads from ``transport`` only while nothing holds the valve.

    Registered as the streaming producer of the *other* connection, it is held
    while that connection's write buffer is full (backpressure); a proxy holds
    it too while it waits (say, for a response before the next pipelined
    request). ``stopProducing`` does nothing: the proxy decides what to close.
    """

    def __init__(self, transport: Any = None):
        self.transport = transport
        self.reasons: set[str] = set()

    def attach(self, transport: Any) -> None:
        """Switch to ``transport`` (a new server connection), paused if held."""
        self.transport = transport
        if self.reasons and transport is not None:
            transport.pauseProducing()

    def hold(self, reason: str) -> None:
        """Stop reading for ``reason``."""
        if not self.reasons and self.transport is not None:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def release(self, reason: str) -> None:
        """``reason`` no longer holds; read again when no other reason does."""
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and self.transport is not None:
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.hold("backpressure")

    def resumeProducing(self) -> None:
        self.release("backpressure")

    def stopProducing(self) -> None:
        pass
