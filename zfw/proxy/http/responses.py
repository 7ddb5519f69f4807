"""HttpProxy, server side: responses as the core parses them, sent on to the client,
1xx and 101, and whether each connection is kept after a transaction."""

from __future__ import annotations

from twisted.python.failure import Failure

from zfw.http.heads import HEAD_LEVEL, head_lines, raw_head_lines
from zfw.http.messages import Broken, Data, HttpViolation, Response
from zfw.http.serialize import LAST_CHUNK, chunk, end_to_end, framing_out, response_head
from zfw.proxy.http.messages import Transaction, field_tokens
from zfw.proxy.relay import Relay
from zfw.stream import Stream


class ServerSide:
    """Part of :class:`~zfw.proxy.http.HttpProxy`: responses from the server, sent on
    with the framing the core decides (:func:`zfw.http.serialize.framing_out`), 1xx and 101,
    and whether each side's connection is kept after the transaction."""

    def _from_server(self, data: bytes) -> None:
        assert self.server_reader is not None
        try:
            events = self.server_reader.feed(data)
        except HttpViolation as e:
            self._server_violation(e.reason)
            return
        broken = events.pop() if events and type(events[-1]) is Broken else None
        self._server_events(events)
        if broken is not None and not self.closing:
            self._server_violation(broken.reason)  # type: ignore[union-attr]

    def _server_events(self, events: list[object]) -> None:
        # A response head goes out together with what follows it in the same read: one
        # write, and one send, for a small response.
        pending = b""
        last = len(events) - 1
        for i, event in enumerate(events):
            tx = self.tx
            if tx is None or self.closing:
                if tx is None and not self.closing:
                    self._drop_server("the server sent data outside a transaction")
                return
            kind = type(event)
            if kind is Data:
                data = event.data  # type: ignore[union-attr]
                tx.sent += len(data)
                if tx.resp_chunked:
                    data = chunk(data)
                if pending:
                    pending += data
                else:
                    self.client.write(data)
            elif kind is Response:
                pending = self._response_head(event)  # type: ignore[arg-type]
                if pending and self.session.log_enabled("http.head", HEAD_LEVEL):
                    self._log_head("response to client", raw_head_lines(pending))
            else:
                if i < last:  # more after the response: never reuse this connection
                    tx.server_keep = False
                    self._drop_server("the server sent more than one response")
                if tx.resp_chunked:
                    pending += LAST_CHUNK
                if pending:
                    self.client.write(pending)
                self._response_end(tx)
                return
        if pending:
            self.client.write(pending)

    def _server_closed(self, ep: Stream, _reason: Failure | None = None) -> None:
        if ep is not self.server:
            return
        self._server_bytes += ep.received
        self.server = None
        reader, self.server_reader = self.server_reader, None
        if not ep.lost:
            ep.close()
        if self._relay is not None or self.closing:
            return
        tx = self.tx
        try:
            events = reader.close() if reader is not None else []
        except HttpViolation as e:
            if tx is not None:
                self._server_violation(e.reason)
            return
        if events:
            self._server_events(events)
        elif tx is not None and tx.state != "connecting":
            self._server_failed(502, "the server closed the connection without a response")

    def _response_head(self, resp: Response) -> bytes:
        """The head to send the client (empty: the response was handled otherwise)."""
        tx = self.tx
        assert tx is not None
        if self.session.log_enabled("http.head", HEAD_LEVEL):
            first = b"HTTP/%d.%d %d %s" % (*resp.version, resp.status, resp.reason)
            self._log_head("response from server", head_lines(first, resp.headers))
        if resp.status < 200:
            self._interim(resp)
            return b""
        self.due = None
        self._timer_kind = ""
        tx.status = resp.status
        if tx.method == "CONNECT" and resp.status < 300:
            self._parent_tunnel(tx, resp)
            return b""
        if self.response or self.response_header:
            headers = self._response_policy(tx, resp)
            if headers is None:
                return b""
        else:
            headers = end_to_end(resp.headers, resp.fields)
        tx.server_keep = resp.keep_alive
        out = framing_out(resp, tx.head.version)
        framing = out.fields
        tx.resp_chunked = out.chunked
        if out.close:  # a body only the close can end, to an HTTP/1.0 client
            tx.client_keep = False
        if tx.state != "sent":  # answered before the whole request arrived
            tx.client_keep = False
        if not tx.client_keep:
            framing += ((b"Connection", b"close"),)
        tx.resp_started = True
        return response_head(resp.status, resp.reason, headers, framing)

    def _interim(self, resp: Response) -> None:
        tx = self.tx
        assert tx is not None
        if resp.status == 101:
            if tx.upgrade is None or field_tokens(resp.fields, b"upgrade") != {tx.upgrade}:
                self._server_violation("101 Switching Protocols without a permitted upgrade")
                return
            self._switch(resp)
            return
        if tx.head.version == (1, 0):
            return  # HTTP/1.0 clients do not expect interim responses
        self.client.write(
            response_head(resp.status, resp.reason, end_to_end(resp.headers, resp.fields))
        )

    def _switch(self, resp: Response) -> None:
        """101: from now on the connection carries another protocol; relay bytes."""
        tx = self.tx
        assert tx is not None and self.server is not None and self.server_reader is not None
        self._disarm()
        tx.status = 101
        if tx.state != "sent" or self.events:
            self._server_violation("the client sent data before the protocol switch")
            return
        head = response_head(
            101,
            resp.reason,
            end_to_end(resp.headers, resp.fields),
            ((b"Connection", b"upgrade"), (b"Upgrade", tx.upgrade or b"")),
        )
        self.session.stats.count("http_upgrades")
        self.log("info", 4, f"switched to {tx.upgrade.decode('latin-1')}")  # type: ignore[union-attr]
        from_server = self.server_reader.take_buffer()
        to_client = head + from_server
        to_server = self._detach()
        # The relayed bytes: what each side sends from now on, and what it sent after
        # its head, already read (the access line is written when the relay ends).
        self._upgraded = (
            tx,
            self.client.received - len(to_server),
            self.server.received - len(from_server),
        )
        self._relay = Relay(
            self.client, self.server, self.session.idle_watch, self.timeout, self._relay_done
        )
        self._relay.start(to_server=to_server, to_client=to_client)

    def _relay_done(self, relay: Relay, reason: str) -> None:
        self.log("info", 4, f"upgraded connection ended: {reason}")
        assert self._upgraded is not None and self.server is not None
        tx, client_before, server_before = self._upgraded
        tx.sent = self.server.received - server_before
        self._log_request(tx, client_bytes=self.client.received - client_before)
        self.session.close()

    def _response_end(self, tx: Transaction) -> None:
        self._log_request(tx)
        if tx.state != "sent":  # the rest of the request is not wanted: close after this
            tx.client_keep = False
        self._finish()

    def _finish(self) -> None:
        """The transaction is over: keep or close each side."""
        tx = self.tx
        assert tx is not None
        self.tx = None
        if self.server is not None:
            complete = (
                tx.state == "sent" and self.server_reader is not None and self.server_reader.idle
            )
            if not complete:
                self._drop_server()
            elif not tx.server_keep or tx.server_told_close:
                # The server said or was told Connection: close, so it closes now: let it
                # close first and keep the TIME_WAIT, as without the firewall.
                self._drop_server(wait_for_close=True)
        if not tx.client_keep or self.client_eof:
            self._close_client()
            return
        if self.events or not self.reader.idle:
            self._arm("head", self.header_timeout)
        else:
            self._arm("keepalive", self.keepalive_timeout)
        self._pump()
