"""What HttpProxy keeps of a transaction and what a policy function sees of it."""

from __future__ import annotations

import socket

import attrs

from zfw.http.messages import Request, tokens
from zfw.http.policy import (
    Verdict,
)

TARGET_CHARS = frozenset(range(0x21, 0x7F))
#: Not passed on by a non-transparent proxy: it sets Host from the URL, and the proxy
#: credentials are for itself (or, with a parent proxy, for that one).
INBAND_DROP = frozenset({b"host", b"proxy-authorization"})


class Refused(Exception):
    """A request the proxy's own settings refuse (not a protocol violation)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


#: A method the request table does not list (not even with "*"): closed by default.
UNLISTED = Verdict("reject", 405, "This method is not permitted.")
POLICY_FAILED = "The firewall policy failed on this request."
#: What ``zfw sessions`` says of a transaction in each state (before a response).
PHASES = {
    "head": "request head",
    "connecting": "connecting",
    "body": "request body",
    "sent": "waiting for the response",
}
#: Counter names of the answers by status class (0: no status, as after an abort).
STATUS_COUNTERS = (
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


def text_headers(headers: tuple[tuple[bytes, bytes], ...]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


def raw_headers(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in headers)


NO_VALUES: list[bytes] = []


def field_tokens(fields: dict[bytes, list[bytes]], name: bytes) -> frozenset[bytes]:
    """The comma-separated tokens of header ``name`` in a parser's field index, lower-case."""
    return tokens(fields.get(name))


def version_text(v: tuple[int, int]) -> str:
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


def addresses_of(name: str) -> list[str]:
    return [i[4][0] for i in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)]
