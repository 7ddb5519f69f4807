"""Whether a connection's first bytes can be HTTP at all (sans-IO).

Used once, on the bytes a client sends before any request was read, to tell
another protocol on an HTTP port (an SSH banner, a TLS hello ...) from HTTP,
even broken HTTP. It errs toward HTTP: bytes that a server could still take
for a request (a token and a space, a leading empty line) are HTTP, and the
parser judges them as ever (a 400); "not HTTP" needs the very first bytes to
rule a request line out.
"""

from __future__ import annotations

import re

#: RFC 9110 tchar.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SSH = re.compile(rb"SSH-[0-9]+\.[0-9]+-")
#: Past this many bytes of one token, it is the parser's to judge (a 414 or 400).
_MAX_TOKEN = 1024


def first_line(data: bytes, limit: int = 60) -> str:
    """The first line of ``data`` (at most ``limit`` bytes), quoted and escaped for a log."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")[:limit]
    return repr(line)[1:]


def not_http(data: bytes) -> tuple[bool, str | None]:
    """Whether a connection's first ``data`` decide, and if so why they cannot start an
    HTTP request (None: they may, and the parser judges them). Undecided while they are
    one token of fewer than 1024 bytes (or the single byte 0x16)."""
    if data[:2] == b"\x16\x03":
        return True, "a TLS handshake record (0x16 0x03)"
    if data == b"\x16":
        return False, None
    if _SSH.match(data):
        return True, f"an SSH banner {first_line(data)}"
    for i, byte in enumerate(data[:_MAX_TOKEN]):
        if byte in _TCHAR:
            continue
        if byte in b" \t" or (i == 0 and byte in b"\r\n"):
            return True, None  # a token and a space, or an empty line first: the parser's
        return True, f"the first line is {first_line(data)}"
    return len(data) >= _MAX_TOKEN, None
