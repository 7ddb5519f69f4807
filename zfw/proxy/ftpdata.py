"""The FTP data channel: two halves, each a listener or a connection, then a relay.

For every transfer the control channel prepares one :class:`DataChannel`.
Its client half and its server half are each either

- a one-shot **listener** (on a foreign address where transparency needs
  it: the server's address toward the client, the client's toward the
  server), which accepts exactly one connection from the expected peer and
  refuses any other (port theft), or
- a **connection** that zfw makes when the transfer command goes out
  (from the server's address toward the client, port 20 where possible).

When both halves are connected, PlugProxy's :class:`~zfw.proxy.relay.Relay`
copies the bytes with backpressure both ways. The channel ends once: the
relay is done, it was aborted, or nothing arrived within ``data_timeout``.

What a channel needs of its control connection is written down in
:class:`DataSettings` (limits, fixed per transfer) and :class:`ControlLink`
(the session and where to report); it knows nothing else of FtpProxy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from zfw import net
from zfw.engine.decision import plain_host
from zfw.engine.endpoint import ConnectFactory, Endpoint
from zfw.engine.session import describe_failure
from zfw.proxy.relay import Relay

if TYPE_CHECKING:
    from zfw.engine.session import Session

SIDES = ("client", "server")


@attrs.frozen
class DataSettings:
    """The limits of one data channel, from the control proxy's attributes."""

    #: Idle seconds before the relay is dropped.
    timeout: float
    #: Seconds for both halves to connect.
    data_timeout: float
    connect_timeout: float
    #: The range zfw's listeners take their ports from.
    ports: tuple[int, int]


class ControlLink(Protocol):
    """What a data channel asks of its control connection."""

    session: Session

    def log(self, kind: str, level: int, message: str, **fields: object) -> None:
        """Log under the control proxy's tag."""

    def violation(self, reason: str) -> None:
        """Log and count a protocol violation."""


class _OneShotFactory(Factory):
    noisy = False

    def __init__(self, channel: DataChannel, side: str):
        self.channel = channel
        self.side = side

    def buildProtocol(self, addr: Any) -> Endpoint:
        ep = Endpoint(self.side)
        ep.on_made = self._made
        return ep

    def _made(self, ep: Endpoint) -> None:
        self.channel._accepted(self.side, ep)


class DataChannel:
    """The data connection of one transfer, between the client and the server."""

    def __init__(
        self,
        control: ControlLink,
        settings: DataSettings,
        on_finished: Callable[[DataChannel], None],
    ):
        self.control = control
        self.session = control.session
        self.settings = settings
        self.on_finished = on_finished
        self.reactor = self.session.reactor
        self.ends: dict[str, Endpoint] = {}
        self.ports: dict[str, Any] = {}
        self.expected: dict[str, str] = {}
        self.targets: dict[str, tuple[tuple[str, int], tuple[str, int] | None]] = {}
        self.attempts: list[net.Attempt] = []
        self.relay: Relay | None = None
        self.started = False
        self.done = False
        #: Whether the data went through and both sides closed in order.
        self.ok = False
        self.end_reason = ""
        #: The side that receives the data (``client`` for a download), once known.
        self.receiver: str | None = None
        self.delivered = False
        self._on_delivered: Callable[[bool], None] | None = None
        self._timer = self.reactor.callLater(settings.data_timeout, self._timed_out)

    # --- setting up ------------------------------------------------------------------------

    def listen(self, side: str, host: str, expected_peer: str) -> int:
        """Open the one-shot listener of ``side`` on ``host``; the port it got.

        Raises :class:`~zfw.errors.NetError` when no port of the range is free.
        """
        port = net.listen_in_range(
            self.reactor, host, self.settings.ports, _OneShotFactory(self, side)
        )
        self.ports[side] = port
        self.expected[side] = expected_peer
        return port.getHost().port

    def connect_later(
        self, side: str, target: tuple[str, int], source: tuple[str, int] | None
    ) -> None:
        """Connect ``side`` to ``target`` (from ``source``) when the transfer starts."""
        self.targets[side] = (target, source)

    def start(self, receiver: str) -> None:
        """The transfer command went out: make the connections that are ours to make.

        ``receiver`` is the side the data goes to (``client`` for a download).
        """
        self.started = True
        self.receiver = receiver
        for side, (target, source) in self.targets.items():
            self._connect(side, target, source)

    def _connect(self, side: str, target: tuple[str, int], source: tuple[str, int] | None) -> None:
        def failed(reason: Failure) -> None:
            if self.done:
                return
            if source is not None and source[1]:  # the fixed port is busy: any port will do
                self._connect(side, target, (source[0], 0))
                return
            self.control.log(
                "error",
                3,
                f"data connection to the {side} at {net.fmt_addr(*target)} failed: "
                f"{describe_failure(reason)}",
            )
            self.abort(f"cannot connect to the {side}")

        factory = ConnectFactory(lambda ep: self._arrived(side, ep), failed)
        self.attempts.append(
            self.session.connect(target, factory, source, self.settings.connect_timeout)
        )

    # --- connections arriving ------------------------------------------------------------

    def _accepted(self, side: str, ep: Endpoint) -> None:
        peer = plain_host(ep.peer[0])
        expected = self.expected[side]
        if peer != expected:
            self.control.violation(
                f"data connection to the {side} listener from {peer}, "
                f"expected {expected}: refused (port theft)"
            )
            ep.abort()
            return
        port = self.ports.pop(side, None)
        if port is not None:
            port.stopListening()
        self._arrived(side, ep)

    def _arrived(self, side: str, ep: Endpoint) -> None:
        if self.done or side in self.ends:
            ep.abort()
            return
        ep.side = side
        ep.on_write_closed = self._write_closed
        ep.pause()
        ep.on_lost = self._lost_early
        self.ends[side] = ep
        self.session.track(ep)  # the session's bytes include its transfers
        if len(self.ends) == 2:
            self._timer.cancel()
            self.relay = Relay(
                self.ends["client"],
                self.ends["server"],
                self.session.idle_watch,
                self.settings.timeout,
                self._relayed,
            )
            self.relay.start()

    def _lost_early(self, ep: Endpoint, _reason: Failure) -> None:
        self.ends.pop(ep.side, None)
        self.abort(f"the {ep.side} closed the data connection before the other side came")

    # --- the end ---------------------------------------------------------------------------

    def when_delivered(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` once the data has reached the receiver (at once if it has).

        Delivered means the receiver's connection got all the data and our FIN
        after it, or the channel ended; ``ok`` is False when it was cut short.
        """
        if self.delivered or self.done:
            callback(self.delivered or self.ok)
        else:
            self._on_delivered = callback

    def _write_closed(self, ep: Endpoint) -> None:
        if ep.side == self.receiver and not self.done:
            self._deliver(True)

    def _deliver(self, ok: bool) -> None:
        self.delivered = self.delivered or ok
        cb, self._on_delivered = self._on_delivered, None
        if cb is not None:
            cb(ok)

    def _relayed(self, relay: Relay, reason: str) -> None:
        self._finish(reason, ok=reason in ("closed by both sides", "closed"))

    def _timed_out(self) -> None:
        reason = f"no data connection within {self.settings.data_timeout:g} s"
        self.control.log("info", 4, f"data channel expired: {reason}")
        self._finish(reason, ok=False)

    def abort(self, reason: str) -> None:
        """Drop whatever is open of the channel now."""
        if self.relay is not None and not self.done:
            self.relay.abort(reason)  # calls back _relayed
            self.ok = False
        self._finish(reason, ok=False)

    def _finish(self, reason: str, ok: bool) -> None:
        if self.done:
            return
        self.done = True
        self.ok = ok
        self.end_reason = reason
        if self._timer.active():
            self._timer.cancel()
        for port in self.ports.values():
            port.stopListening()
        self.ports.clear()
        for attempt in self.attempts:
            attempt.cancel()
        if self.relay is None:
            for ep in self.ends.values():
                if not ep.lost:
                    ep.abort()
        self._deliver(ok)
        self.on_finished(self)

    def traffic(self) -> int:
        """Bytes relayed so far."""
        return self.relay.traffic() if self.relay is not None else 0

    def bytes(self) -> tuple[int, int]:
        """Bytes from the client and from the server."""
        if self.relay is None:
            return 0, 0
        return self.relay.client.received, self.relay.server.received
