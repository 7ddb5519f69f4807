"""Pop3Proxy: a strict POP3 command proxy with a command table.

It is written against the public proxy interface only (:mod:`zfw.proxy.base`,
:mod:`zfw.stream`, the session), and the protocol work is done by the sans-IO
core (:mod:`zfw.pop3.core`); ``docs/proxies.md`` walks through it. One
command at a time: the client is not read while a command waits for its
reply. Each command is checked against ``self.request`` before it goes to the
server. Multi-line replies are passed on with backpressure (the server is not
read while the client's queue is full).
"""

from __future__ import annotations

import re
from collections import deque
from types import MappingProxyType
from typing import Any, ClassVar

from twisted.python.failure import Failure

from zfw import policytable
from zfw.engine.session import describe_failure
from zfw.options import integer, option, seconds, size, table
from zfw.pop3.core import (
    MAX_COMMAND,
    MAX_REPLY,
    Command,
    LineReader,
    Pop3Violation,
    multiline,
    parse_command,
    reply_ok,
)
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.starttls import StartTls
from zfw.stream import Stream
from zfw.tls.encryption import TwoSidedEncryption
from zfw.tls.stream import TlsStream

POP3_REQ_ACCEPT = policytable.ACCEPT
POP3_REQ_REJECT = policytable.REJECT
POP3_REQ_ABORT = policytable.ABORT
POP3_REQ_POLICY = policytable.POLICY

#: The commands of RFC 1939 and RFC 2449 that the default table lets through.
COMMANDS = frozenset(
    {"USER", "PASS", "APOP", "QUIT", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET"}
    | {"TOP", "UIDL", "CAPA"}
)
#: Capabilities passed on in a CAPA reply: STLS and SASL would take the session out
#: of the proxy's sight.
CAPABILITIES = frozenset(
    {"TOP", "USER", "UIDL", "PIPELINING", "RESP-CODES", "EXPIRE", "LOGIN-DELAY"}
    | {"IMPLEMENTATION", "AUTH-RESP-CODE"}
)


def _reject_text(args: tuple[Any, ...]) -> str | None:
    problem = policytable.text_only(args)
    if problem is None and args and not _TEXT.fullmatch(args[0]):
        return f"the text of -ERR is printable ASCII, not {args[0][:40]!r}"
    return problem


_TEXT = re.compile(r"[\x20-\x7e]*")
#: ``self.request[VERB]``; a POLICY function gets the command.
REQUEST = policytable.TableSpec(
    "request", policytable.verb_key, "a command (in upper case) or '*'",
    {
        POP3_REQ_ACCEPT: policytable.Action("accept"),
        POP3_REQ_REJECT: policytable.Action("reject", _reject_text),
        POP3_REQ_ABORT: policytable.Action("abort"),
        POP3_REQ_POLICY: policytable.Action("policy"),
    },
    "POP3_REQ_", "a POP3_REQ_* action", ("command",),
)  # fmt: skip
_GREETING = Command("(greeting)", ())
NO_TLS = "TLS is not available through this firewall."


def _encryption(session: Any) -> TwoSidedEncryption | None:
    """The service's encryption policy, for STLS (None: STLS is refused)."""
    enc = getattr(session.service, "encryption", None)
    return enc if isinstance(enc, TwoSidedEncryption) else None


class Pop3Proxy(Proxy):
    """The strict POP3 proxy; subclass it and override ``config()``.

    ``self.request[VERB]`` says what to do with a command (``"*"``: any other):
    ``POP3_REQ_ACCEPT``, ``(POP3_REQ_REJECT, "text")`` (answered ``-ERR text``
    by zfw), ``POP3_REQ_ABORT`` (the session is closed) or
    ``(POP3_REQ_POLICY, func)``, where ``func(command)`` returns one of those.
    By default the commands of RFC 1939 and CAPA pass; AUTH is refused, as is
    anything else, and STLS too unless the service has an encryption policy
    (TwoSidedEncryption): then zfw answers it, TLS is terminated on both sides
    (the server is asked STLS too, and verified) and this table applies inside
    TLS as before it. The other options are declared below.
    """

    log_tag: ClassVar[str] = "pop3"
    default_ports: ClassVar[tuple[int, ...]] = (110,)
    table_specs: ClassVar[tuple[policytable.TableSpec, ...]] = (REQUEST,)
    request: dict[str, Any] = option(
        table(), MappingProxyType({}), 'commands; `"*"` is any other', "tables"
    )
    timeout: float = option(seconds(zero=True), 600.0, "idle seconds; 0: no limit")
    connect_timeout: float = option(seconds(), 30.0, "seconds to reach the server")
    max_body_line: int = option(size(1), 8192, "octets of a message line")
    max_queued_commands: int = option(integer(1), 16, "pipelined commands that may wait")

    #: With an encryption policy the engine starts this proxy on the plaintext, and
    #: the policy applies at STLS (:class:`~zfw.proxy.starttls.StartTls`).
    starttls: ClassVar[bool] = True

    def __init__(self, session: Any):
        super().__init__(session)
        self.encryption = _encryption(session)
        self.tls = False  # whether STLS has made both sides TLS
        self.request = {}
        self.due: float | None = None  # for the idle watch: no deadline, only the idle timeout

    def preset(self) -> None:
        """RFC 1939 and CAPA pass; SASL is refused, and anything unknown; STLS is
        inspected under the service's encryption policy, refused without one."""
        self.request.update({verb: POP3_REQ_ACCEPT for verb in COMMANDS})
        if self.encryption is not None:
            self.request["STLS"] = POP3_REQ_ACCEPT
        else:
            self.request["STLS"] = (POP3_REQ_REJECT, NO_TLS)
        self.request["AUTH"] = (POP3_REQ_REJECT, "Use USER and PASS.")
        self.request["*"] = (POP3_REQ_REJECT, "Unknown command.")

    @property
    def idle_timeout(self) -> float | None:
        """Seconds without traffic before the session is dropped."""
        return self.timeout or None

    # --- start and end -------------------------------------------------------------------

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Connect to the server; the client is read once the greeting has come."""
        self.client = client
        self.server: Stream | None = None
        self.commands = LineReader(MAX_COMMAND)
        self.replies = LineReader(self.max_body_line)
        self.queue: deque[bytes | Pop3Violation] = deque()
        self.waiting: Command | None = _GREETING  # the command whose reply is awaited
        self.in_body = False  # passing the lines of a multi-line reply
        self.closed = False
        self._reading = False
        client.pause()
        client.on_eof = client.on_lost = lambda *_a: self.close("client left")
        self._attempt = self.session.connect_server(
            self.connect_timeout, self._connected, self._failed
        )
        if handover is not None and handover.pending:
            self.queue.extend(self.commands.feed(handover.pending))

    def _failed(self, reason: Failure) -> None:
        self.log("error", 3, f"connecting to the server failed: {describe_failure(reason)}")
        self._answer("-ERR Service not available.")
        self.close("server unreachable")

    def _connected(self, server: Stream) -> None:
        if self.closed:
            server.close()
            return
        self.server = server
        self.client.throttle(server.producer)  # a slow client: the server waits
        self._connected_streams(server)

    def _connected_streams(self, server: Stream) -> None:
        """Listen to both (again, after STLS: the producers below stay as they were)."""
        server.on_data = self._from_server
        server.on_eof = server.on_lost = lambda *_a: self.close("server left")
        self.client.on_data = self._from_client
        self.client.on_eof = self.client.on_lost = lambda *_a: self.close("client left")
        if self.session.idle_watch is not None:
            self.session.idle_watch.add(self)

    def close(self, reason: str) -> None:
        """End the session: both connections, after what is queued for them."""
        if self.closed:
            return
        self.closed = True
        self._attempt.cancel()
        for stream in (self.client, self.server):
            if stream is not None and not stream.lost:
                stream.close()
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        self.log("info", 3, f"session end: {reason}", client_bytes=self.client.received)
        self.session.close()

    def traffic(self) -> int:
        """Bytes so far, both ways (for the idle watch)."""
        return self.client.received + (self.server.received if self.server else 0)

    def expire(self, reason: str) -> None:
        """Idle too long."""
        self._answer("-ERR Idle for too long; closing.")
        self.close(reason)

    def state(self) -> str:
        """The command whose reply is awaited, if any."""
        return f"{self.waiting.verb}: waiting for the reply" if self.waiting else "idle"

    # --- commands --------------------------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        self.queue.extend(self.commands.feed(data))
        if len(self.queue) > self.max_queued_commands:
            self._violation(f"more than {self.max_queued_commands} commands waiting")
            return
        self._next()

    def _next(self) -> None:
        while self.waiting is None and self.queue and not self.closed:
            line = self.queue.popleft()
            try:
                if isinstance(line, Pop3Violation):
                    raise line
                command = parse_command(line)
            except Pop3Violation as e:
                self._violation(f"command: {e}")
                return
            self._command(command)
        if self.closed:
            return
        reading = self.waiting is None
        if reading != self._reading:  # (each change costs an epoll_ctl)
            self._reading = reading
            (self.client.resume if reading else self.client.pause)()

    def _command(self, command: Command) -> None:
        what = f"request[{command.verb!r}]"
        try:
            entry = policytable.lookup(self.request, command.verb)
            action, args = policytable.decide(REQUEST, entry, lambda fn: fn(command), what)
        except policytable.CallbackError as e:
            self.session.policy_failed(what, e)
            self._answer("-ERR The firewall policy failed on this command.")
            return
        except policytable.PolicyValueError as e:
            self.log("error", 1, str(e))
            self._answer("-ERR The firewall policy failed on this command.")
            return
        except Exception as e:  # policy code
            self.session.policy_failed(what, e)
            self._answer("-ERR The firewall policy failed on this command.")
            return
        if action == "abort":
            self.log("policy", 3, f"{command.verb}: aborted by policy")
            self.close(f"{command.verb} aborted by policy")
            return
        if action == "reject":
            text = next((a for a in args if isinstance(a, str)), "Rejected by policy.")
            self.log("policy", 3, f"{command.verb}: rejected by policy")
            self._answer(f"-ERR {text}")
            return
        assert self.server is not None
        if command.verb == "STLS" and (self.tls or self.encryption is None):
            self._answer("-ERR " + ("Already in TLS." if self.tls else NO_TLS))
            return
        self.log("debug", 6, f"command {command.verb}")
        self.waiting = command
        self.server.write(command.line)

    # --- replies ---------------------------------------------------------------------------

    def _from_server(self, data: bytes) -> None:
        out = []
        lines = self.replies.feed(data)
        for n, line in enumerate(lines, 1):
            if self.closed:
                return
            if isinstance(line, Pop3Violation):
                if out:
                    self.client.write(b"".join(out))
                self._violation(f"reply: {line}")
                return
            if self.in_body:
                if line == b".":
                    self.in_body = False
                    self.waiting = None
                elif self.waiting.verb == "CAPA" and not self._capability_passed(line):
                    continue
                out.append(line + b"\r\n")
                continue
            if self.waiting is None:
                self._violation("reply: a line nobody asked for")
                return
            if len(line) + 2 > MAX_REPLY:
                self._violation(f"reply: status line longer than {MAX_REPLY} octets")
                return
            try:
                ok = reply_ok(line)
            except Pop3Violation as e:
                self._violation(f"reply: {e}")
                return
            out.append(line + b"\r\n")
            if ok and self.waiting.verb == "STLS":
                self._start_tls(b"".join(out), more=n < len(lines))
                return
            if ok and multiline(self.waiting):
                self.in_body = True
            else:
                self.waiting = None
        if out:
            self.client.write(b"".join(out))
        if self.waiting is None:
            self._next()

    # --- STLS ------------------------------------------------------------------------------

    def _start_tls(self, answer: bytes, more: bool) -> None:
        """The server said +OK to STLS: pass it on, then TLS with both. Nothing may come
        between (``more``: lines after the +OK): plaintext sent after STLS would be
        taken as sent inside TLS (the STARTTLS command injection)."""
        assert self.server is not None and self.encryption is not None
        if more or self.queue or not self.commands.empty or not self.replies.empty:
            self._violation("STLS: more came after it before TLS")
            return
        self.server.pause()
        self.client.pause()
        self._reading = False
        self.client.write(answer)
        self.log("info", 4, "STLS: TLS with both sides")
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        StartTls(
            self.session, self.encryption, self.client, self.server, self._secured,
            self._tls_refused,
        ).start()  # fmt: skip

    def _secured(self, client: TlsStream, server: TlsStream) -> None:
        """Both sides are TLS: the same commands and table, afresh (RFC 2595 4)."""
        self.tls = True
        self.client, self.server = client, server
        self.commands = LineReader(MAX_COMMAND)
        self.replies = LineReader(self.max_body_line)
        self.waiting = None
        self._connected_streams(server)
        server.resume()
        self._next()

    def _tls_refused(self, reason: str) -> None:
        self.close(f"STLS: {reason}")

    def _capability_passed(self, line: bytes) -> bool:
        """Whether a line of a CAPA reply names a capability zfw passes on: STLS only
        while zfw can answer it."""
        if line.split(b" ", 1)[0].upper() == b"STLS":
            return self.encryption is not None and not self.tls
        return _capability_passed(line)

    # --- helpers ---------------------------------------------------------------------------

    def _answer(self, line: str) -> None:
        if not self.client.lost:
            self.client.write(line.encode("ascii") + b"\r\n")

    def _violation(self, reason: str) -> None:
        self.session.stats.count("pop3_violations")
        self.log("violation", 1, reason)
        self._answer("-ERR Protocol violation; closing.")
        self.close(reason)


def _capability_passed(line: bytes) -> bool:
    """Whether a line of a CAPA reply names a capability zfw passes on."""
    return line.split(b" ", 1)[0].upper().decode("ascii", "replace") in CAPABILITIES
