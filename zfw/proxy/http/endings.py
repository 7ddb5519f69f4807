"""HttpProxy: timers, error pages and the ways a transaction or session ends."""

from __future__ import annotations

import os
import time
from typing import Any

from zfw import net
from zfw.http import errorpage
from zfw.proxy.http.messages import STATUS_COUNTERS, Transaction
from zfw.stream import Stream


class Endings:
    """Part of :class:`~zfw.proxy.http.HttpProxy`: the idle watch and deadlines (the
    engine's once-a-second sweep calls ``overdue()`` after ``due``: a deadline is two
    attribute stores, not a reactor timer per request), error pages, violations, the
    access line, and closing or aborting either side."""

    @property
    def idle_timeout(self) -> float | None:
        """Seconds without traffic before the session is dropped."""
        return self.timeout or None

    def traffic(self) -> int:
        """Bytes received so far from both sides."""
        server = self.server.received if self.server is not None else 0
        return self.client.received + self._server_bytes + server

    def expire(self, reason: str) -> None:
        """No traffic for too long."""
        self.log("info", 4, f"closing: {reason}")
        self._abort()

    def _arm(self, kind: str, seconds: float) -> None:
        self._timer_kind = kind
        self.due = self._now() + seconds

    def _disarm(self) -> None:
        self.due = None
        self._timer_kind = ""

    def overdue(self) -> None:
        """A deadline passed: the request head, the response or the keep-alive idle time."""
        kind, self._timer_kind = self._timer_kind, ""
        if kind == "keepalive":
            self.log("info", 5, "keep-alive connection idle; closing")
            self._close_client()
        elif kind == "head":
            if self.reader.idle and self.requests == 0 and self.client.received == 0:
                self.log("info", 4, "client sent no request; closing")
                self._close_client()
            else:
                self._client_violation(
                    408, f"request head not complete within {self.header_timeout:g} s"
                )
        elif kind == "response":
            self._server_failed(504, f"no response within {self.response_timeout:g} s")

    def _drop_server(self, why: str = "", wait_for_close: bool = False) -> None:
        if why:
            self.log("violation", 2, why)
        server, self.server = self.server, None
        self.server_reader = None
        if server is not None:
            self._server_bytes += server.received
            server.on_eof = server.on_lost = lambda *_a: None
            server.unthrottle()
            if wait_for_close and not server.lost:
                self._await_server_close(server)
            else:
                server.close()
        self.client_valve.release("backpressure")
        self.server_valve.stream = None

    def _await_server_close(self, server: Stream) -> None:
        """Close ``server`` once it has closed (its FIN came), or after
        ``server_close_wait`` seconds; whatever it sends meanwhile aborts it."""
        timer = self.session.reactor.callLater(self.server_close_wait, server.close)

        def closed(*_a: Any) -> None:
            if timer.active():
                timer.cancel()
            if not server.lost:
                server.close(drained=True)

        def data_after_the_end(_data: bytes) -> None:
            if timer.active():
                timer.cancel()
            server.abort()

        server.on_data = data_after_the_end
        server.on_eof = server.on_lost = closed

    def _log_request(self, tx: Transaction, **extra: object) -> None:
        """Count the answer; the access line: client, what was asked of which host,
        and the answer (``extra``: more fields, after the others)."""
        self.session.stats.count(STATUS_COUNTERS[min(tx.status // 100, 6)])
        write = self._request_log
        if write is not None:
            url = tx.url
            if url.startswith("/"):  # origin-form: the host is in Host (else the address)
                host = tx.head.fields.get(b"host")
                authority = host[0].decode("latin-1") if host else self._dest_text
                url = f"{self._scheme}://{authority}{url}"
            server = tx.server
            line = f"{tx.method} {url} -> {tx.status}"
            server_text = self._dest_text if server is None else net.fmt_addr(*server)
            duration = f"{time.monotonic() - tx.started:.3f}"
            tls = self.session.tls
            if tls is None:
                write(line, client=self._client_host, server=server_text, bytes=tx.sent,
                      duration=duration, **extra)  # fmt: skip
            else:
                write(line, client=self._client_host, server=server_text, bytes=tx.sent,
                      duration=duration, tls=tls["version"], verify=tls["verify"],
                      **extra)  # fmt: skip

    def _client_violation(self, status: int, reason: str) -> None:
        self.session.stats.count("http_violations")
        self.log("violation", 1, f"request: {reason}")
        self._send_error(status, reason)

    def _server_violation(self, reason: str) -> None:
        self.session.stats.count("http_violations")
        self.log("violation", 1, f"response: {reason}")
        self._server_failed(502, "The server sent an invalid response.", logged=True)

    def _server_failed(self, status: int, reason: str, logged: bool = False) -> None:
        if not logged:
            self.log("error", 3, reason)
        self._drop_server()
        tx = self.tx
        if tx is not None and tx.resp_started:
            self._abort()  # the client has part of a response: it must see it broken
            return
        self._send_error(status, reason)

    def _send_error(self, status: int, info: str) -> None:
        """Answer with an error page and close the client connection."""
        if self.closing:
            return
        tx = self.tx
        if tx is not None and tx.resp_started:
            self._abort()
            return
        self._disarm()
        directory = self.error_files_dir
        policy = self.session.policy
        if directory and policy is not None:  # relative: to the policy file's directory
            directory = os.path.join(os.path.dirname(policy.path), directory)
        self.client.write(
            errorpage.response(status, info, self.session.id, directory, self.error_silent)
        )
        if tx is not None:
            tx.status = status
            self._log_request(tx)
        else:
            self.session.stats.count(STATUS_COUNTERS[min(status // 100, 6)])
            self.log("request", 3, f"(invalid request) -> {status}", client=self.session.client[0])
        self._drop_server()
        self._close_client()

    def _close_client(self) -> None:
        """Close the client side once its write buffer is out; the session ends with it."""
        self.closing = True
        self._disarm()
        if self._attempt is not None:
            self._attempt.cancel()
        self._drop_server()
        self.client.close()

    def _abort(self) -> None:
        self.closing = True
        self._disarm()
        if self._attempt is not None:
            self._attempt.cancel()
        if self.server is not None:
            self.server.on_eof = self.server.on_lost = lambda *_a: None
            self.server.abort()
            self.server = None
        if not self.client.lost:
            self.client.abort()

    def _end(self) -> None:
        self.closing = True
        self._disarm()
        if self._attempt is not None:
            self._attempt.cancel()
        if self.server is not None:
            self._drop_server()
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        self.session.close()
