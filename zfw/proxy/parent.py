"""A CONNECT tunnel through a parent proxy, opened the way a connector opens a connection.

HttpProxy hands it to a :class:`~zfw.proxy.tls.TlsTunnelProxy` in place of a
direct connection when ``parent_proxy`` is set: the tunnel decides by the
ClientHello first, then this connects to the parent, sends the ``CONNECT``
request and waits for a 2xx answer (read by the strict sans-IO parser)
before the tunnel's owner hears ``on_connected``. Anything else is
``on_failed``, with a reason that names the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from zfw.engine.decision import Decision
from zfw.http.messages import Broken, HttpViolation, Response
from zfw.http.parser import Parser
from zfw.stream import Stream


class TunnelRefused(Exception):
    """The parent proxy did not open the tunnel; the message says why."""


class ParentTunnel:
    """Connects to the parent proxy of ``decision`` and asks it for a tunnel.

    ``request``: the whole ``CONNECT`` head to send. Like a connection attempt
    (:class:`zfw.net.Attempt`), it is ``pending`` until the parent said 2xx or
    the attempt failed, and :meth:`cancel` gives up (``on_failed`` hears of it).
    ``timeout`` bounds the TCP connect and, again, the wait for the parent's answer.
    """

    def __init__(
        self,
        session: Any,
        decision: Decision,
        request: bytes,
        timeout: float,
        on_connected: Callable[[Stream], object],
        on_failed: Callable[[Failure], object],
    ):
        self.state = "connecting"
        self._session = session
        self._request = request
        self._timeout = timeout
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._parent: Stream | None = None
        self._deadline: Any = None
        self._reader = Parser("response")
        self._reader.expect(b"CONNECT")
        self._attempt = session.connect_server(timeout, self._connected, self._failed, decision)

    @property
    def pending(self) -> bool:
        """The parent has not answered 2xx yet, nor has the attempt failed."""
        return self.state == "connecting"

    def cancel(self) -> None:
        """Give up on the tunnel."""
        if self.state != "connecting":
            return
        if self._parent is None:
            self._attempt.cancel()  # the attempt's failure follows
        else:
            self._fail("gave up waiting for the parent proxy")

    def _connected(self, parent: Stream) -> None:
        if self.state != "connecting":
            parent.close()
            return
        self._parent = parent
        parent.on_data = self._answer
        parent.on_eof = parent.on_lost = lambda *_a: self._fail(
            "the parent proxy closed the connection before answering CONNECT"
        )
        self._deadline = self._session.reactor.callLater(
            self._timeout, self._fail, f"no answer from the parent proxy within {self._timeout:g} s"
        )
        parent.write(self._request)

    def _answer(self, data: bytes) -> None:
        try:
            events = self._reader.feed(data)
        except HttpViolation as e:
            self._fail(f"malformed answer from the parent proxy: {e.reason}")
            return
        for event in events:
            if type(event) is Broken:
                self._fail(f"malformed answer from the parent proxy: {event.reason}")
                return
            if type(event) is not Response or event.status < 200:
                continue  # interim answers, and the end of a refusal's body
            if event.status >= 300:
                reason = event.reason.decode("latin-1")
                self._fail(f"the parent proxy answered {event.status} {reason}".rstrip())
                return
            self._established()
            return

    def _established(self) -> None:
        parent = self._parent
        assert parent is not None
        self.state = "connected"
        self._cancel_deadline()
        early = self._reader.take_buffer()  # tunnel bytes that came with the 200
        parent.on_data = parent.on_eof = parent.on_lost = lambda *_a: None
        self._on_connected(parent)
        if early:
            parent.on_data(early)  # already counted in parent.received

    def _failed(self, reason: Failure) -> None:
        if self.state == "connecting":
            self.state = "disconnected"
            self._cancel_deadline()
            self._on_failed(reason)

    def _fail(self, why: str) -> None:
        if self.state != "connecting":
            return
        parent, self._parent = self._parent, None
        if parent is not None:
            parent.on_data = parent.on_eof = parent.on_lost = lambda *_a: None
            if not parent.lost:
                parent.close()
        self._failed(Failure(TunnelRefused(why)))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
