"""The FTP control channel without I/O: command lines, replies, who answers what.

Bytes go in, events come out; no Twisted here, so every parser can be fed
byte by byte in tests. Lines are reassembled before anything is parsed
(a command split across TCP segments is one command), must end in CRLF
(RFC 959's Telnet end of line) and may not carry control characters.

- :class:`CommandReader`: the client's lines -> :class:`Command`;
- :class:`ReplyReader`: the server's lines -> :class:`Reply` (multi-line
  replies are joined, RFC 959 section 4.2);
- :class:`Conversation`: which reply belongs to which command (preliminary
  1xx replies, the greeting, the unsolicited 421).

Text is decoded as Latin-1, which maps each byte to one character and back,
so path names in any encoding (UTF-8 per RFC 2640, or legacy ones) pass
unchanged.
"""

from __future__ import annotations

import re
from collections import deque

import attrs

CRLF = b"\r\n"
#: Telnet IAC IP, IAC DM and the bare DM (Synch) that clients put before ABOR.
_TELNET_PREFIX = re.compile(rb"^(?:\xff\xf4|\xff\xf2|\xf2)+")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VERB = re.compile(r"[A-Za-z]{3,4}")
_REPLY_LINE = re.compile(r"([1-5][0-5][0-9])([ -]|$)(.*)", re.S)

#: Commands that open a data connection (RFC 959, RFC 3659).
TRANSFER_COMMANDS = frozenset({"RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD"})
#: Commands whose replies may include preliminary 1xx lines.
PRELIMINARY_OK = TRANSFER_COMMANDS | {"REIN"}


class FtpViolation(Exception):
    """The peer broke the protocol; ``reason`` says how (for ``ftp.violation``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Command:
    """A client command: ``verb`` in upper case, ``arg`` None when there was none."""

    verb: str
    arg: str | None = None

    def line(self) -> bytes:
        """The command as sent on the wire."""
        text = self.verb if self.arg is None else f"{self.verb} {self.arg}"
        return text.encode("latin-1") + CRLF


@attrs.frozen
class BadCommand:
    """A complete line that is not a command; the session may go on (``500``)."""

    reason: str


@attrs.frozen
class Reply:
    """A server reply: its code and its text lines (one, or several if multi-line)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The text of a one-line reply, or the first line of a multi-line one."""
        return self.lines[0]

    @property
    def preliminary(self) -> bool:
        """A 1xx reply: another one follows for the same command."""
        return self.code < 200

    def serialize(self) -> bytes:
        """The reply as sent on the wire, multi-line per RFC 959 4.2.

        Middle lines that start with a digit get a leading space, so that no
        client can take one for the end of the reply.
        """
        return format_reply(self.code, self.lines)


def format_reply(code: int, lines: str | tuple[str, ...] | list[str]) -> bytes:
    """Wire form of a reply with ``code`` and one or more text ``lines``."""
    if isinstance(lines, str):
        lines = (lines,)
    if len(lines) == 1:
        return f"{code} {lines[0]}".encode("latin-1") + CRLF
    out = [f"{code}-{lines[0]}"]
    for ln in lines[1:-1]:
        out.append(" " + ln if ln[:1].isdigit() else ln)
    out.append(f"{code} {lines[-1]}")
    return "\r\n".join(out).encode("latin-1") + CRLF


class _LineReader:
    """Reassembles CRLF-terminated lines, strictly."""

    def __init__(self, max_line: int, who: str):
        self.max_line = max_line
        self.who = who
        self._buf = bytearray()

    def _lines(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        lines = []
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > self.max_line + 1:  # + the CR of a CRLF to come
                    raise FtpViolation(f"{self.who} line longer than {self.max_line} bytes")
                return lines
            if end == 0 or buf[end - 1] != 0x0D:
                raise FtpViolation(f"{self.who} line ends in a bare LF")
            line = bytes(buf[: end - 1])
            del buf[: end + 1]
            if len(line) > self.max_line:
                raise FtpViolation(f"{self.who} line longer than {self.max_line} bytes")
            if b"\r" in line:
                raise FtpViolation(f"bare CR in a {self.who} line")
            lines.append(line)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held."""
        return len(self._buf)

    @property
    def incomplete(self) -> bool:
        """In the middle of a line (or, for replies, of a multi-line reply)."""
        return bool(self._buf)


class CommandReader(_LineReader):
    """The client side: lines in, :class:`Command` or :class:`BadCommand` out.

    Framing errors (no CRLF, over-long line, bare CR/LF, NUL) raise
    :class:`FtpViolation`: the stream cannot be trusted after them. A
    complete line that is not a command gives :class:`BadCommand`.
    """

    def __init__(self, max_line: int = 255):
        super().__init__(max_line, "command")

    def feed(self, data: bytes) -> list[Command | BadCommand]:
        """Parse what ``data`` completes."""
        return [parse_command(line) for line in self._lines(data)]


def parse_command(line: bytes) -> Command | BadCommand:
    """One command line without its CRLF."""
    if b"\x00" in line:
        raise FtpViolation("NUL in a command line")
    line = _TELNET_PREFIX.sub(b"", line)
    if b"\xff" in line:
        return BadCommand("Telnet command in a command line")
    text = line.decode("latin-1")
    if _CTL.search(text):
        return BadCommand("control character in a command line")
    verb, sep, arg = text.partition(" ")
    if not _VERB.fullmatch(verb):
        return BadCommand(f"not a command verb: {verb[:16]!r}" if text else "empty command line")
    return Command(verb.upper(), arg if sep else None)


class ReplyReader(_LineReader):
    """The server side: lines in, complete :class:`Reply` objects out.

    Anything but a well-formed reply raises :class:`FtpViolation`.
    ``max_lines`` limits the lines of one multi-line reply.
    """

    def __init__(self, max_line: int = 2048, max_lines: int = 100):
        super().__init__(max_line, "reply")
        self.max_lines = max_lines
        self._code: str | None = None
        self._multi: list[str] = []

    def feed(self, data: bytes) -> list[Reply]:
        """Parse what ``data`` completes."""
        replies = []
        for raw in self._lines(data):
            text = raw.decode("latin-1")
            if _CTL.search(text):
                raise FtpViolation("control character in a reply line")
            reply = self._line(text)
            if reply is not None:
                replies.append(reply)
        return replies

    @property
    def incomplete(self) -> bool:
        """In the middle of a line or of a multi-line reply."""
        return bool(self._buf) or self._code is not None

    def _line(self, text: str) -> Reply | None:
        if self._code is not None:  # inside a multi-line reply
            if text.startswith(self._code) and text[3:4] in (" ", ""):
                code, self._code = self._code, None
                lines, self._multi = (*self._multi, text[4:]), []
                return Reply(int(code), lines)
            if len(self._multi) >= self.max_lines:
                raise FtpViolation(f"multi-line reply longer than {self.max_lines} lines")
            self._multi.append(text)
            return None
        m = _REPLY_LINE.fullmatch(text)
        if m is None:
            raise FtpViolation(f"not a reply line: {text[:40]!r}")
        code, sep, rest = m.groups()
        if sep == "-":
            self._code = code
            self._multi = [rest]
            return None
        return Reply(int(code), (rest,))


@attrs.frozen
class Answer:
    """What a reply answers: ``command`` (None for the greeting or an unsolicited
    421) and whether it is the ``final`` reply to it."""

    command: Command | None
    reply: Reply
    final: bool


class Conversation:
    """Which reply belongs to which command.

    The server speaks first (the greeting, possibly after ``120``). Then each
    command sent gets exactly one final reply (2xx-5xx), in order, possibly
    after preliminary 1xx replies (only for the commands that may have them).
    A ``421`` may come at any time: the server is closing. Anything else out
    of turn, a second 1xx to one command included, raises :class:`FtpViolation`.
    """

    def __init__(self) -> None:
        self.greeted = False
        self.pending: deque[Command] = deque()
        self.closing = False
        self._preliminary = False  # the pending command had its one 1yz reply

    def sent(self, command: Command) -> None:
        """``command`` went to the server."""
        self.pending.append(command)

    def received(self, reply: Reply) -> Answer:
        """Match ``reply`` to what it answers."""
        if reply.code == 421 and (not self.greeted or not self.pending):
            self.closing = True
            return Answer(None, reply, True)
        if not self.greeted:
            if reply.code not in (120, 220):
                raise FtpViolation(f"greeting with reply code {reply.code}")
            self.greeted = reply.code == 220
            return Answer(None, reply, self.greeted)
        if not self.pending:
            raise FtpViolation(f"reply {reply.code} with no command pending")
        command = self.pending[0]
        if reply.preliminary:
            if command.verb not in PRELIMINARY_OK:
                raise FtpViolation(f"preliminary reply {reply.code} to {command.verb}")
            if self._preliminary:  # RFC 959: one 1yz reply, then the final one
                raise FtpViolation(f"a second preliminary reply {reply.code} to {command.verb}")
            self._preliminary = True
            return Answer(command, reply, False)
        self.pending.popleft()
        self._preliminary = False
        if reply.code == 421:
            self.closing = True
        return Answer(command, reply, True)
