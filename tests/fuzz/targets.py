"""The fuzz targets: each takes bytes and raises AssertionError on a finding.

Invariants:
- a parser raises nothing but its module's violation type;
- feeding in pieces gives what feeding at once gives (the first byte picks the cuts);
- HTTP, differentially: a request stream the zfw core accepts is read the same
  (method, target, header fields, body bytes) by h11, a second strict parser; and
  what zfw would send on for each message parses back to the same message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import h11

from zfw.ftp.addresses import parse_eprt, parse_epsv_reply, parse_pasv_reply, parse_port
from zfw.ftp.core import CommandReader, FtpViolation, ReplyReader
from zfw.http.messages import Broken, Data, EndOfMessage, HttpViolation, Request, Response
from zfw.http.parser import Parser
from zfw.http.serialize import end_to_end, request_head
from zfw.tls.clienthello import ClientHelloReader, TlsViolation

Message = tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], bytes]


def pieces(data: bytes) -> Iterator[bytes]:
    """``data[1:]`` cut where the first byte says (its bits as cut lengths)."""
    if not data:
        return
    step, rest = data[0] % 7 + 1, data[1:]
    for i in range(0, len(rest), step):
        yield rest[i : i + step]


def _run(feed, chunks) -> list[object]:
    """Events of feeding ``chunks``; a violation as a Broken at the end."""
    out: list[object] = []
    try:
        for c in chunks:
            out += feed(c)
    except HttpViolation as e:
        out.append(Broken(e.status, e.reason))
    return [e for e in out if not isinstance(e, Broken)] + [
        e for e in out if isinstance(e, Broken)
    ][:1]


def _joined(events: list[object]) -> list[object]:
    out: list[object] = []
    for e in events:
        if isinstance(e, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + e.data)
        else:
            out.append(e)
    return out


def _same(a: list[object], b: list[object]) -> bool:
    """Equal, but for where a violation was noticed (a piece may end before it)."""
    a, b = _joined(a), _joined(b)
    if a and isinstance(a[-1], Broken) and b and isinstance(b[-1], Broken):
        return _prefix(a[:-1], b[:-1])
    return a == b


def _prefix(a: list[object], b: list[object]) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return True
    *init, last = short
    if long[: len(init)] != init:
        return False
    nxt = long[len(init)]
    if isinstance(last, Data) and isinstance(nxt, Data):
        return nxt.data.startswith(last.data)
    return last == nxt


def http_requests(data: bytes) -> None:
    """Requests: only HttpViolation, pieces as whole, and the differential checks."""
    stream = data[1:]
    parser = Parser("request")
    whole = _run(parser.feed, [stream])
    cut = _run(Parser("request").feed, pieces(data))
    assert _same(whole, cut), (whole, cut)
    # The differential needs a stream zfw accepts whole: it ends between messages.
    if whole and not isinstance(whole[-1], Broken) and parser.idle:
        messages = _messages(whole)
        if messages is not None:
            differential(stream, messages)


def http_responses(data: bytes) -> None:
    """Responses (to GET, HEAD and GET): only HttpViolation, pieces as whole."""
    results = []
    for chunks in ([data[1:]], pieces(data)):
        p = Parser("response")
        for m in (b"GET", b"HEAD", b"GET"):
            p.expect(m)
        results.append(_run(p.feed, chunks))
    assert _same(*results), results


def _messages(events: list[object]) -> list[Message] | None:
    """Complete requests as (method, target, fields, body); None when the stream does
    not end between messages or holds what h11 reads differently by design."""
    out: list[Message] = []
    cur: list | None = None
    for e in events:
        if isinstance(e, Request):
            if e.method == b"CONNECT" or b"upgrade" in e.fields:
                return None  # the stream leaves HTTP there
            cur = [e.method, e.target, tuple((n.lower(), v) for n, v in e.headers), b""]
        elif isinstance(e, Data):
            assert cur is not None
            cur[3] += e.data
        elif isinstance(e, EndOfMessage):
            assert cur is not None
            out.append(tuple(cur))  # type: ignore[arg-type]
            cur = None
    return out if cur is None else None


def h11_requests(stream: bytes) -> list[Message] | None:
    """What h11 reads from ``stream`` (None: it refuses it)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(stream)
    conn.receive_data(b"")  # the stream ends here
    out: list[Message] = []
    cur: list | None = None
    try:
        while True:
            ev = conn.next_event()
            if isinstance(ev, h11.Request):
                cur = [ev.method, ev.target, tuple((n, v) for n, v in ev.headers), b""]
            elif isinstance(ev, h11.Data):
                assert cur is not None
                cur[3] += bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                assert cur is not None
                out.append(tuple(cur))  # type: ignore[arg-type]
                cur = None
                conn.send(h11.Response(status_code=204, headers=[]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:  # HTTP/1.0, Connection: close
                    return out
                conn.start_next_cycle()
            else:  # NEED_DATA, ConnectionClosed, PAUSED
                return out
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        return None


def differential(stream: bytes, messages: list[Message]) -> None:
    """h11 reads the stream zfw accepted the same way, and zfw's re-framed form of
    each message parses back to it."""
    theirs = h11_requests(stream)
    if theirs is None:
        raise AssertionError(f"zfw accepts what h11 refuses: {stream[:200]!r}")
    # h11 reads no further than a message after which the connection must close.
    ours = messages[: len(theirs)]
    assert [_norm(m) for m in theirs] == [_norm(m) for m in ours], (theirs, messages)
    for method, target, fields, body in messages:
        e2e = end_to_end(tuple(fields))
        if not any(n == b"host" for n, _v in e2e):  # HTTP/1.0: HttpProxy adds one
            e2e += ((b"host", b"198.51.100.2"),)
        framing = ((b"content-length", str(len(body)).encode()),) if body else ()
        again = Parser("request").feed(request_head(method, target, e2e, framing) + body)
        [msg] = _messages(again) or [None]
        assert msg is not None and _norm(msg) == _norm((method, target, e2e + framing, body))


def _norm(m: Message) -> Message:
    """As h11 gives it: names in lower case, and a Transfer-Encoding's value too."""
    method, target, fields, body = m
    norm = tuple(
        (n.lower(), v.lower() if n.lower() == b"transfer-encoding" else v) for n, v in fields
    )
    return method, target, norm, body


def ftp(data: bytes) -> None:
    """The FTP control readers and address parsers: only FtpViolation."""
    for reader in (CommandReader(), ReplyReader()):
        with contextlib.suppress(FtpViolation):
            for c in pieces(data):
                reader.feed(c)
    text = data.decode("latin-1")
    for parse in (parse_port, parse_pasv_reply, parse_eprt, parse_epsv_reply):
        with contextlib.suppress(FtpViolation):
            parse(text)


def clienthello(data: bytes) -> None:
    """The ClientHello reader: only TlsViolation; pieces as whole."""
    results = []
    for chunks in ([data[1:]], pieces(data)):
        r = ClientHelloReader()
        try:
            got = None
            for c in chunks:
                got = r.feed(c) or got
            results.append(("hello", got))
        except TlsViolation:
            results.append(("violation", None))
    (a, ha), (b, hb) = results
    if a == b == "hello" and ha is not None and hb is not None:
        assert ha == hb
    assert not (a == "hello" and ha is not None and b == "violation"), results


TARGETS = {
    "http_requests": http_requests,
    "http_responses": http_responses,
    "ftp": ftp,
    "clienthello": clienthello,
}

__all__ = ["TARGETS", "Response", "differential", "h11_requests", "pieces"]
