"""A bidirectional byte relay between two endpoints, with backpressure.

Each stream throttles the other: when one side's send queue fills (a slow
reader), the other side is not read until it drains, so memory per session
stays bounded (a few socket reads) however slow either peer is. A half-close
is passed on; the relay ends when both directions have ended or either side
is lost. Used by PlugProxy, CONNECT tunnels, the TLS tunnel and FTP data
channels, on any :class:`zfw.stream.Stream`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.python.failure import Failure

from zfw.engine.idle import IdleWatch
from zfw.stream import Stream


class Relay:
    """Copies bytes both ways between ``client`` and ``server`` until both are done."""

    due: float | None = None  # no deadlines, only the idle timeout

    def __init__(
        self,
        client: Stream,
        server: Stream,
        idle_watch: IdleWatch | None,
        idle_timeout: float | None,
        on_done: Callable[[Relay, str], None],
    ):
        self.client = client
        self.server = server
        self.idle_watch = idle_watch
        self.idle_timeout = idle_timeout
        self.on_done = on_done
        self.started = time.monotonic()
        self._eof: set[str] = set()
        self._done = False
        self.end_reason = ""

    def start(
        self, to_server: bytes = b"", to_client: bytes = b"", client_eof: bool = False
    ) -> None:
        """Start relaying; ``to_server``/``to_client`` are bytes a proxy already read,
        ``client_eof``: the client half-closed after them (passed on to the server)."""
        c, s = self.client, self.server
        c.on_data = s.write
        s.on_data = c.write
        c.on_eof = s.on_eof = self._eof_from
        c.on_lost = s.on_lost = self._lost
        c.throttle(s.producer)
        s.throttle(c.producer)
        if to_server:
            s.write(to_server)
        if to_client:
            c.write(to_client)
        if client_eof:
            self._eof_from(c)  # Twisted reads no more from it: no resuming
        else:
            c.resume()
        s.resume()
        if self.idle_timeout and self.idle_watch is not None:
            self.idle_watch.add(self)

    def _other(self, ep: Stream) -> Stream:
        return self.server if ep is self.client else self.client

    def _eof_from(self, ep: Stream) -> None:
        """``ep``'s peer will send no more: pass the half-close on."""
        self._eof.add(ep.side)
        if len(self._eof) == 2:
            # Both directions are over: close at once rather than half-close first.
            self._finish("closed by both sides", drained=True)
            return
        other = self._other(ep)
        if not other.lost:
            other.half_close()

    def _lost(self, ep: Stream, reason: Failure) -> None:
        if self._done:
            return
        self._finish(f"{ep.side} connection lost" if ep.side not in self._eof else "closed")

    def abort(self, reason: str = "aborted") -> None:
        """Drop both connections now."""
        self._finish(reason, abort=True)

    def traffic(self) -> int:
        """Bytes relayed so far, both ways (for the idle watch)."""
        return self.client.received + self.server.received

    def expire(self, reason: str) -> None:
        """Close both sides in order (the idle watch found no traffic)."""
        self._finish(reason)

    def _finish(self, reason: str, abort: bool = False, drained: bool = False) -> None:
        """Close both sides; ``drained``: both have half-closed, nothing is left to read."""
        first = not self._done
        self._done = True  # before closing: a close may report connectionLost at once
        for ep in (self.client, self.server):
            if ep.lost:
                continue
            if abort:
                ep.abort()
            else:
                ep.close(drained)
        if not first:
            return
        self.end_reason = reason
        if self.idle_watch is not None:
            self.idle_watch.discard(self)
        self.on_done(self, reason)

    @property
    def duration(self) -> float:
        """Seconds since the relay started."""
        return time.monotonic() - self.started
