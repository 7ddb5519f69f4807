"""HttpProxy: a strict HTTP/1.1 application proxy with Zorp-style policy tables.

The protocol work is done by the sans-IO core (:mod:`zfw.http.core`); this
module connects it to the two connections of a session. One transaction at a
time: the next (pipelined) request is read only after the response to the
previous one has been delivered, so answers go back in order. Bodies stream
with backpressure both ways (:class:`~zfw.proxy.valve.Valve`); framing is
rewritten canonically toward each side, and each side keeps its connection
alive independently.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import deque
from typing import Any, ClassVar

import attrs
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from zfw import net
from zfw.engine.session import describe_failure
from zfw.http import errorpage
from zfw.http.core import (
    LAST_CHUNK,
    Broken,
    Data,
    Headers,
    HttpViolation,
    Limits,
    Parser,
    Request,
    Response,
    absolute_target,
    chunk,
    end_to_end,
    request_head,
    response_head,
    split_authority,
    tokens,
)
from zfw.http.policy import (
    HTTP_REQ_ACCEPT,
    HTTP_REQ_REJECT,
    HTTP_RSP_ACCEPT,
    HeaderAbort,
    PolicyValueError,
    Verdict,
    filter_headers,
    request_entry,
    response_entry,
    verdict,
)
from zfw.model import InbandRouter
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.parent import ParentTunnel
from zfw.proxy.plug import PlugProxy
from zfw.proxy.relay import Relay
from zfw.proxy.valve import Valve
from zfw.stream import Stream

_TARGET_CHARS = frozenset(range(0x21, 0x7F))
#: Not passed on by a non-transparent proxy: it sets Host from the URL, and the proxy
#: credentials are for itself (or, with a parent proxy, for that one).
_INBAND_DROP = frozenset({b"host", b"proxy-authorization"})


class _Refused(Exception):
    """A request the proxy's own settings refuse (not a protocol violation)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


#: A method the request table does not list (not even with "*"): closed by default.
_UNLISTED = Verdict("reject", 405, "This method is not permitted.")
_POLICY_FAILED = "The firewall policy failed on this request."
#: What ``zfw sessions`` says of a transaction in each state (before a response).
_PHASES = {
    "head": "request head",
    "connecting": "connecting",
    "body": "request body",
    "sent": "waiting for the response",
}
#: Counter names of the answers by status class (0: no status, as after an abort).
_STATUS_COUNTERS = (
    "http_requests_none",
    *(f"http_requests_{n}xx" for n in range(1, 6)),
    "http_requests_none",
)


class _Message:
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None


@attrs.define
class HttpRequest(_Message):
    """A request as the policy sees it; ``url`` and ``headers`` may be changed."""

    method: str
    url: str
    version: str
    headers: list[tuple[str, str]]


@attrs.define
class HttpResponse(_Message):
    """A response as the policy sees it; ``headers`` may be changed."""

    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]


def _text(headers: tuple[tuple[bytes, bytes], ...]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


def _raw(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in headers)


_NONE: list[bytes] = []


def _tokens(fields: dict[bytes, list[bytes]], name: bytes) -> frozenset[bytes]:
    """The comma-separated tokens of header ``name`` in a parser's field index, lower-case."""
    return tokens(fields.get(name))


def _version(v: tuple[int, int]) -> str:
    return f"HTTP/{v[0]}.{v[1]}"


@attrs.define(eq=False)
class Transaction:
    """One request and its response."""

    head: Request
    method: str
    url: str
    started: float
    client_keep: bool
    req_chunked: bool = False
    state: str = "head"  # head -> connecting -> body -> sent
    upgrade: bytes | None = None
    resp_started: bool = False
    resp_chunked: bool = False
    server_keep: bool = True
    server_told_close: bool = False  # the request carried Connection: close
    status: int = 0
    sent: int = 0  # response body bytes to the client
    server: tuple[str, int] | None = None  # in-band: the server the request named


class HttpProxy(Proxy):
    """The strict HTTP/1.1 proxy; transparent by default.

    Policy tables (see :mod:`zfw.http.policy`): ``request``, ``response``,
    ``request_header``, ``response_header``. Attributes a policy may set in
    ``config()``, with their defaults:

    - limits: ``max_line_length`` 8192, ``max_url_length`` 8192,
      ``max_header_lines`` 100, ``max_header_size`` 65536 (the whole head),
      ``max_body_length`` None (unlimited; bodies stream), ``max_keepalive_requests`` 1000;
    - timeouts (seconds): ``header_timeout`` 10 (a request head must be
      complete: slowloris), ``keepalive_timeout`` 60 (idle between requests),
      ``response_timeout`` 60 (request sent, no response head), ``timeout``
      300 (no traffic during a body), ``connect_timeout`` 30, ``server_close_wait`` 2
      (a server told ``Connection: close`` closes first, as without the firewall, and
      keeps the TIME_WAIT; zfw closes after this long if it does not);
    - ``framing_lookalikes`` ``"reject"``: a field whose name a CGI/WSGI backend reads
      as Content-Length or Transfer-Encoding (``Content_Length``, ``Transfer.Encoding``)
      is refused (400 for a request, 502 for a response); ``"drop"`` removes it instead;
    - ``verify_host`` False: the Host header must name the original destination
      (an address literal, or a name resolving to it), else 409;
    - ``permit_upgrade`` (): protocols (``"websocket"``, ``"h2c"``) that may be
      switched to; the connection then becomes a byte relay;
    - ``error_files_dir`` None (built-in page) or a directory of
      ``<status>.html``/``default.html`` templates; ``error_silent`` False.

    With an :class:`~zfw.model.InbandRouter` the proxy is non-transparent:
    clients send absolute-form requests (``GET http://host/path``) and
    ``CONNECT host:port``; the zones decide each named server. Then also:

    - ``connect_ports`` (443,): the ports CONNECT may reach (CONNECT must also be
      accepted by the request table, as :class:`HttpProxyNonTransparent` does);
    - ``connect_proxy`` PlugProxy: the proxy class that carries a CONNECT tunnel,
      PlugProxy or a TlsTunnelProxy (which then decides by the ClientHello);
    - ``parent_proxy`` None: ``(host, port)`` of a proxy to send every request
      to (absolute-form, CONNECT included) instead of the servers.
    """

    log_tag: ClassVar[str] = "http"
    default_ports: ClassVar[tuple[int, ...]] = (80,)
    inband: ClassVar[bool] = True

    max_line_length: int = 8192
    max_url_length: int = 8192
    max_header_lines: int = 100
    max_header_size: int = 65536
    max_body_length: int | None = None
    max_keepalive_requests: int = 1000
    header_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    response_timeout: float = 60.0
    timeout: float = 300.0
    connect_timeout: float = 30.0
    server_close_wait: float = 2.0
    verify_host: bool = False
    permit_upgrade: tuple[str, ...] = ()
    error_files_dir: str | None = None
    error_silent: bool = False
    connect_ports: tuple[int, ...] = (443,)
    connect_proxy: type[Proxy] = PlugProxy
    parent_proxy: tuple[str, int] | None = None
    framing_lookalikes: str = "reject"

    def __init__(self, session: Any):
        super().__init__(session)
        self.request: dict[str, Any] = {}
        self.response: dict[Any, Any] = {}
        self.request_header: dict[str, Any] = {}
        self.response_header: dict[str, Any] = {}

    def preset(self) -> None:
        """GET, HEAD and POST pass; any other method is refused with 405."""
        self.request.update(
            {
                "GET": HTTP_REQ_ACCEPT,
                "HEAD": HTTP_REQ_ACCEPT,
                "POST": HTTP_REQ_ACCEPT,
                "*": (HTTP_REQ_REJECT, 405, "This method is not permitted."),
            }
        )

    # --- the session -----------------------------------------------------------------------

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Read requests from the client (after what a handing-over proxy passed on)."""
        self.client = client
        self.client_valve = Valve(client)
        self.server_valve = Valve()
        self.reader = Parser("request", self._limits())
        self.events: deque[object] = deque()
        self.server: Stream | None = None
        self.server_reader: Parser | None = None
        self._attempt: Any = None
        self.tx: Transaction | None = None
        self.requests = 0
        self.client_eof = False
        self.closing = False
        self._server_bytes = 0
        self._relay: Relay | None = None
        self.due: float | None = None
        self._timer_kind = ""
        self._now = self.session.reactor.seconds
        self._request_log = self.session.log_writer("http.request", 3)
        self._client_host = self.session.client[0]
        target = self.session.decision.target
        self._dest_text = net.fmt_addr(*target) if target is not None else "-"
        #: Non-transparent: the server comes from each request (an InbandRouter); handed
        #: a tunnel, the server is the one the tunnel goes to.
        self.nontransparent = handover is None and isinstance(
            self.session.service.router, InbandRouter
        )
        self._server_key: tuple[str, int] | None = None  # the server (in-band) connected to
        client.on_data = self._from_client
        client.on_eof = self._client_eof
        client.on_lost = self._client_lost
        client.throttle(self.server_valve)
        self._arm("head", self.header_timeout)
        if self.session.idle_watch is not None:
            self.session.idle_watch.add(self)
        if handover is not None and handover.pending:
            self._from_client(handover.pending)
        if handover is not None and handover.client_eof:
            self._client_eof(client)

    def _limits(self) -> Limits:
        if self.framing_lookalikes not in ("reject", "drop"):
            raise PolicyValueError("framing_lookalikes must be 'reject' or 'drop'")
        return Limits(
            max_line=self.max_line_length,
            max_target=self.max_url_length,
            max_headers=self.max_header_lines,
            max_head=self.max_header_size,
            max_body=self.max_body_length,
            framing_lookalikes=self.framing_lookalikes,
        )

    # --- for the idle watch ----------------------------------------------------------------

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

    # --- timers ----------------------------------------------------------------------------

    # The engine's idle watch calls overdue() once a second after ``due``: a deadline
    # is two attribute stores, not a reactor timer per request.

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

    # --- from the client -------------------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        if self._timer_kind == "keepalive":
            self._arm("head", self.header_timeout)
        try:
            self.events.extend(self.reader.feed(data))
        except HttpViolation as e:
            self._client_violation(e.status, e.reason)
            return
        self._pump()

    def _pump(self) -> None:
        events = self.events
        while events:
            tx = self.tx
            if self.closing or (tx is not None and tx.state != "body"):
                break
            event = events.popleft()
            if type(event) is Data:
                self._request_data(event.data)  # type: ignore[union-attr]
            elif type(event) is Request:
                self._request_head(event)  # type: ignore[arg-type]
            elif type(event) is Broken:  # after the requests before it were answered
                self._client_violation(event.status, event.reason)  # type: ignore[union-attr]
                return
            else:
                self._request_end()
        if self.closing:
            return
        # Stop reading only when requests pile up (pipelining), not for every response:
        # a paused client costs two epoll changes.
        if events:
            self.client_valve.hold("wait")
        elif self.client_valve.reasons:
            self.client_valve.release("wait")

    def _client_eof(self, _ep: Stream) -> None:
        self.client_eof = True
        try:
            self.events.extend(self.reader.close())
        except HttpViolation as e:
            self._client_violation(e.status, e.reason)
            return
        if self.tx is None and not self.events:
            self._close_client()
        else:
            self._pump()

    def _client_lost(self, _ep: Stream, _reason: Failure) -> None:
        if self.tx is not None and self.tx.state != "head":
            self.log("info", 4, "client left in the middle of a transaction")
        self._end()

    # --- requests --------------------------------------------------------------------------

    def _request_head(self, head: Request) -> None:
        self.due = None
        self._timer_kind = ""
        self.requests += 1
        fields = head.fields
        method = head.method.decode("ascii")
        url = head.target.decode("ascii")
        keep = (
            head.version == (1, 1)
            and (b"connection" not in fields or b"close" not in _tokens(fields, b"connection"))
            and self.requests < self.max_keepalive_requests
            and not self.client_eof
        )
        tx = Transaction(head, method, url, time.monotonic(), keep)
        tx.req_chunked = b"transfer-encoding" in fields
        self.tx = tx
        view: HttpRequest | None = None  # what a policy function sees, built when needed
        try:
            entry = request_entry(self.request, method)
            if entry != HTTP_REQ_ACCEPT:
                view = HttpRequest(method, url, _version(head.version), [])
                v = verdict(
                    entry or _UNLISTED,
                    lambda fn: fn(self._full_view(view, head)),
                    f"request[{method!r}]",
                )
                if not v.accepted:
                    self._refuse(v, 405 if v.action == "reject" else 403, "request")
                    return
                if view.url != url:
                    self._check_url(view.url)
                    tx.url = view.url
            if self.nontransparent:
                target = self._inband_target(tx)
            elif tx.url.startswith("/") or (method == "OPTIONS" and tx.url == "*"):
                target = tx.url.encode("ascii") if tx.url != url else head.target
            else:
                raise HttpViolation(400, "transparent mode expects an origin-form request target")
            headers = self._request_headers(head, view)
        except HttpViolation as e:
            self._client_violation(e.status, e.reason)
            return
        except _Refused as e:
            self.log("policy", 3, f"request rejected: {e.reason}")
            self._send_error(e.status, e.reason)
            return
        except HeaderAbort as e:
            self._refuse(Verdict("reject", 400, str(e)), 400, "request")
            return
        except PolicyValueError as e:
            self._policy_error(str(e))
            return
        except Exception as e:  # policy code
            self.session.policy_failed(f"request policy for {method} {tx.url[:80]}", e)
            self._send_error(500, _POLICY_FAILED)
            return
        framing = self._request_framing(head)
        if not tx.client_keep and tx.upgrade is None and method != "CONNECT":
            # The server connection goes with the client's: say so, so that the server
            # closes first and keeps the TIME_WAIT, as it would without the firewall.
            # Closing first here would leave it on the client's address and a port of
            # the firewall's range, which then runs out under many short connections.
            framing += ((b"Connection", b"close"),)
            tx.server_told_close = True
        tx.state = "connecting"
        if tx.server is not None:  # in-band: Host names the server of the URL
            host, port = tx.server
            authority = f"[{host}]" if ":" in host else host
            authority += "" if port == 80 and method != "CONNECT" else f":{port}"
            headers = (
                (b"Host", authority.encode("ascii")),
                *(h for h in headers if h[0].lower() not in _INBAND_DROP),
            )
            if self.parent_proxy is not None:
                headers += tuple(h for h in head.headers if h[0].lower() == b"proxy-authorization")
        self._out_head = request_head(head.method, target, headers, framing)
        if tx.server is not None:
            self._route_inband(tx)
        elif self.verify_host:
            self._verify_host(head)
        else:
            self._to_server()

    def state(self) -> str:
        """The request in progress (``GET /big.bin: body``), or idle between requests."""
        tx = self.tx
        if tx is None:
            return f"idle after {self.requests} requests" if self.requests else "reading a request"
        phase = "response" if tx.resp_started else _PHASES.get(tx.state, tx.state)
        return f"{tx.method} {tx.url[:200]}: {phase}"

    def _full_view(self, view: HttpRequest, head: Request) -> HttpRequest:
        """The view with its end-to-end headers (built only when a policy function asks)."""
        if not view.headers:
            view.headers = _text(end_to_end(head.headers, head.fields))
        return view

    def _check_url(self, url: str) -> None:
        if not url or not set(url.encode("latin-1")) <= _TARGET_CHARS:
            raise PolicyValueError(f"the policy set an invalid URL {url[:60]!r}")

    def _inband_target(self, tx: Transaction) -> bytes:
        """The server of an absolute-form or CONNECT request (into ``tx.server``) and
        the target to send: origin-form to the server, unchanged to a parent proxy."""
        raw = tx.url.encode("ascii")
        if tx.method == "CONNECT":
            tx.server = split_authority(raw, None)
            tx.client_keep = False  # after a tunnel, or a refusal, nothing more is HTTP
            if tx.server[1] not in self.connect_ports:
                raise _Refused(403, f"CONNECT to port {tx.server[1]} is not permitted")
            return raw
        host, port, origin = absolute_target(raw)
        tx.server = (host, port)
        return raw if self.parent_proxy is not None else origin

    def _route_inband(self, tx: Transaction) -> None:
        """Resolve the server (or the parent proxy), decide by its zone, then connect."""
        assert tx.server is not None
        host, port = self.parent_proxy or tx.server
        key = (host, port)
        # A kept connection carries the next request, but never a CONNECT that zfw
        # answers itself (the tunnel gets a connection of its own).
        if (
            self.server is not None
            and not self.server.lost
            and self._server_key == key
            and not self._tunnels_itself(tx)
        ):
            self._send_head()
            return
        if self.server is not None:
            self._drop_server()
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            d = deferToThread(_addresses, host)
            d.addCallbacks(
                lambda found: self._resolved(tx, key, found),
                lambda f: self._not_resolved(tx, host, describe_failure(f)),
            )
            return
        self._resolved(tx, key, [str(literal)])

    def _not_resolved(self, tx: Transaction, host: str, error: str) -> None:
        if self.tx is tx and not self.closing:
            self.log("error", 3, f"{host} does not resolve: {error}")
            self._send_error(502, f"The name {host} does not resolve.")

    def _resolved(self, tx: Transaction, key: tuple[str, int], addresses: list[str]) -> None:
        if self.tx is not tx or self.closing:
            return
        first = None
        for address in dict.fromkeys(addresses):
            if (address, key[1]) == self.session.destination:
                self.log("violation", 1, f"request: {tx.url[:200]} names this proxy itself")
                self._send_error(508, "The request names this proxy itself.")
                return
            decision = self.session.decide_server((address, key[1]))
            if decision.allowed:
                break
            first = first or decision
        else:
            reason = first.reason if first else "no address"
            self.session.log(
                "core.policy", 1, f"denied {tx.method} {tx.url[:200]}: {key[0]}: {reason}"
            )
            self._send_error(403, "The requested server is not permitted.")
            return
        self._server_key = key
        if self._tunnels_itself(tx):
            self._tunnel(tx, decision)
            return
        self._attempt = self.session.connect_server(
            self.connect_timeout, self._connected, self._connect_failed, decision
        )

    def _tunnels_itself(self, tx: Transaction) -> bool:
        """Whether zfw answers this CONNECT and carries the tunnel itself: always
        without a parent proxy, and with one when a TlsTunnelProxy must see the
        ClientHello first (else the parent answers, and PlugProxy relays)."""
        if tx.method != "CONNECT":
            return False
        return self.parent_proxy is None or not self._connect_class().needs_server

    def _connect_class(self) -> type[Proxy]:
        proxy_class = self.connect_proxy
        if not (isinstance(proxy_class, type) and issubclass(proxy_class, Proxy)):
            raise PolicyValueError(f"connect_proxy must be a proxy class, not {proxy_class!r}")
        return proxy_class

    def _tunnel(self, tx: Transaction, decision: Any) -> None:
        """CONNECT: hand the client to ``connect_proxy`` toward the decided server
        (through the parent proxy, if there is one): at once, or once the server
        connection is open if that proxy ``needs_server``."""
        try:
            proxy_class = self._connect_class()
        except PolicyValueError as e:
            self._policy_error(str(e))
            return
        if not proxy_class.needs_server:
            # It opens the way itself, after its look at what the client sends after
            # our 200 (the TLS tunnel: the ClientHello).
            connect = None
            if self.parent_proxy is not None:
                # The parent is asked only when that proxy connects; the destination it
                # verifies is the one the CONNECT named.
                request, session = self._out_head, self.session

                def connect(timeout: float, on_connected: Any, on_failed: Any) -> ParentTunnel:
                    return ParentTunnel(
                        session, decision, request, timeout, on_connected, on_failed
                    )

            self._hand_over(tx, decision, proxy_class, connect=connect)
            return

        def connected(server: Stream) -> None:
            self._attempt = None
            if self.closing or self.tx is not tx:
                server.close()
                return
            self._hand_over(tx, decision, proxy_class, server=server)

        self._attempt = self.session.connect_server(
            self.connect_timeout, connected, self._connect_failed, decision
        )

    def _hand_over(
        self, tx: Transaction, decision: Any, proxy_class: type[Proxy], **handover: Any
    ) -> None:
        """Answer the CONNECT with 200 and hand the client to ``proxy_class`` toward the
        decided server, with what the client sent that was not parsed."""
        tx.status = 200
        self.client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._log_request(tx)
        destination = tx.server if handover.get("connect") else decision.target
        pending = self._detach()
        self.session.decision = decision
        self.session.destination = destination
        self.hand_over(proxy_class, self.client, Handover(pending=pending, **handover))

    def _detach(self) -> bytes:
        """Stop being the session's proxy (a tunnel or another protocol takes over); the
        bytes the client sent that were not parsed."""
        self._disarm()
        self.closing = True
        self.tx = None
        self.client.unthrottle()
        if self.server is not None:
            self.server.unthrottle()
        self.client_valve.release("wait")
        self.client_valve.release("backpressure")
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        return self.reader.take_buffer()

    def _request_headers(
        self, head: Request, view: HttpRequest | None
    ) -> tuple[tuple[bytes, bytes], ...]:
        tx = self.tx
        assert tx is not None
        if (view is not None and view.headers) or self.request_header:
            if view is None:
                view = HttpRequest(tx.method, tx.url, _version(head.version), [])
            fields = filter_headers(
                self.request_header,
                self._full_view(view, head).headers,
                lambda fn, n, v: fn(n, v),
                "request_header",
            )
            headers = _raw(fields)
        else:
            headers = end_to_end(head.headers, head.fields)
        if b"upgrade" not in head.fields and (head.version == (1, 1) or b"host" in head.fields):
            return headers  # the common case: nothing to add
        if head.version == (1, 0) and b"host" not in head.fields:
            host, port = self.session.destination
            host = f"[{host}]" if ":" in host else host
            headers += ((b"Host", (host if port == 80 else f"{host}:{port}").encode()),)
        upgrade = _tokens(head.fields, b"upgrade")
        if upgrade and b"upgrade" in _tokens(head.fields, b"connection"):
            wanted = {p.lower().encode() for p in self.permit_upgrade}
            names = {u.split(b"/")[0] for u in upgrade}
            if names <= wanted and len(upgrade) == 1:
                tx.upgrade = next(iter(upgrade))
                headers += ((b"Connection", b"upgrade"), (b"Upgrade", tx.upgrade))
                tx.client_keep = False
            else:
                self.log(
                    "info",
                    4,
                    f"upgrade to {b', '.join(sorted(upgrade)).decode('latin-1')} not permitted; "
                    "header removed",
                )
        return headers

    def _request_framing(self, head: Request) -> tuple[tuple[bytes, bytes], ...]:
        tx = self.tx
        assert tx is not None
        if tx.req_chunked:
            return ((b"Transfer-Encoding", b"chunked"),)
        length = head.fields.get(b"content-length", _NONE)
        if length:
            return ((b"Content-Length", length[0]),)
        return ()

    def _verify_host(self, head: Request) -> None:
        dest_host, dest_port = self.session.destination
        value = head.fields.get(b"host", _NONE)
        if not value:  # HTTP/1.0 without Host: nothing to check
            self._to_server()
            return
        host, port = split_host(value[0].decode("latin-1"))
        if host is None or (port or 80) != dest_port:
            self._conflict(f"Host {value[0][:60]!r} does not name the destination")
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            d = deferToThread(_addresses, host)
            d.addCallbacks(
                lambda found: self._host_checked(host, dest_host in found),
                lambda f: self._host_checked(host, False, describe_failure(f)),
            )
            return
        self._host_checked(host, str(literal) == dest_host)

    def _host_checked(self, host: str, ok: bool, error: str = "") -> None:
        if self.closing or self.tx is None:
            return
        if ok:
            self._to_server()
            self._pump()
            return
        why = f"does not resolve: {error}" if error else "is not the destination"
        self._conflict(f"Host {host} {why} {self.session.destination[0]}")

    def _conflict(self, reason: str) -> None:
        self.log("violation", 1, reason)
        self._send_error(409, "The requested host does not match the destination.")

    def _to_server(self) -> None:
        """Send the request head: on the kept server connection, or on a new one."""
        tx = self.tx
        assert tx is not None
        if self.server is not None and not self.server.lost:
            self._send_head()
            return
        self._attempt = self.session.connect_server(
            self.connect_timeout, self._connected, self._connect_failed
        )

    def _connected(self, server: Stream) -> None:
        self._attempt = None
        if self.closing or self.tx is None:
            server.close()
            return
        self.server = server
        self.server_reader = Parser("response", self._limits())
        server.on_data = self._from_server
        server.on_eof = self._server_closed
        server.on_lost = self._server_closed
        self.server_valve.attach(server)
        server.throttle(self.client_valve)
        self._send_head()
        self._pump()

    def _connect_failed(self, reason: Failure) -> None:
        self._attempt = None
        self._server_failed(502, f"connecting to the server failed: {describe_failure(reason)}")

    def _send_head(self) -> None:
        tx = self.tx
        assert tx is not None and self.server is not None and self.server_reader is not None
        self.server_reader.expect(tx.head.method)
        self.server.write(self._out_head)
        tx.state = "body"

    def _request_data(self, data: bytes) -> None:
        assert self.server is not None and self.tx is not None
        self.server.write(chunk(data) if self.tx.req_chunked else data)

    def _request_end(self) -> None:
        tx = self.tx
        assert self.server is not None and tx is not None
        if tx.req_chunked:
            self.server.write(LAST_CHUNK)
        tx.state = "sent"
        if tx.status == 0:
            self._arm("response", self.response_timeout)

    # --- from the server -------------------------------------------------------------------

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
        fields = resp.fields
        conn = tokens(fields.get(b"connection"))
        chunked = b"transfer-encoding" in fields
        length = fields.get(b"content-length", _NONE)
        no_body = tx.method == "HEAD" or resp.status in (204, 304)
        close_delimited = not no_body and not chunked and not length
        tx.server_keep = resp.version == (1, 1) and b"close" not in conn and not close_delimited
        framing: tuple[tuple[bytes, bytes], ...] = ()
        if no_body:
            if length and resp.status != 204:
                framing = ((b"Content-Length", length[0]),)
        elif length and not chunked:
            framing = ((b"Content-Length", length[0]),)
        elif tx.head.version == (1, 1):
            framing = ((b"Transfer-Encoding", b"chunked"),)
            tx.resp_chunked = True
        else:
            tx.client_keep = False
        if tx.state != "sent":  # answered before the whole request arrived
            tx.client_keep = False
        if not tx.client_keep:
            framing += ((b"Connection", b"close"),)
        tx.resp_started = True
        return response_head(resp.status, resp.reason, headers, framing)

    def _parent_tunnel(self, tx: Transaction, resp: Response) -> None:
        """The parent proxy opened a CONNECT tunnel: relay it (with PlugProxy)."""
        server, server_reader = self.server, self.server_reader
        assert server is not None and server_reader is not None
        self.client.write(
            response_head(resp.status, resp.reason, end_to_end(resp.headers, resp.fields))
        )
        self._log_request(tx)
        to_client = server_reader.take_buffer()
        to_server = self._detach()
        self.server = self.server_reader = None
        proxy_class = self.connect_proxy
        if not (isinstance(proxy_class, type) and getattr(proxy_class, "needs_server", False)):
            proxy_class = PlugProxy
        handover = Handover(pending=to_server, server=server, to_client=to_client)
        self.hand_over(proxy_class, self.client, handover)

    def _response_policy(self, tx: Transaction, resp: Response) -> Headers | None:
        """The response and response_header tables; the headers to send, or None if refused."""
        view = HttpResponse(resp.status, resp.reason.decode("latin-1"), _version(resp.version), [])
        try:
            entry = response_entry(self.response, tx.method, resp.status) if self.response else None
            if entry is not None and entry != HTTP_RSP_ACCEPT:
                v = verdict(
                    entry,
                    lambda fn: fn(self._request_view(), self._response_view(view, resp)),
                    f"response[({tx.method!r}, {resp.status})]",
                )
                if not v.accepted:
                    tx.status = 0
                    self._refuse(v, 502, "response")
                    return None
            if view.headers or self.response_header:
                fields = filter_headers(
                    self.response_header,
                    self._response_view(view, resp).headers,
                    lambda fn, n, v: fn(n, v),
                    "response_header",
                )
                return _raw(fields)
            return end_to_end(resp.headers, resp.fields)
        except HeaderAbort as e:
            tx.status = 0
            self._refuse(Verdict("reject", 502, str(e)), 502, "response")
        except PolicyValueError as e:
            tx.status = 0
            self._policy_error(str(e))
        except Exception as e:  # policy code
            tx.status = 0
            self.session.policy_failed(f"response policy for {tx.method} {tx.url[:80]}", e)
            self._send_error(500, _POLICY_FAILED)
        return None

    def _request_view(self) -> HttpRequest:
        tx = self.tx
        assert tx is not None
        return HttpRequest(
            tx.method,
            tx.url,
            _version(tx.head.version),
            _text(end_to_end(tx.head.headers, tx.head.fields)),
        )

    def _response_view(self, view: HttpResponse, resp: Response) -> HttpResponse:
        if not view.headers:
            view.headers = _text(end_to_end(resp.headers, resp.fields))
        return view

    def _interim(self, resp: Response) -> None:
        tx = self.tx
        assert tx is not None
        if resp.status == 101:
            if tx.upgrade is None or _tokens(resp.fields, b"upgrade") != {tx.upgrade}:
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
        self._log_request(tx)
        self.log("info", 4, f"switched to {tx.upgrade.decode('latin-1')}")  # type: ignore[union-attr]
        to_client = head + self.server_reader.take_buffer()
        to_server = self._detach()
        self._relay = Relay(
            self.client, self.server, self.session.idle_watch, self.timeout, self._relay_done
        )
        self._relay.start(to_server=to_server, to_client=to_client)

    def _relay_done(self, relay: Relay, reason: str) -> None:
        self.log("info", 4, f"upgraded connection ended: {reason}")
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

    # --- endings ---------------------------------------------------------------------------

    def _log_request(self, tx: Transaction) -> None:
        """Count the answer; the access line: client, what was asked of which host,
        and the answer."""
        self.session.stats.count(_STATUS_COUNTERS[min(tx.status // 100, 6)])
        write = self._request_log
        if write is not None:
            url = tx.url
            if url.startswith("/"):  # origin-form: the host is in Host (else the address)
                host = tx.head.fields.get(b"host")
                url = f"http://{host[0].decode('latin-1') if host else self._dest_text}{url}"
            server = tx.server
            write(
                f"{tx.method} {url} -> {tx.status}",
                client=self._client_host,
                server=self._dest_text if server is None else net.fmt_addr(*server),
                bytes=tx.sent,
                duration=f"{time.monotonic() - tx.started:.3f}",
            )

    def _refuse(self, v: Verdict, default_status: int, what: str) -> None:
        tx = self.tx
        if v.action == "abort":
            self.log("policy", 3, f"{what} aborted by policy")
            self._abort()
            return
        status = v.status or default_status
        info = v.info or ("Forbidden by policy." if v.action == "deny" else "Rejected by policy.")
        method = tx.method if tx else "-"
        self.log("policy", 3, f"{what} {v.action}ed: {method} {status}: {info}")
        self._send_error(status, info)

    def _policy_error(self, reason: str) -> None:
        self.log("error", 1, reason)
        self._send_error(500, _POLICY_FAILED)

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
        self.client.write(
            errorpage.response(
                status, info, self.session.id, self.error_files_dir, self.error_silent
            )
        )
        if tx is not None:
            tx.status = status
            self._log_request(tx)
        else:
            self.session.stats.count(_STATUS_COUNTERS[min(status // 100, 6)])
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


def split_host(value: str) -> tuple[str | None, int | None]:
    """``host`` and ``port`` of a Host header value (None when malformed)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None, None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None, None
        port = rest[1:] if rest else ""
    else:
        host, _sep, port = value.partition(":")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        return None, None
    if not host:
        return None, None
    return host.lower(), int(port) if port else None


def _addresses(name: str) -> list[str]:
    return [i[4][0] for i in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)]


class HttpProxyNonTransparent(HttpProxy):
    """HttpProxy as a proxy that clients are configured to use (with an InbandRouter):
    GET, HEAD and POST in absolute form, and CONNECT tunnels to ``connect_ports``."""

    def preset(self) -> None:
        """CONNECT passes too (to ``connect_ports``)."""
        self.request["CONNECT"] = HTTP_REQ_ACCEPT
