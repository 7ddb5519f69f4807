"""A strict sans-IO HTTP/1.1 message parser: bytes in, events out.

Strict means that anything invalid or ambiguous is an :class:`HttpViolation`
(with the status a proxy answers: 400, 413, 414, 431, 501, 505), never a
guess: no obs-fold, no bare CR or LF, no whitespace before the colon, no
control characters in values, exactly one well-formed Content-Length, only
a final ``chunked`` Transfer-Encoding (and none in HTTP/1.0), never both,
exactly one Host in HTTP/1.1, a request line of exactly METHOD SP TARGET SP
VERSION. Bodies stream as :class:`Data` events as they arrive; trailers come
apart from the headers. After :class:`EndOfMessage` the next (pipelined)
message follows; an interim (1xx) response comes without EndOfMessage. No
Twisted here.

zfw parses the head itself instead of using a general-purpose parser: it must
see the request line and each header line exactly as sent (llhttp, for one,
accepts several spaces in the request line), and the grammar is small enough
to check completely; the table of malformed messages in the tests is the
specification.
"""

from __future__ import annotations

import re

from zfw.http.messages import (
    HOP_BY_HOP,
    Broken,
    Data,
    EndOfMessage,
    Headers,
    HttpViolation,
    Index,
    Limits,
    Request,
    Response,
    tokens,
)
from zfw.http.targets import check_host

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3}) ([\t\x20-\x7e\x80-\xff]*)")
_HEADER = re.compile(rb"(" + TOKEN + rb"):[ \t]*(.*?)[ \t]*")
# The whole header block at once (each line ending in CRLF); C does the per-line work.
_BLOCK = re.compile(rb"(?:" + TOKEN + rb":[^\r\n]*\r\n)*")
# Only ever run over a checked block (no bare CR or LF), so the value can be ``.*``, which
# the regex engine scans several times faster than a character class; it runs to the end
# of the line and gives back the trailing whitespace (a lazy value costs twice as much).
_FIELD = re.compile(rb"(" + TOKEN + rb"):[ \t]*((?:.*[^ \t\r\n])?)[ \t]*\r\n")
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VALUE_CHARS = rb"[\t\x20-\x7e\x80-\xff]*"
_BLOCK_CHARS = rb"((?:" + TOKEN + rb":" + _VALUE_CHARS + rb"\r\n)*)\r\n"
# A whole well-formed head in one match (the common case); anything else takes the
# line-by-line path, which also says what is wrong.
_FAST_REQUEST = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])\r\n" + _BLOCK_CHARS)
_FAST_RESPONSE = re.compile(
    rb"HTTP/1\.([01]) ([0-9]{3}) (" + _VALUE_CHARS + rb")\r\n" + _BLOCK_CHARS
)
_BAD_IN_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|(?<!\r)\n|\r(?!\n)")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*"
    + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + TOKEN
    + rb'|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*'
)
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(" + _CHUNK_EXT + rb")")
_BARE_CR_LF = re.compile(rb"(?<!\r)\n|\r(?=[^\n])")

_END = EndOfMessage()  # the common, trailer-less end; never changed


def _persistent(version: tuple[int, int], body: str, index: Index) -> bool:
    if version != (1, 1) or body == "close":
        return False
    connection = index.get(b"connection")
    return connection is None or b"close" not in tokens(connection)


def _lines(head: bytes) -> list[bytes]:
    if _BARE_CR_LF.search(head):
        raise HttpViolation(400, "bare CR or LF in the head")
    return head.split(b"\r\n")


def _fields(block: bytes, limits: Limits, checked: bool = False) -> tuple[Headers, Index]:
    """The header fields of ``block`` (lines each ending in CRLF; the head has been
    checked for bare CR/LF and control characters), and their values by lower-case name.

    ``checked``: the block is known to be well-formed."""
    if not block:
        return (), {}
    if not checked and _BLOCK.fullmatch(block) is None:  # say exactly what is wrong
        _headers(block[:-2].split(b"\r\n"), limits)
        raise HttpViolation(400, "malformed header block")
    found = _FIELD.findall(block)
    if len(found) > limits.max_headers:
        raise HttpViolation(431, f"more than {limits.max_headers} header fields")
    index: Index = {}
    for name, value in found:
        key = name.lower()
        if key in index:
            index[key].append(value)
        else:
            index[key] = [value]
    return tuple(found), index


def _headers(lines: list[bytes], limits: Limits) -> tuple[Headers, Index]:
    """The header fields, and their values by lower-case name (line by line)."""
    if len(lines) > limits.max_headers:
        raise HttpViolation(431, f"more than {limits.max_headers} header fields")
    out = []
    index: Index = {}
    match = _HEADER.fullmatch
    for line in lines:
        m = match(line)
        if m is None:
            if line[:1] in (b" ", b"\t"):
                raise HttpViolation(400, "obsolete line folding in a header")
            raise HttpViolation(400, f"malformed header line {line[:40]!r}")
        name, value = m.groups()
        if _BAD_VALUE.search(value):
            raise HttpViolation(400, f"control character in header {name.decode()}")
        out.append((name, value))
        index.setdefault(name.lower(), []).append(value)
    return tuple(out), index


def _content_length(values: list[bytes], limits: Limits) -> int:
    """The one Content-Length of a message (its values by the parser's index)."""
    if len(values) > 1:
        raise HttpViolation(400, "more than one Content-Length")
    value = values[0]
    # bytes.isdigit() is ASCII-only: no signs, spaces, "0x" or other digits.
    if not value.isdigit() or len(value) > 19:
        raise HttpViolation(400, f"malformed Content-Length {value[:20]!r}")
    n = int(value)
    if limits.max_body is not None and n > limits.max_body:
        raise HttpViolation(413, f"body of {n} bytes exceeds {limits.max_body}")
    return n


def _chunked(values: list[bytes], version: tuple[int, int]) -> bool:
    """Whether the Transfer-Encoding values (by the parser's index) are a valid ``chunked``."""
    if version < (1, 1):
        raise HttpViolation(400, "Transfer-Encoding in HTTP/1.0")
    if len(values) > 1 or values[0].lower() != b"chunked":
        raise HttpViolation(501, f"unsupported Transfer-Encoding {b', '.join(values)[:40]!r}")
    return True


class Parser:
    """Parses a stream of requests (``role='request'``) or responses.

    For responses, tell it the request method of each response in order with
    :meth:`expect` (HEAD responses have no body; neither do 1xx, 204, 304).
    """

    def __init__(self, role: str, limits: Limits | None = None):
        assert role in ("request", "response")
        self.role = role
        self.limits = limits or Limits()
        self._buf = bytearray()
        self._state = "head"
        self._left = 0  # body bytes left (length mode) or in the current chunk
        self._body = 0
        self._methods: list[bytes] = []
        self._closed = False
        self._broken: HttpViolation | None = None

    def expect(self, method: bytes) -> None:
        """The next response answers a request with ``method``."""
        self._methods.append(method)

    def feed(self, data: bytes) -> list[object]:
        """Add bytes; the events they complete.

        A violation raises :class:`HttpViolation`; after complete messages of the same
        read it is a :class:`Broken` event behind them instead, and the next feed raises."""
        if self._broken is not None:
            raise self._broken
        out: list[object] = []
        try:
            if self._state == "head" and not self._buf:
                found = self._whole(data, out)
                if found:
                    return out
            self._buf += data
            self._events(out)
        except HttpViolation as e:
            if not out:
                raise
            self._broken = e
            self._buf.clear()
            out.append(Broken(e.status, e.reason))
        return out

    def _whole(self, data: bytes, out: list[object]) -> bool:
        """The events of ``data`` (into ``out``) when it starts with a well-formed head
        and the parser is idle (the common case: one read, one message); False: the
        general path.

        The same checks as :meth:`_head` and :meth:`_events`, without copying the
        bytes through the buffer; anything after the message goes on as usual."""
        found = self._fast_head(data)
        if found is None:
            return False
        event, end = found
        out.append(event)
        state = self._state
        if state == "head":
            if not (type(event) is Response and event.status < 200):
                out.append(_END)
        elif state == "length" and len(data) - end <= self._left:
            if len(data) > end:
                piece = data[end:]
                out.append(Data(piece))
                self._left -= len(piece)
                if self._left == 0:
                    self._state = "head"
                    out.append(_END)
            return True
        if len(data) > end:
            self._buf += memoryview(data)[end:]
            self._events(out)
        return True

    def close(self) -> list[object]:
        """The peer closed: ends a close-delimited body, or is an error mid-message."""
        self._closed = True
        if self._state == "until-close":
            self._state = "done"
            return [_END]
        if self._state == "tunnel":
            return []
        if self._state == "head" and not self._buf:
            return []
        raise HttpViolation(400, "connection closed in the middle of a message")

    def take_buffer(self) -> bytes:
        """Bytes received but not parsed (after an upgrade they belong to the new protocol)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    @property
    def idle(self) -> bool:
        """Between messages, with nothing buffered."""
        return self._state == "head" and not self._buf

    def _events(self, out: list[object]) -> None:
        """Append the events the buffer completes to ``out``."""
        emit = out.append
        while True:
            if self._state == "head":
                if not self._buf:
                    return
                event = self._head()
                if event is None:
                    return
                emit(event)
                if self._state == "head" and not (type(event) is Response and event.status < 200):
                    emit(_END)  # no body (an interim response is no message)
            elif self._state == "length":
                if not self._buf:
                    return
                piece = bytes(self._buf[: self._left])
                del self._buf[: len(piece)]
                self._left -= len(piece)
                emit(Data(piece))
                if self._left == 0:
                    self._state = "head"
                    emit(_END)
            elif self._state == "until-close":
                if not self._buf:
                    return
                piece = bytes(self._buf)
                self._buf.clear()
                emit(Data(piece))
            elif self._state == "tunnel":  # after CONNECT: the bytes are no longer HTTP
                return
            elif self._state in ("chunk-size", "chunk-data", "chunk-crlf", "trailers"):
                step = self._chunk_step()
                if step is None:
                    return
                if step is not True:
                    emit(step)
            else:  # done: a close-delimited response ended the stream
                if self._buf:
                    raise HttpViolation(400, "data after the end of the stream")
                return

    # --- heads -----------------------------------------------------------------------------

    def _fast_head(self, data: bytes | bytearray) -> tuple[Request | Response, int] | None:
        """The head at the start of ``data`` if one regular expression takes all of it
        (a well-formed head within the limits), and where it ends; None: look closer."""
        request = self.role == "request"
        m = (_FAST_REQUEST if request else _FAST_RESPONSE).match(data)
        if m is None:
            return None
        end = m.end()
        if end > self.limits.max_line or end > self.limits.max_head:
            return None
        g = m.groups()  # copies: the buffer may change after the match
        if request:
            return self._request(g[0], g[1], (1, int(g[2])), g[3], True), end
        return self._response(int(g[1]), g[2], (1, int(g[0])), g[3], True), end

    def _head(self) -> Request | Response | None:
        request = self.role == "request"
        found = self._fast_head(self._buf)
        if found is not None:
            del self._buf[: found[1]]
            return found[0]
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if _BARE_CR_LF.search(self._buf):  # fail now, not when the head limit is hit
                raise HttpViolation(400, "bare CR or LF in the head")
            if len(self._buf) > self.limits.max_head:
                raise HttpViolation(431, f"head larger than {self.limits.max_head} bytes")
            line_end = self._buf.find(b"\r\n")
            if (
                line_end < 0 and len(self._buf) > self.limits.max_line
            ) or line_end > self.limits.max_line:
                raise HttpViolation(414 if self.role == "request" else 400, "line too long")
            return None
        if end + 4 > self.limits.max_head:
            raise HttpViolation(431, f"head larger than {self.limits.max_head} bytes")
        head = bytes(self._buf[: end + 2])  # each line with its CRLF
        del self._buf[: end + 4]
        if _BAD_IN_HEAD.search(head):
            self._bad_head(head)
        if len(head) > self.limits.max_line and max(map(len, head.split(b"\r\n"))) > (
            self.limits.max_line
        ):
            raise HttpViolation(414 if self.role == "request" else 400, "line too long")
        first_end = head.find(b"\r\n")
        first, block = head[:first_end], head[first_end + 2 :]
        if request:
            r = _REQUEST_LINE.fullmatch(first)
            if r is None:
                raise HttpViolation(400, f"malformed request line {first[:60]!r}")
            version = (int(r.group(3)), int(r.group(4)))
            if version not in ((1, 0), (1, 1)):
                raise HttpViolation(505, f"HTTP/{version[0]}.{version[1]} is not supported")
            return self._request(r.group(1), r.group(2), version, block)
        r = _STATUS_LINE.fullmatch(first)
        if r is None:
            raise HttpViolation(400, f"malformed status line {first[:60]!r}")
        version = (int(r.group(1)), int(r.group(2)))
        if version not in ((1, 0), (1, 1)):
            raise HttpViolation(400, f"response in HTTP/{version[0]}.{version[1]}")
        return self._response(int(r.group(3)), r.group(4), version, block)

    @staticmethod
    def _bad_head(head: bytes) -> None:
        """Raise the violation for a head with a bare CR/LF or a control character."""
        if _BARE_CR_LF.search(head):
            raise HttpViolation(400, "bare CR or LF in the head")
        bad = _CTL.search(head)
        assert bad is not None
        line_start = head.rfind(b"\n", 0, bad.start()) + 1
        if line_start == 0:
            raise HttpViolation(400, "control character in the first line")
        name = head[line_start : head.find(b":", line_start)][:40]
        raise HttpViolation(400, f"control character in header {name.decode('latin-1')}")

    def _request(
        self,
        method: bytes,
        target: bytes,
        version: tuple[int, int],
        block: bytes,
        checked: bool = False,
    ) -> Request:
        if len(target) > self.limits.max_target:
            raise HttpViolation(414, f"request target longer than {self.limits.max_target}")
        headers, index = _fields(block, self.limits, checked)
        if any(len(k) in _FOLDED_LENGTHS and k not in _FRAMING for k in index):
            headers, index = self._lookalikes(headers, index, 400)
        hosts = index.get(b"host", ())
        if len(hosts) > 1:
            raise HttpViolation(400, "more than one Host")
        if version == (1, 1) and not hosts:
            raise HttpViolation(400, "HTTP/1.1 request without Host")
        if hosts and hosts[0]:
            check_host(hosts[0])
        if method == b"CONNECT":
            if b"content-length" in index or b"transfer-encoding" in index:
                raise HttpViolation(400, "CONNECT with a body")
            self._state = "tunnel"  # what follows is for the tunnel, if there is one
            body = "tunnel"
        else:
            body = self._framing(index, version, body_allowed=True)
        keep = _persistent(version, body, index)
        return Request(method, target, version, headers, index, body, keep)

    def _response(
        self,
        status: int,
        reason: bytes,
        version: tuple[int, int],
        block: bytes,
        checked: bool = False,
    ) -> Response:
        if status < 100:
            raise HttpViolation(400, f"status {status}")
        headers, index = _fields(block, self.limits, checked)
        if any(len(k) in _FOLDED_LENGTHS and k not in _FRAMING for k in index):
            headers, index = self._lookalikes(headers, index, 502)
        interim = 100 <= status < 200
        method = self._methods[0] if self._methods else b"GET"
        if not interim and self._methods:
            self._methods.pop(0)
        no_body = interim or status in (204, 304) or method == b"HEAD"
        if method == b"CONNECT" and 200 <= status < 300:
            self._state = "tunnel"  # no body: the tunnel starts after the head
            body = "tunnel"
        else:
            body = self._framing(index, version, body_allowed=not no_body, response=True)
        keep = _persistent(version, body, index)
        return Response(status, reason, version, headers, index, body, keep)

    def _lookalikes(self, headers: Headers, index: Index, status: int) -> tuple[Headers, Index]:
        """Refuse (or drop, as the limits say) fields that a backend which folds names
        CGI-style (``Content_Length`` -> ``CONTENT_LENGTH``) reads as framing."""
        bad = [k for k in index if k not in _FRAMING and _fold(k) in _FOLDED_FRAMING]
        if not bad:
            return headers, index
        if self.limits.framing_lookalikes != "drop":
            name = bad[0].decode("latin-1")
            raise HttpViolation(status, f"header {name!r} looks like a framing header")
        drop = set(bad)
        kept = tuple(h for h in headers if h[0].lower() not in drop)
        return kept, {k: v for k, v in index.items() if k not in drop}

    def _framing(
        self, index: Index, version: tuple[int, int], body_allowed: bool, response: bool = False
    ) -> str:
        """Set up reading the body; how it is delimited (one of :data:`BODY_KINDS`)."""
        self._body = 0
        te = index.get(b"transfer-encoding")
        cl = index.get(b"content-length")
        if te is None and cl is None:
            # No framing header: no body, or (a response) one delimited by the close.
            if response and body_allowed:
                self._state = "until-close"
                return "close"
            self._state = "head"
            return "none"
        chunked = te is not None and _chunked(te, version)
        length = _content_length(cl, self.limits) if cl is not None else None
        if chunked and length is not None:
            raise HttpViolation(400, "both Content-Length and Transfer-Encoding")
        if not body_allowed:
            self._state = "head"
            return "none"
        if chunked:
            self._state = "chunk-size"
            return "chunked"
        if length:
            self._state, self._left = "length", length
            return "length"
        if length == 0:
            self._state = "head"
            return "length"
        if not response:
            self._state = "head"
            return "none"
        self._state = "until-close"
        return "close"

    # --- chunked bodies --------------------------------------------------------------------

    def _chunk_step(self) -> object | None:
        """One step of chunked decoding: an event, True (progress, no event) or None (wait)."""
        if self._state == "chunk-size":
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > self.limits.max_chunk_line:
                    raise HttpViolation(400, "chunk size line too long")
                return None
            line = bytes(self._buf[:end])
            del self._buf[: end + 2]
            if b"\r" in line or b"\n" in line:
                raise HttpViolation(400, "bare CR or LF in a chunk size line")
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                raise HttpViolation(400, f"malformed chunk size line {line[:40]!r}")
            size = int(m.group(1), 16)
            self._body += size
            if self.limits.max_body is not None and self._body > self.limits.max_body:
                raise HttpViolation(413, f"body exceeds {self.limits.max_body} bytes")
            if size == 0:
                self._state = "trailers"
            else:
                self._state, self._left = "chunk-data", size
            return True
        if self._state == "chunk-data":
            if not self._buf:
                return None
            piece = bytes(self._buf[: self._left])
            del self._buf[: len(piece)]
            self._left -= len(piece)
            if self._left == 0:
                self._state = "chunk-crlf"
            return Data(piece)
        if self._state == "chunk-crlf":
            if len(self._buf) < 2:
                return None
            if self._buf[:2] != b"\r\n":
                raise HttpViolation(400, "chunk data not followed by CRLF")
            del self._buf[:2]
            self._state = "chunk-size"
            return True
        # trailers: header lines up to an empty line
        if self._buf[:2] == b"\r\n":
            del self._buf[:2]
            self._state = "head"
            return _END
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > self.limits.max_head:
                raise HttpViolation(431, "trailers too large")
            return None
        block = bytes(self._buf[:end])
        del self._buf[: end + 4]
        trailers, index = _headers(_lines(block), self.limits)
        # Fields needed before the body (framing, routing) mean nothing after it, and a
        # backend that merges trailers into the head would read them: refused (RFC 9110 6.5.1).
        banned = [k for k in index if k in _NOT_IN_TRAILERS or _fold(k) in _FOLDED_FRAMING]
        if banned:
            raise HttpViolation(400, f"{banned[0].decode('latin-1')} in the trailers")
        self._state = "head"
        return EndOfMessage(trailers)


_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_FOLD = re.compile(rb"[^a-z0-9]")


def _fold(name: bytes) -> bytes:
    """A field name as CGI-style backends see it: every other character as ``_``."""
    return _FOLD.sub(b"_", name.lower())


_FOLDED_FRAMING = frozenset(_fold(n) for n in _FRAMING)
_NOT_IN_TRAILERS = HOP_BY_HOP | _FRAMING | {b"host", b"content-type", b"content-encoding"}
_FOLDED_LENGTHS = frozenset(len(n) for n in _FRAMING)
