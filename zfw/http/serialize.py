"""HTTP/1.1 heads and bodies on the way out, canonical: single spaces, CRLF, the
framing fields last, and the framing decided in one place (:func:`framing_out`)."""

from __future__ import annotations

from typing import NamedTuple

from zfw.http.messages import HOP_BY_HOP, Headers, Index, Request, Response, tokens


class Framing(NamedTuple):
    """How to send a message on: the framing fields, whether its body is re-chunked on
    the way, and whether the connection must close after it (a body that only the
    close can end, toward an HTTP/1.0 peer). (A tuple: made for every message.)"""

    fields: Headers = ()
    chunked: bool = False
    close: bool = False


_CHUNKED = ((b"Transfer-Encoding", b"chunked"),)
_NO_FRAMING = Framing()


def framing_out(message: Request | Response, peer: tuple[int, int]) -> Framing:
    """How to send ``message`` (as the parser read it) to a peer speaking HTTP ``peer``.

    The one place that decides framing on the way out: a length stays a length; a
    chunked or close-delimited body is chunked toward HTTP/1.1 and delimited by the
    close toward HTTP/1.0; a message without a body keeps the length it describes
    (HEAD, 304), except 204, which has none.
    """
    body = message.body
    if body == "length":
        return Framing(((b"Content-Length", message.fields[b"content-length"][0]),))
    if body in ("chunked", "close"):
        if peer == (1, 1) or type(message) is Request:
            return Framing(_CHUNKED, chunked=True)
        return Framing(close=True)
    length = message.fields.get(b"content-length")
    if body == "none" and length and type(message) is Response and message.status != 204:
        return Framing(((b"Content-Length", length[0]),))
    return _NO_FRAMING


def _head(first: bytes, headers: Headers, framing: Headers) -> bytes:
    fields = tuple(headers) + tuple(framing) if framing else headers
    if not fields:
        return first + b"\r\n\r\n"
    return b"%s\r\n%s\r\n\r\n" % (first, b"\r\n".join(map(b": ".join, fields)))


def request_head(method: bytes, target: bytes, headers: Headers, framing: Headers = ()) -> bytes:
    """A request head, canonical: single spaces, CRLF, HTTP/1.1, the framing headers last."""
    return _head(b"%s %s HTTP/1.1" % (method, target), headers, framing)


def response_head(status: int, reason: bytes, headers: Headers, framing: Headers = ()) -> bytes:
    """A response head, canonical."""
    return _head(b"HTTP/1.1 %d %s" % (status, reason), headers, framing)


def serialize_request(req: Request, framing: Headers = ()) -> bytes:
    """The canonical head of ``req``."""
    return request_head(req.method, req.target, req.headers, framing)


def serialize_response(resp: Response, framing: Headers = ()) -> bytes:
    """The canonical head of ``resp``."""
    return response_head(resp.status, resp.reason, resp.headers, framing)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n" % len(data) + data + b"\r\n" if data else b""


LAST_CHUNK = b"0\r\n\r\n"


_DROP = HOP_BY_HOP | {b"content-length"}


def end_to_end(headers: Headers, fields: Index | None = None) -> Headers:
    """``headers`` without hop-by-hop fields, the framing ones and those named in Connection.

    ``fields`` (the parser's index of the same headers) makes the common case cheap.
    """
    drop = _DROP
    if fields is not None:
        if _DROP.isdisjoint(fields):
            return headers
        named = tokens(fields.get(b"connection"))
        if not named <= _DROP:
            drop = drop | named
    else:
        for n, v in headers:
            if n.lower() == b"connection":
                drop = drop | {t.strip().lower() for t in v.split(b",")}
    return tuple([h for h in headers if h[0].lower() not in drop])
