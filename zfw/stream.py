"""The stream contract: what a proxy may do with a connection, and what it hears of it.

Every proxy talks to its connections only through this contract, so that a
proxy runs unchanged on a TCP connection (:class:`zfw.engine.endpoint.Endpoint`)
or on a layer that implements the same contract over one (a TLS layer that
decrypts). Events are delivered by calling the ``on_*`` attributes, which a
proxy sets and may change at any time (a hand-over to another proxy sets them
anew); they start as no-ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twisted.python.failure import Failure


class Stream(Protocol):
    """One connection of a session, seen from a proxy.

    Events (the proxy sets them):

    - ``on_data(bytes)``: bytes arrived;
    - ``on_eof(stream)``: the peer half-closed (it will send no more; we may);
    - ``on_write_closed(stream)``: our half-close went out after all we wrote;
    - ``on_lost(stream, reason)``: the connection is gone (after a close, an
      abort, or from the peer); nothing is heard of it afterwards.

    State: ``side`` (``client``, ``server``, ...), ``received`` (bytes so far),
    ``lost``, ``peer`` and ``local`` (``(host, port)`` of each end).
    """

    side: str
    received: int
    lost: bool
    on_data: Callable[[bytes], object]
    on_eof: Callable[[Any], object]
    on_write_closed: Callable[[Any], object]
    on_lost: Callable[[Any, Failure], object]

    def write(self, data: bytes) -> None:
        """Send ``data`` after what was written before (queued without limit: use
        :meth:`throttle` to pause the source while the queue is full)."""

    def pause(self) -> None:
        """Stop reading: no ``on_data`` until :meth:`resume`."""

    def resume(self) -> None:
        """Read again."""

    @property
    def producer(self) -> Any:
        """A push producer that pauses and resumes this stream's reading, to give to
        another stream's :meth:`throttle`."""

    def throttle(self, producer: Any) -> None:
        """Pause ``producer`` whenever what we have to send piles up, resume it when it
        has gone out (backpressure); one producer at a time."""

    def unthrottle(self) -> None:
        """Forget the producer given to :meth:`throttle`."""

    def half_close(self) -> None:
        """Send end-of-output after what is queued (a FIN; under TLS close_notify first);
        we keep reading."""

    def close(self, drained: bool = False) -> None:
        """Close after what is queued has gone out; ``drained``: the peer half-closed
        and nothing is queued, so the connection may close at once."""

    def abort(self) -> None:
        """Drop the connection now, discarding what is queued."""

    def silence(self) -> None:
        """From now on no proxy hears of this stream (one that failed to start)."""

    @property
    def peer(self) -> tuple[str, int]:
        """The address at the other end."""

    @property
    def local(self) -> tuple[str, int]:
        """Our address on this connection (under TPROXY: where the client was going)."""
