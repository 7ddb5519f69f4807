"""Host values and the request targets of a non-transparent proxy (absolute-form
URLs, CONNECT authorities), checked strictly."""

from __future__ import annotations

import ipaddress
import re

from zfw.http.messages import HttpViolation

_AUTHORITY = re.compile(
    rb"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9\-._~!$&'()*+,;=]{1,255})(?::([0-9]{1,5}))?"
)
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)([^#]*)")
#: RFC 9112 3.2: ``uri-host [ ":" port ]``; a list, userinfo or a path is not that.
_HOST = re.compile(
    rb"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9\-._~!$&'()*+;=%]{1,255})(?::([0-9]{0,5}))?"
)


def check_host(value: bytes) -> None:
    """A Host value must be ``uri-host [":" port]``: HttpViolation(400) otherwise."""
    m = _HOST.fullmatch(value)
    if m is None:
        raise HttpViolation(400, f"malformed Host {value[:60]!r}")
    if m.group(2) and not 0 < int(m.group(2)) < 65536:
        raise HttpViolation(400, f"Host port {m.group(2).decode()} out of range")
    if m.group(1).startswith(b"["):
        try:
            ipaddress.IPv6Address(m.group(1)[1:-1].decode("ascii"))
        except ValueError:
            raise HttpViolation(400, f"malformed IPv6 address in Host {value[:60]!r}") from None


def split_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    """``host`` (lower case, IPv6 without brackets) and ``port`` of ``host[:port]``.

    Without a port, ``default_port`` (None: a port is required, as in CONNECT)."""
    m = _AUTHORITY.fullmatch(authority)
    if m is None:
        raise HttpViolation(400, f"malformed authority {authority[:60]!r}")
    host = m.group(1).decode("ascii").lower()
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise HttpViolation(400, f"malformed IPv6 address {host[:45]!r}") from None
    if m.group(2) is None:
        if default_port is None:
            raise HttpViolation(400, "CONNECT target without a port")
        return host, default_port
    port = int(m.group(2))
    if not 0 < port < 65536:
        raise HttpViolation(400, f"port {port} out of range")
    return host, port


def absolute_target(target: bytes) -> tuple[str, int, bytes]:
    """Host, port and origin-form target (path and query) of an absolute-form ``http://`` URL."""
    m = _ABSOLUTE.fullmatch(target)
    if m is None:
        raise HttpViolation(400, f"a proxy request needs an absolute URL, not {target[:60]!r}")
    scheme, authority, rest = m.groups()
    if scheme.lower() != b"http":
        raise HttpViolation(501, f"scheme {scheme[:20].decode('ascii')!r} is not supported")
    if b"@" in authority:
        raise HttpViolation(400, "user information in the URL")
    check_host(authority)  # the same rule as for Host
    host, port = split_authority(authority, 80)
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return host, port, rest
