"""HTTP/1.1 messages as the parser gives them: heads, body pieces, ends, the
limits a parser keeps, and the violation it raises. No Twisted here."""

from __future__ import annotations

import attrs

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class HttpViolation(Exception):
    """A message zfw will not pass on; ``status`` is what the client is answered."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


Headers = tuple[tuple[bytes, bytes], ...]


Index = dict[bytes, list[bytes]]


#: How a message's body is delimited, as the parser decided it (``Request.body``,
#: ``Response.body``): ``none`` (no body: HEAD, 1xx, 204, 304, a request without
#: framing fields), ``length`` (Content-Length), ``chunked``, ``close`` (a response
#: that ends with the connection), ``tunnel`` (CONNECT: what follows is not HTTP).
BODY_KINDS = ("none", "length", "chunked", "close", "tunnel")


@attrs.define
class Request:
    """A request head; ``fields`` maps lower-case names to their values, ``body`` is
    how its body is delimited (one of :data:`BODY_KINDS`), ``keep_alive`` whether the
    connection may carry another message after it (:func:`keeps_alive`)."""

    method: bytes
    target: bytes
    version: tuple[int, int]
    headers: Headers
    fields: Index = attrs.field(factory=dict, eq=False, repr=False)
    body: str = attrs.field(default="none", eq=False)
    keep_alive: bool = attrs.field(default=True, eq=False)


@attrs.define
class Response:
    """A response head; ``fields`` maps lower-case names to their values, ``body`` is
    how its body is delimited (one of :data:`BODY_KINDS`), ``keep_alive`` whether the
    connection may carry another message after it (:func:`keeps_alive`)."""

    status: int
    reason: bytes
    version: tuple[int, int]
    headers: Headers
    fields: Index = attrs.field(factory=dict, eq=False, repr=False)
    body: str = attrs.field(default="none", eq=False)
    keep_alive: bool = attrs.field(default=True, eq=False)


@attrs.define
class Data:
    """A piece of a message body."""

    data: bytes


@attrs.define
class EndOfMessage:
    """The message is complete; trailers (chunked bodies only) are kept apart."""

    trailers: Headers = ()


@attrs.frozen
class Broken:
    """The stream broke here (``status``, ``reason`` as :class:`HttpViolation`): the
    messages before it in the same read came first and are answered first."""

    status: int
    reason: str


@attrs.frozen
class Limits:
    """What a parser accepts; every limit has a safe default."""

    max_line: int = 8192
    max_target: int = 8192
    max_headers: int = 100
    max_head: int = 65536
    max_body: int | None = None
    max_chunk_line: int = 1024
    #: A field whose name a CGI/WSGI backend folds to Content-Length or
    #: Transfer-Encoding (``Content_Length``): ``"reject"`` the message, or ``"drop"`` it.
    framing_lookalikes: str = "reject"


def keeps_alive(message: Request | Response) -> bool:
    """Whether the connection may carry another message after ``message``: HTTP/1.1,
    no ``Connection: close``, and a body that does not end with the connection (the
    parser decides it for each message: ``message.keep_alive``)."""
    return message.keep_alive


#: The usual Connection values, so that most messages split nothing.
_COMMON_TOKENS = {
    v: frozenset({v.lower()}) for v in (b"keep-alive", b"Keep-Alive", b"close", b"Close")
}


def tokens(values: list[bytes] | None) -> frozenset[bytes]:
    """The comma-separated tokens of a header's values (from a parser's index), lower-case."""
    if not values:
        return frozenset()
    if len(values) == 1:
        common = _COMMON_TOKENS.get(values[0])
        if common is not None:
            return common
    return frozenset(t.strip().lower() for v in values for t in v.split(b",") if t.strip())
