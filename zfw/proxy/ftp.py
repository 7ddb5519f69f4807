"""FtpProxy: the FTP control channel under policy, data channels on foreign addresses.

A thin Twisted adapter over the sans-IO core (:mod:`zfw.ftp.core`). Commands
are handled one at a time in order (``ABOR`` during a transfer jumps the
queue); each command is decided by ``self.request`` and each final reply by
``self.response``. The proxy answers the data-channel commands itself and
prepares a :class:`~zfw.proxy.ftpdata.DataChannel`:

- client ``PASV``/``EPSV``: zfw listens on the **server's** address (the
  client's original destination), so the client sees the server;
- client ``PORT``/``EPRT``: zfw connects to the client **from the server's
  address**, port 20 where it can;
- toward the server, ``data_mode`` chooses passive, active or as the client
  did; with ``forge_addr`` the server sees the client's address on the data
  connection as on the control connection.

The final reply of a transfer (``226``) reaches the client only after the
data has been delivered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, ClassVar

from twisted.python.failure import Failure

from zfw import net
from zfw.engine.session import describe_failure
from zfw.ftp.core import (
    TRANSFER_COMMANDS,
    BadCommand,
    Command,
    CommandReader,
    Conversation,
    FtpViolation,
    Reply,
    ReplyReader,
    format_reply,
)
from zfw.ftp.policy import (
    ANONYMOUS_USERS,
    DEFAULT_FEATURES,
    FTP_DATA_ACTIVE,
    FTP_DATA_KEEP,
    FTP_DATA_PASSIVE,
    FTP_REQ_ACCEPT,
    FTP_REQ_POLICY,
    FTP_REQ_REJECT,
    RESPONSE,
    TABLES,
    TLS_COMMANDS,
    WRITE_COMMANDS,
    FtpVerdict,
    default_requests,
    filter_features,
    request_entry,
    response_entry,
    verdict,
)
from zfw.options import (
    boolean,
    choice,
    integer,
    option,
    ordered,
    port,
    seconds,
    size,
    strings,
    table,
)
from zfw.policytable import CallbackError, PolicyValueError, TableSpec
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.ftpdata import DataChannel
from zfw.proxy.ftptransfers import Transfers
from zfw.stream import Stream

ReplyHandler = Callable[[Command, Reply], None]


class FtpProxy(Transfers, Proxy):
    """A strict FTP proxy; subclass it and override ``config()``. The tables
    ``request`` and ``response`` (see :mod:`zfw.ftp.policy`) and the other options are
    declared below (``docs/policy.md`` lists them)."""

    log_tag: ClassVar[str] = "ftp"
    default_ports: ClassVar[tuple[int, ...]] = (21,)
    __option_checks__ = (ordered("data_port_min", "data_port_max"),)
    table_specs: ClassVar[tuple[TableSpec, ...]] = TABLES
    transparent_data: ClassVar[bool] = True
    request: dict[str, Any] = option(
        table(), MappingProxyType({}), 'commands; `"*"` is any other', "tables"
    )
    response: dict[tuple[Any, Any], Any] = option(
        table(), MappingProxyType({}), "final replies by `(command, code)`", "tables"
    )
    data_mode: int = option(
        choice(
            {
                FTP_DATA_KEEP: "FTP_DATA_KEEP",
                FTP_DATA_PASSIVE: "FTP_DATA_PASSIVE",
                FTP_DATA_ACTIVE: "FTP_DATA_ACTIVE",
            }
        ),
        FTP_DATA_KEEP,
        "toward the server: as the client did (`FTP_DATA_KEEP`), passive or active",
    )
    data_port_min: int = option(
        port(1024),
        40000,
        "lowest port zfw listens on for data (keep the range clear of intercepted ports)",
    )
    data_port_max: int = option(port(1024), 40999, "highest port zfw listens on for data")
    active_source_port: int = option(
        port(),
        20,
        "source port of active data connections to the client (another when it is busy)",
    )
    permit_low_data_ports: bool = option(
        boolean(),
        False,
        "allow data ports below 1024 (a client's `PORT`/`EPRT`, a server's 227/229)",
    )
    features: frozenset[str] = option(
        strings(),
        DEFAULT_FEATURES,
        "`FEAT` lines passed on (by first word; rejected commands are dropped too)",
    )
    max_line_length: int = option(size(1), 255, "bytes of a command line")
    max_reply_line_length: int = option(size(1), 2048, "bytes of a reply line")
    max_continuation_lines: int = option(integer(1), 100, "lines of a multi-line reply")
    max_username_length: int = option(size(1), 64, "bytes of a user name")
    max_password_length: int = option(size(1), 128, "bytes of a password")
    max_queued_commands: int = option(
        integer(1), 16, "commands read ahead before the client is paused"
    )
    timeout: float = option(seconds(), 300.0, "idle seconds (control and data together)")
    data_timeout: float = option(
        seconds(), 60.0, "seconds a prepared data channel waits for its connections"
    )
    connect_timeout: float = option(seconds(), 30.0, "seconds to reach the server or a data peer")
    line_timeout: float = option(
        seconds(),
        30.0,
        "seconds a command line or reply, once begun, may take to complete (a trickle does "
        "not keep it open)",
    )

    def __init__(self, session: Any):
        super().__init__(session)
        self.request = {}
        self.response = {}
        self.due: float | None = None  # for the idle watch: no deadline, only the idle timeout
        self.client: Stream | None = None
        self.server: Stream | None = None
        self.data: DataChannel | None = None
        #: Every data channel still open (a finished transfer's may wait for the client's FIN).
        self.channels: set[DataChannel] = set()
        self._queue: deque[Command | BadCommand] = deque()
        self._handlers: deque[ReplyHandler] = deque()
        self._holding = False
        self._paused = False
        self._epsv_all = False
        self._closed = False
        self.idle_timeout: float | None = None
        self._transfer_text = ""

    def preset(self) -> None:
        """The default tables: known commands pass, except TLS and SITE."""
        self.request.update(default_requests())

    # --- start and end ---------------------------------------------------------------------

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Hold the client, connect to the server, then relay the control channel (after
        the commands a handing-over proxy passed on)."""
        self.client = client
        self._pending = handover.pending if handover is not None else b""
        self.idle_timeout = self.timeout
        self.commands = CommandReader(self.max_line_length)
        self.replies = ReplyReader(self.max_reply_line_length, self.max_continuation_lines)
        self.conversation = Conversation()
        client.pause()
        client.on_lost = self._lost
        self._attempt = self.session.connect_server(
            self.connect_timeout, self._connected, self._failed
        )

    def _failed(self, reason: Failure) -> None:
        self.log("error", 3, f"connecting to the server failed: {describe_failure(reason)}")
        self._send_client(421, "Service not available: cannot reach the server.")
        self.close("server unreachable")

    def _connected(self, server: Stream) -> None:
        client = self.client
        assert client is not None
        self.server = server
        if client.lost or self._closed:
            server.close()
            self.close("client left")
            return
        client.on_data = self._client_data
        client.on_eof = server.on_eof = self._eof
        server.on_data = self._server_data
        server.on_lost = self._lost
        client.resume()
        if self.session.idle_watch is not None:
            self.session.idle_watch.add(self)
        if self._pending:
            pending, self._pending = self._pending, b""
            self._client_data(pending)

    def _eof(self, ep: Stream) -> None:
        self.close(f"{ep.side} closed the control connection")

    def _lost(self, ep: Stream, _reason: Failure) -> None:
        self.close(f"{ep.side} control connection lost")

    def close(self, reason: str) -> None:
        """End the session: data channels, then both control connections (flushed)."""
        if self._closed:
            return
        self._closed = True
        for channel in list(self.channels):
            channel.abort(reason)
        self._attempt.cancel()
        for ep in (self.client, self.server):
            if ep is not None and not ep.lost:
                ep.close()
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        c = self.client.received if self.client else 0
        s = self.server.received if self.server else 0
        target = self.session.decision.target
        self.log(
            "info",
            3,
            f"session end: {reason}",
            client=net.fmt_addr(*self.session.client),
            server=net.fmt_addr(*target) if target is not None else "-",
            client_bytes=c,
            server_bytes=s,
        )
        self.session.close()

    # --- the idle watch ----------------------------------------------------------------------

    def traffic(self) -> int:
        """Control and data bytes so far (a long transfer keeps the control alive)."""
        c = self.client.received if self.client else 0
        s = self.server.received if self.server else 0
        return c + s + sum(ch.traffic() for ch in self.channels)

    def expire(self, reason: str) -> None:
        """Idle too long."""
        self._send_client(421, "Timeout: closing the control connection.")
        self.close(reason)

    def overdue(self) -> None:
        """A command line or reply has been coming for longer than ``line_timeout``."""
        who = "server's reply" if self.replies.incomplete else "client's command"
        self.violation(f"{who} not complete within {self.line_timeout:g} s")
        self._send_client(421, "Timeout: closing the control connection.")
        self.close(f"{who} not complete within {self.line_timeout:g} s")

    def _line_deadline(self) -> None:
        """A line (or multi-line reply) once begun must be complete in ``line_timeout``,
        however slowly its bytes trickle in (the idle timeout restarts with each)."""
        if self.commands.incomplete or self.replies.incomplete:
            if self.due is None:
                self.due = self.session.reactor.seconds() + self.line_timeout
        else:
            self.due = None

    # --- logging helpers ---------------------------------------------------------------------

    def violation(self, reason: str) -> None:
        """Log a protocol or policy violation (``ftp.violation``)."""
        self.session.stats.count("ftp_violations")
        self.log("violation", 1, reason, client=net.fmt_addr(*self.session.client))

    def _policy_log(self, message: str) -> None:
        self.log("policy", 3, message)

    # --- the client's commands -----------------------------------------------------------

    def _client_data(self, data: bytes) -> None:
        try:
            items = self.commands.feed(data)
            self._line_deadline()
        except FtpViolation as e:
            self.violation(e.reason)
            self._send_client(500, "Command line rejected; closing.")
            self.close(e.reason)
            return
        for item in items:
            if isinstance(item, Command) and item.verb == "ABOR" and self._transferring():
                self._abort_transfer(item)
            else:
                self._queue.append(item)
        if len(self._queue) > self.max_queued_commands and not self._paused:
            self._paused = True
            assert self.client is not None
            self.client.pause()
        self._next()

    def _transferring(self) -> bool:
        return self.data is not None and self.data.started

    @property
    def _busy(self) -> bool:
        return bool(self._handlers) or self._holding

    def _next(self) -> None:
        while not self._busy and self._queue and not self._closed:
            self._command(self._queue.popleft())
        if self._paused and len(self._queue) <= self.max_queued_commands // 2 and not self._closed:
            self._paused = False
            assert self.client is not None
            self.client.resume()

    def _command(self, item: Command | BadCommand) -> None:
        if isinstance(item, BadCommand):
            self.violation(item.reason)
            self._send_client(500, "Syntax error, command unrecognized.")
            return
        cmd = item
        what = f"request[{cmd.verb!r}]"
        try:
            v = verdict(request_entry(self.request, cmd.verb), lambda fn: fn(cmd), what)
        except CallbackError as e:
            self.session.policy_failed(what, e)
            self._send_client(451, "Local error in the firewall policy.")
            return
        except PolicyValueError as e:
            self.log("error", 1, f"policy: {e}")
            self._send_client(451, "Local error in the firewall policy.")
            return
        except Exception as e:  # policy code
            self.session.policy_failed(f"request policy for {cmd.verb}", e)
            self._send_client(451, "Local error in the firewall policy.")
            return
        if v.action == "abort":
            self._policy_log(f"{cmd.verb}: aborted by policy")
            self._send_client(421, v.text or "Command aborted by policy; closing.")
            self.close(f"{cmd.verb} aborted by policy")
            return
        if v.action == "reject" or cmd.verb in TLS_COMMANDS:
            code, text = v.code or 500, v.text or "Command rejected by policy."
            if cmd.verb in TLS_COMMANDS and v.accepted:
                code, text = 534, "TLS is not available through this firewall."
            self._policy_log(f"{cmd.verb}: rejected by policy ({code})")
            self._send_client(code, text)
            return
        handler = _COMMANDS.get(cmd.verb)
        if handler is not None:
            handler(self, cmd)
        elif cmd.verb in TRANSFER_COMMANDS:
            self._transfer(cmd)
        else:
            self._send(cmd, self._pass)

    def _send(self, cmd: Command, on_final: ReplyHandler) -> None:
        assert self.server is not None
        self.server.write(cmd.line())
        self.conversation.sent(cmd)
        self._handlers.append(on_final)
        if self.session.log_enabled("ftp.request", 4):
            shown = "PASS ****" if cmd.verb == "PASS" else cmd.line().decode("latin-1").strip()
            self.log("request", 4, shown)

    def _write_client(self, data: bytes) -> None:
        if self.client is not None and not self.client.lost:
            self.client.write(data)

    def _send_client(self, code: int, text: str | tuple[str, ...]) -> None:
        self._write_client(format_reply(code, text))

    def _pass(self, _cmd: Command, reply: Reply) -> None:
        self._write_client(reply.serialize())

    # --- commands the proxy looks into -----------------------------------------------------

    def _user(self, cmd: Command) -> None:
        self._send_limited(cmd, self.max_username_length, "User name")

    def _password(self, cmd: Command) -> None:
        self._send_limited(cmd, self.max_password_length, "Password")

    def _send_limited(self, cmd: Command, limit: int, what: str) -> None:
        if len(cmd.arg or "") > limit:
            self.violation(f"{what.lower()} longer than {limit}")
            self._send_client(501, f"{what} too long.")
            return
        self._send(cmd, self._pass)

    def _feat(self, cmd: Command) -> None:
        def rejected(verb: str) -> bool:
            value = request_entry(self.request, verb)
            return (value[0] if isinstance(value, tuple) else value) == FTP_REQ_REJECT

        permitted = frozenset(f for f in self.features if not rejected(f)) - TLS_COMMANDS

        def filtered(_cmd: Command, reply: Reply) -> None:
            if reply.code == 211:
                reply = Reply(211, filter_features(reply.lines, permitted))
            self._pass(_cmd, reply)

        self._send(cmd, filtered)

    def _abor(self, cmd: Command) -> None:
        self._drop_data("ABOR")
        self._send(cmd, self._pass)

    def _rein(self, cmd: Command) -> None:
        self._drop_data("REIN")
        self._epsv_all = False
        self._send(cmd, self._pass)

    # --- the server's replies ------------------------------------------------------------

    def _server_data(self, data: bytes) -> None:
        try:
            replies = self.replies.feed(data)
            self._line_deadline()
            for reply in replies:
                self._reply(reply)
                if self._closed:
                    return
        except FtpViolation as e:
            self.violation(f"server: {e.reason}")
            self._send_client(421, "Service not available: the server broke the protocol.")
            self.close(f"server: {e.reason}")

    def _reply(self, reply: Reply) -> None:
        answer = self.conversation.received(reply)
        cmd = answer.command
        if cmd is None:  # greeting, or the server closing (421)
            self._pass(Command("-"), reply)
            if self.conversation.closing:
                self.close("the server closed the session (421)")
            return
        if not answer.final:
            self._pass(cmd, reply)
            return
        handler = self._handlers.popleft()
        what = f"response[({cmd.verb!r}, {reply.code})]"
        try:
            v = verdict(
                response_entry(self.response, cmd.verb, reply.code),
                lambda fn: fn(cmd, reply),
                what,
                RESPONSE,
            )
        except CallbackError as e:
            self.session.policy_failed(what, e)
            v = FtpVerdict("reject", 451, "Local error in the firewall policy.")
        except PolicyValueError as e:
            self.log("error", 1, f"policy: {e}")
            v = FtpVerdict("reject", 451, "Local error in the firewall policy.")
        except Exception as e:  # policy code
            self.session.policy_failed(f"response policy for {cmd.verb}", e)
            v = FtpVerdict("reject", 451, "Local error in the firewall policy.")
        if v.action == "abort":
            self._policy_log(f"reply {reply.code} to {cmd.verb}: aborted by policy")
            self._send_client(421, "Reply aborted by policy; closing.")
            self.close("reply aborted by policy")
            return
        if v.action == "reject":
            self._policy_log(f"reply {reply.code} to {cmd.verb}: rejected by policy")
            reply = Reply(v.code or 550, (v.text or "Reply rejected by policy.",))
        handler(cmd, reply)
        if reply.code == 421:
            self.close("the server closed the session (421)")
            return
        self._next()


_COMMANDS: dict[str, Callable[[FtpProxy, Command], None]] = {
    "USER": FtpProxy._user,
    "PASS": FtpProxy._password,
    "FEAT": FtpProxy._feat,
    "ABOR": FtpProxy._abor,
    "REIN": FtpProxy._rein,
    "PASV": FtpProxy._client_passive,
    "EPSV": FtpProxy._client_passive,
    "PORT": FtpProxy._client_active,
    "EPRT": FtpProxy._client_active,
}


class FtpProxyRW(FtpProxy):
    """Preset: every known command (TLS excepted), uploads included."""


class FtpProxyRO(FtpProxy):
    """Preset: downloads only; commands that change files are rejected with 550."""

    def preset(self) -> None:
        """Commands that change files are rejected."""
        for verb in WRITE_COMMANDS:
            self.request[verb] = (FTP_REQ_REJECT, 550, "Permission denied: read-only access.")


def _anonymous_only(proxy: FtpProxy) -> None:
    def check_user(cmd: Command) -> Any:
        if (cmd.arg or "").lower() in ANONYMOUS_USERS:
            return FTP_REQ_ACCEPT
        return (FTP_REQ_REJECT, 530, "Only anonymous logins are permitted.")

    proxy.request["USER"] = (FTP_REQ_POLICY, check_user)


class FtpProxyAnonRO(FtpProxyRO):
    """Preset: anonymous users only, downloads only."""

    def preset(self) -> None:
        """Only anonymous users log in (FtpProxyRO's preset runs first)."""
        _anonymous_only(self)


class FtpProxyAnonRW(FtpProxy):
    """Preset: anonymous users only, uploads permitted."""

    def preset(self) -> None:
        """Only anonymous users log in."""
        _anonymous_only(self)
