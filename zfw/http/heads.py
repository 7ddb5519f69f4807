"""HTTP heads as log lines, with credentials masked: the values of Authorization and
Proxy-Authorization (their scheme stays), and of each cookie in Cookie and
Set-Cookie (names and attributes stay)."""

from __future__ import annotations

from collections.abc import Iterable

#: The log level of heads (tag ``http.head``): ``zfw loglevel 'http.head:6'`` shows them.
HEAD_LEVEL = 6
MASK = b"***"
_CREDENTIALS = (b"authorization", b"proxy-authorization")


def masked(name: bytes, value: bytes) -> bytes:
    """``value`` of the header ``name`` as it may be logged."""
    lname = name.lower()
    if lname in _CREDENTIALS:
        scheme, sep, _credentials = value.strip().partition(b" ")
        return scheme + b" " + MASK if sep else MASK
    if lname == b"cookie":
        return b"; ".join(_cookie(pair) for pair in value.split(b";"))
    if lname == b"set-cookie":
        first, sep, attributes = value.partition(b";")
        return _cookie(first) + (b";" + attributes if sep else b"")
    return value


def _cookie(pair: bytes) -> bytes:
    name, sep, _value = pair.strip().partition(b"=")
    return name + b"=" + MASK if sep else MASK


def head_lines(first: bytes, headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The start line and the header lines of a head, masked, as text."""
    lines = [first]
    lines += [name + b": " + masked(name, value) for name, value in headers]
    return [line.decode("latin-1") for line in lines]


def raw_head_lines(head: bytes) -> list[str]:
    """:func:`head_lines` of a serialized head (``start\\r\\nName: value\\r\\n...\\r\\n\\r\\n``)."""
    first, *rest = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    headers = []
    for line in rest:
        name, _sep, value = line.partition(b":")
        headers.append((name, value.strip()))
    return head_lines(first, headers)
