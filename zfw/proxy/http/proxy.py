"""HttpProxy: the session and its requests.

The protocol work is done by the sans-IO core (:mod:`zfw.http`); this
module connects it to the two streams of a session, with the other parts of
the proxy mixed in from the modules beside it. One transaction at a
time: the next (pipelined) request is read only after the response to the
previous one has been delivered, so answers go back in order. Bodies stream
with backpressure both ways (:class:`~zfw.proxy.valve.Valve`); framing is
rewritten canonically toward each side, and each side keeps its connection
alive independently.
"""

from __future__ import annotations

import time
from collections import deque
from types import MappingProxyType
from typing import Any, ClassVar

from twisted.python.failure import Failure

from zfw import net
from zfw.engine.session import describe_failure
from zfw.http.heads import HEAD_LEVEL, head_lines, raw_head_lines
from zfw.http.messages import Broken, Data, HttpViolation, Limits, Request
from zfw.http.parser import Parser
from zfw.http.policy import (
    HTTP_REQ_ACCEPT,
    HTTP_REQ_REJECT,
    TABLES,
    HeaderAbort,
    Verdict,
    request_entry,
    verdict,
)
from zfw.http.serialize import LAST_CHUNK, chunk, framing_out, request_head
from zfw.http.sniff import not_http
from zfw.model import InbandRouter
from zfw.options import (
    boolean,
    choice,
    host_port,
    instance_of,
    integer,
    not_both,
    option,
    optional,
    ports,
    seconds,
    size,
    strings,
    subclass_of,
    table,
    text,
)
from zfw.policytable import CallbackError, PolicyValueError, TableSpec
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.http.endings import Endings
from zfw.proxy.http.inband import InbandRouting
from zfw.proxy.http.messages import (
    INBAND_DROP,
    PHASES,
    POLICY_FAILED,
    UNLISTED,
    HttpRequest,
    Refused,
    Transaction,
    version_text,
)
from zfw.proxy.http.responses import ServerSide
from zfw.proxy.http.tables import PolicyTables
from zfw.proxy.passthrough import FirstBytes, not_protocol, pass_through_option, tunnel
from zfw.proxy.plug import PlugProxy
from zfw.proxy.relay import Relay
from zfw.proxy.valve import Valve
from zfw.stream import Stream
from zfw.tls.encryption import TwoSidedEncryption


class HttpProxy(InbandRouting, PolicyTables, ServerSide, Endings, Proxy):
    """The strict HTTP/1.1 proxy; transparent by default.

    Policy tables (see :mod:`zfw.http.policy`): ``request``, ``response``,
    ``request_header``, ``response_header``; the other options are declared below
    (``docs/policy.md`` lists them).

    With an :class:`~zfw.model.InbandRouter` the proxy is non-transparent:
    clients send absolute-form requests (``GET http://host/path``) and
    ``CONNECT host:port``; the zones decide each named server. The options of the
    ``inband`` group apply then.
    """

    log_tag: ClassVar[str] = "http"
    default_ports: ClassVar[tuple[int, ...]] = (80,)
    inband: ClassVar[bool] = True
    __option_checks__ = (
        not_both(
            "connect_encryption",
            "parent_proxy",
            "zfw would connect to the server itself, around the parent",
        ),
    )
    table_specs: ClassVar[tuple[TableSpec, ...]] = TABLES

    request: dict[str, Any] = option(
        table(), MappingProxyType({}), 'methods; `"*"` is any other', "tables"
    )
    response: dict[Any, Any] = option(
        table(), MappingProxyType({}), '`(method, status)`; `"*"` on either side', "tables"
    )
    request_header: dict[str, Any] = option(
        table(), MappingProxyType({}), "request header fields, case-insensitive", "tables"
    )
    response_header: dict[str, Any] = option(
        table(), MappingProxyType({}), "response header fields, case-insensitive", "tables"
    )
    max_line_length: int = option(size(1), 8192, "request/status and header line (414/400)")
    max_url_length: int = option(size(1), 8192, "request target (414)")
    max_header_lines: int = option(integer(1), 100, "header fields per message (431)")
    max_header_size: int = option(size(1), 65536, "whole head (431)")
    max_body_length: int | None = option(
        optional(size()), None, "bytes per body (413); bodies stream, so unlimited is safe"
    )
    max_keepalive_requests: int = option(
        integer(1), 1000, "then the client connection is closed after the response"
    )
    header_timeout: float = option(
        seconds(), 10.0, "seconds for a complete request head (408; slowloris)"
    )
    keepalive_timeout: float = option(seconds(), 60.0, "idle seconds between requests")
    response_timeout: float = option(
        seconds(), 60.0, "seconds from the request to the response head (504)"
    )
    timeout: float = option(
        seconds(zero=True), 300.0, "seconds without traffic during a body; 0: no limit"
    )
    connect_timeout: float = option(seconds(), 30.0, "seconds to reach the server (502)")
    server_close_wait: float = option(
        seconds(),
        2.0,
        "seconds to wait for a server told `Connection: close` to close first (so that it, "
        "not zfw, keeps the TIME_WAIT)",
    )
    framing_lookalikes: str = option(
        choice(("reject", "drop")),
        "reject",
        "a field whose name a CGI/WSGI backend reads as Content-Length or Transfer-Encoding "
        "(`Content_Length`, `Transfer.Encoding`): refused (400; 502 in a response), or "
        '`"drop"`ped',
    )
    pass_through: str = pass_through_option("HTTP")
    verify_host: bool = option(
        boolean(),
        False,
        "`Host` must name the original destination (an address, or a name resolving to it), "
        "else 409, as Squid's `host_verify_strict`",
    )
    permit_upgrade: tuple[str, ...] = option(
        strings(),
        (),
        'protocols (`"websocket"`, `"h2c"`) that may be switched to; then bytes are relayed',
    )
    error_files_dir: str | None = option(
        optional(text()),
        None,
        "directory of `<status>.html` / `default.html` templates with "
        "`@STATUS@ @REASON@ @INFO@ @SESSION@`",
    )
    error_silent: bool = option(
        boolean(), False, "error responses without a page (less to fingerprint)"
    )
    connect_ports: tuple[int, ...] = option(
        ports(), (443,), "ports `CONNECT` may reach; others get 403", "inband"
    )
    connect_proxy: type[Proxy] = option(
        subclass_of(Proxy),
        PlugProxy,
        "who carries a `CONNECT` tunnel: `PlugProxy` (zfw connects first, so an unreachable "
        "server is a 502, then relays bytes) or a `TlsTunnelProxy` subclass (zfw answers 200, "
        "then the tunnel decides by the ClientHello's SNI before connecting)",
        "inband",
    )
    connect_encryption: TwoSidedEncryption | None = option(
        optional(instance_of(TwoSidedEncryption)),
        None,
        "inspect what goes through `CONNECT`, as `Service(encryption=...)` does, the HTTP "
        "inside handled by this same proxy class (then `connect_proxy` is not used)",
        "inband",
    )
    parent_proxy: tuple[str, int] | None = option(
        optional(host_port()),
        None,
        "`(host, port)`: send every request, `CONNECT` included, to this proxy in absolute "
        "form (its zone is decided like a server's; `Proxy-Authorization` is passed on to it)",
        "inband",
    )

    def __init__(self, session: Any):
        super().__init__(session)
        self.request = {}
        self.response = {}
        self.request_header = {}
        self.response_header = {}

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
        #: After a protocol switch: its transaction, and each side's bytes before it.
        self._upgraded: tuple[Transaction, int, int] | None = None
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
        #: How server connections are opened: the session's way, or the handing-over
        #: proxy's (an encryption layer's verified TLS streams).
        self._connect = (
            handover.connect
            if handover is not None and handover.connect is not None
            else self.session.connect_server
        )
        self._scheme = "https" if self.session.tls is not None else "http"
        #: Under TLS inspection: whether the server's certificate names a Host.
        self._covers = handover.covers if handover is not None else None
        self._covered_host: bytes | None = None  # the last Host it named
        #: The first bytes of a transparent session, held until they tell HTTP from
        #: another protocol (``pass_through``).
        self._first = FirstBytes(not_http, handover is None and not self.nontransparent)
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

    # --- from the client -------------------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        if self._first.deciding:
            data = self._not_http(data)
            if not data:
                return
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

    def _not_http(self, data: bytes) -> bytes:
        """Before the first request: hold the first bytes until they tell HTTP from
        another protocol, which ``pass_through`` refuses or tunnels; what the parser
        gets now (nothing while they are held, or once tunnelled)."""
        first, why = self._first.feed(data)
        if why is None:
            return first
        if not_protocol(self, "HTTP", why, self.pass_through):
            self._detach()
            tunnel(self, self.client, first)
        else:
            self._send_error(400, "This is not an HTTP request.")
        return b""

    def _client_eof(self, _ep: Stream) -> None:
        if self._first.held:  # one token and the end: the parser's to refuse
            first = self._first.take()
            self._from_client(first)
            if self.closing:
                return
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
        if self.session.log_enabled("http.head", HEAD_LEVEL):
            first = b"%s %s HTTP/%d.%d" % (head.method, head.target, *head.version)
            self._log_head("request from client", head_lines(first, head.headers))
        self.due = None
        self._timer_kind = ""
        self.requests += 1
        method = head.method.decode("ascii")
        url = head.target.decode("ascii")
        keep = (
            head.keep_alive and self.requests < self.max_keepalive_requests and not self.client_eof
        )
        tx = Transaction(head, method, url, time.monotonic(), keep)
        self.tx = tx
        view: HttpRequest | None = None  # what a policy function sees, built when needed
        try:
            entry = request_entry(self.request, method)
            if entry != HTTP_REQ_ACCEPT:
                view = HttpRequest(method, url, version_text(head.version), [])
                v = verdict(
                    entry or UNLISTED,
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
            if self._covers is not None:
                self._check_certificate(head)
            headers = self._request_headers(head, view)
        except HttpViolation as e:
            self._client_violation(e.status, e.reason)
            return
        except Refused as e:
            self.log("policy", 3, f"request rejected: {e.reason}")
            self._send_error(e.status, e.reason)
            return
        except HeaderAbort as e:
            self._refuse(Verdict("reject", 400, str(e)), 400, "request")
            return
        except CallbackError as e:
            self.session.policy_failed("request", e)
            self._refuse(Verdict("deny"), 403, "request")
            return
        except PolicyValueError as e:
            self._policy_error(str(e))
            return
        except Exception as e:  # policy code
            self.session.policy_failed(f"request policy for {method} {tx.url[:80]}", e)
            self._send_error(500, POLICY_FAILED)
            return
        out = framing_out(head, (1, 1))
        tx.req_chunked = out.chunked
        framing = out.fields
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
                *(h for h in headers if h[0].lower() not in INBAND_DROP),
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

    def _log_head(self, what: str, lines: list[str]) -> None:
        """A head, line by line, credentials masked (``http.head`` at level 6)."""
        for line in lines:
            self.log("head", HEAD_LEVEL, f"{what}: {line}")

    def may_yield(self) -> bool:
        """Between requests (reading the first or the next request head), not while
        an upgraded connection is relayed."""
        return self.tx is None and self._upgraded is None

    def state(self) -> str:
        """The request in progress (``GET /big.bin: body``), or idle between requests."""
        tx = self.tx
        if tx is None:
            return f"idle after {self.requests} requests" if self.requests else "reading a request"
        phase = "response" if tx.resp_started else PHASES.get(tx.state, tx.state)
        return f"{tx.method} {tx.url[:200]}: {phase}"

    def _to_server(self) -> None:
        """Send the request head: on the kept server connection, or on a new one."""
        tx = self.tx
        assert tx is not None
        if self.server is not None and not self.server.lost:
            self._send_head()
            return
        self._attempt = self._connect(self.connect_timeout, self._connected, self._connect_failed)

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
        if self.session.log_enabled("http.head", HEAD_LEVEL):
            self._log_head("request to server", raw_head_lines(self._out_head))
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


class HttpProxyNonTransparent(HttpProxy):
    """HttpProxy as a proxy that clients are configured to use (with an InbandRouter):
    GET, HEAD and POST in absolute form, and CONNECT tunnels to ``connect_ports``."""

    def preset(self) -> None:
        """CONNECT passes too (to ``connect_ports``)."""
        self.request["CONNECT"] = HTTP_REQ_ACCEPT
