"""POP3 lines in, commands and replies out; no I/O.

RFC 1939 with the length limits of RFC 2449: a command line is at most 255
octets, a reply line at most 512. Lines end in CRLF; a bare LF, a NUL or
another control character is a violation. A multi-line reply (the answer to
RETR, TOP, CAPA, and LIST or UIDL without an argument) follows its ``+OK``
line and ends with a line holding a single dot; its lines are passed on as
they are (dot-stuffing included).
"""

from __future__ import annotations

import re

import attrs

MAX_COMMAND = 255
MAX_REPLY = 512
_VERB = re.compile(rb"[A-Za-z]{3,4}")
_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Pop3Violation(Exception):
    """A line that breaks the protocol; the message says how."""


@attrs.frozen
class Command:
    """A client command: the upper-case verb and its arguments."""

    verb: str
    args: tuple[str, ...]

    @property
    def line(self) -> bytes:
        """The command as sent on (normalised: one space between the words)."""
        return " ".join((self.verb, *self.args)).encode("ascii") + b"\r\n"


def multiline(command: Command) -> bool:
    """Whether a ``+OK`` answer to ``command`` runs on to a terminating dot."""
    if command.verb in ("RETR", "TOP", "CAPA"):
        return True
    return command.verb in ("LIST", "UIDL") and not command.args


class LineReader:
    """Cuts a byte stream into CRLF lines of at most ``limit`` octets (CRLF included).

    A line that breaks the rules ends the stream: :meth:`feed` returns the lines
    before it followed by the :class:`Pop3Violation` (so that what came first is
    answered first), and raises it on any later call.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._buf = bytearray()
        self._broken: Pop3Violation | None = None

    def feed(self, data: bytes) -> list[bytes | Pop3Violation]:
        """The complete lines in ``data`` (with what came before), without CRLF."""
        if self._broken is not None:
            raise self._broken
        self._buf += data
        lines: list[bytes | Pop3Violation] = []
        try:
            while True:
                end = self._buf.find(b"\n")
                if end < 0:
                    if len(self._buf) > self.limit:
                        raise Pop3Violation(f"line longer than {self.limit} octets")
                    return lines
                if end + 1 > self.limit:
                    raise Pop3Violation(f"line longer than {self.limit} octets")
                if end == 0 or self._buf[end - 1] != 0x0D:
                    raise Pop3Violation("line not ended by CRLF")
                line = bytes(self._buf[: end - 1])
                del self._buf[: end + 1]
                if _BAD.search(line):
                    raise Pop3Violation("control character in a line")
                lines.append(line)
        except Pop3Violation as e:
            self._broken = e
            self._buf.clear()
            lines.append(e)
            return lines

    @property
    def empty(self) -> bool:
        """Whether no partial line is waiting."""
        return not self._buf


def parse_command(line: bytes) -> Command:
    """A command line (without CRLF) as a :class:`Command`."""
    words = line.split(b" ")
    if not _VERB.fullmatch(words[0]):
        raise Pop3Violation(f"not a POP3 command: {line[:20]!r}")
    if any(not w for w in words[1:]):
        raise Pop3Violation("empty argument (two spaces, or a trailing one)")
    if not line.isascii():
        raise Pop3Violation("non-ASCII command")
    return Command(words[0].decode("ascii").upper(), tuple(w.decode("ascii") for w in words[1:]))


def reply_ok(line: bytes) -> bool:
    """Whether a status line is ``+OK`` (True) or ``-ERR`` (False)."""
    if line == b"+OK" or line.startswith(b"+OK "):
        return True
    if line == b"-ERR" or line.startswith(b"-ERR "):
        return False
    raise Pop3Violation(f"not a POP3 status line: {line[:20]!r}")
