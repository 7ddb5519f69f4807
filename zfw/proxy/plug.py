"""PlugProxy: a plain bidirectional byte relay."""

from __future__ import annotations

from typing import ClassVar

from twisted.python.failure import Failure

from zfw import net
from zfw.engine.session import describe_failure
from zfw.options import option, seconds, size
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.relay import Relay
from zfw.stream import Stream


class PlugProxy(Proxy):
    """Connects to the server and relays bytes both ways unchanged; its options are
    declared below (docs/policy.md lists them)."""

    log_tag: ClassVar[str] = "plug"
    needs_server: ClassVar[bool] = True
    timeout: float = option(
        seconds(zero=True), 600.0, "idle seconds (no traffic either way); 0: no limit"
    )
    connect_timeout: float = option(seconds(), 30.0, "seconds to wait for the server")
    max_early_data: int = option(
        size(1),
        65536,
        "bytes read from the client while the server connection is being made; "
        "past it, reading waits for the server",
    )

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Connect to the server (or take the one handed over); what the client sends
        meanwhile waits, then relay."""
        self.client = client
        handover = handover or Handover()
        if handover.server is not None:
            self._relay(
                client,
                handover.server,
                handover.pending,
                handover.to_client,
                handover.client_eof,
            )
            return
        self._early: list[bytes] = [handover.pending] if handover.pending else []
        self._early_size = len(handover.pending)
        self._early_eof = handover.client_eof
        client.on_data = self._early_data
        client.on_eof = self._early_end
        client.on_lost = self._client_lost_early
        connect = handover.connect or self.session.connect_server
        self._attempt = connect(self.connect_timeout, self._connected, self._failed)

    def state(self) -> str:
        """Connecting, or relaying."""
        return "relaying" if getattr(self, "relay", None) is not None else "connecting"

    def _early_data(self, data: bytes) -> None:
        # Kept for the server rather than left in the socket: most clients speak
        # first, and pausing the client costs two epoll_ctl for every session.
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size >= self.max_early_data:
            self.client.pause()  # the relay resumes it

    def _early_end(self, _ep: Stream) -> None:
        self._early_eof = True  # the relay passes it on after the early data

    def _client_lost_early(self, _ep: Stream, _reason: Failure) -> None:
        self.log("info", 4, "client left before the server answered")
        self._attempt.cancel()

    def _failed(self, reason: Failure) -> None:
        if not self.client.lost:
            self.log("error", 3, f"connecting to the server failed: {describe_failure(reason)}")
            self.client.close()
        self.session.close()

    def _connected(self, server: Stream) -> None:
        if self.client.lost:  # gone while we connected
            server.close()
            self.session.close()
            return
        early, self._early = b"".join(self._early), []
        self._relay(self.client, server, early, b"", self._early_eof)

    def _relay(
        self, client: Stream, server: Stream, to_server: bytes, to_client: bytes, client_eof: bool
    ) -> None:
        self.client = client
        self.relay = Relay(client, server, self.session.idle_watch, self.timeout, self._done)
        self.relay.start(to_server=to_server, to_client=to_client, client_eof=client_eof)

    def _done(self, relay: Relay, reason: str) -> None:
        self.log(
            "info",
            3,
            f"session end: {reason}",
            client=net.fmt_addr(*self.session.client),
            server=net.fmt_addr(*target) if (target := self.session.decision.target) else "-",
            client_bytes=relay.client.received,
            server_bytes=relay.server.received,
            duration=f"{relay.duration:.3f}",
        )
        self.session.close()
