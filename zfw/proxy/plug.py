"""PlugProxy: a plain bidirectional byte relay."""

from __future__ import annotations

from typing import ClassVar

from twisted.python.failure import Failure

from zfw.engine.endpoint import Endpoint
from zfw.engine.session import describe_failure
from zfw.proxy.base import Proxy
from zfw.proxy.relay import Relay


class PlugProxy(Proxy):
    """Connects to the server and relays bytes both ways unchanged.

    Attributes a policy may set in ``config()``:

    - ``timeout``: seconds without traffic either way before the session is
      dropped (default 600);
    - ``connect_timeout``: seconds to wait for the server (default 30).
    """

    log_tag: ClassVar[str] = "plug"
    timeout: float = 600.0
    connect_timeout: float = 30.0

    def start(self, client: Endpoint) -> None:
        """Hold the client, connect to the server, then relay."""
        self.client = client
        client.transport.pauseProducing()
        client.on_lost = self._client_lost_early
        self._connector = self.session.connect_server(
            self.connect_timeout, self._connected, self._failed
        )
        self.session.abort = self._give_up

    def _give_up(self) -> None:
        if self._connector.state == "connecting":
            self._connector.stopConnecting()

    def _client_lost_early(self, _ep: Endpoint, _reason: Failure) -> None:
        self.log("info", 4, "client left before the server answered")
        self._give_up()

    def _failed(self, reason: Failure) -> None:
        if not self.client.lost:
            self.log("error", 3, f"connecting to the server failed: {describe_failure(reason)}")
            self.client.transport.loseConnection()
        self.session.close()

    def _connected(self, server: Endpoint) -> None:
        if self.client.lost:  # gone while we connected
            server.transport.loseConnection()
            self.session.close()
            return
        self.adopt(self.client, server)

    def adopt(
        self, client: Endpoint, server: Endpoint, to_server: bytes = b"", to_client: bytes = b""
    ) -> None:
        """Relay between connections another proxy opened (HttpProxy's CONNECT tunnels);
        ``to_server``/``to_client``: bytes that proxy read but did not pass on."""
        self.client = client
        self.relay = Relay(client, server, self.session.idle_watch, self.timeout, self._done)
        self.session.abort = self.relay.abort
        self.relay.start(to_server=to_server, to_client=to_client)

    def _done(self, relay: Relay, reason: str) -> None:
        self.log(
            "info",
            3,
            f"session end: {reason}",
            client_bytes=relay.client.received,
            server_bytes=relay.server.received,
            duration=f"{relay.duration:.3f}",
        )
        self.session.close()
