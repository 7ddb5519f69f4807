"""Socket addresses as a policy names them."""

from __future__ import annotations

import ipaddress
import socket

import attrs

from zfw.errors import PolicyError


def is_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address literal (not a name)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def binds_clash(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether listening sockets bound to ``a`` and ``b`` (``(host, port)``, host an
    address literal or ``''`` for both wildcards) cannot both be open: the same port and
    family, and the same address or a wildcard on either side (IPv6 sockets are v6only)."""
    (ha, pa), (hb, pb) = a, b
    if pa != pb or pa == 0:
        return False
    for x in ("0.0.0.0", "::") if ha == "" else (ha,):
        for y in ("0.0.0.0", "::") if hb == "" else (hb,):
            ax, ay = ipaddress.ip_address(x), ipaddress.ip_address(y)
            if ax.version == ay.version and (ax == ay or ax.is_unspecified or ay.is_unspecified):
                return True
    return False


def _check_host(_inst: object, _attr: object, host: str) -> None:
    if host != "" and not is_address(host):
        raise PolicyError(f"SockAddrInet: {host!r} is not an IP address")


def _check_port(_inst: object, _attr: object, port: int) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise PolicyError(f"SockAddrInet: port {port!r} is not a number from 0 to 65535")


@attrs.frozen
class SockAddrInet:
    """An IPv4 or IPv6 address and TCP port; host ``''`` means any address."""

    host: str = attrs.field(validator=_check_host)
    port: int = attrs.field(validator=_check_port)

    @property
    def family(self) -> int:
        """``AF_INET6`` for an IPv6 host, else ``AF_INET`` (also for any)."""
        if self.host and ipaddress.ip_address(self.host).version == 6:
            return socket.AF_INET6
        return socket.AF_INET

    @property
    def bind_host(self) -> str:
        """The host to bind to: ``''`` becomes the IPv4 or IPv6 wildcard."""
        return self.host or "0.0.0.0"

    def __str__(self) -> str:
        host = self.host or "*"
        if ":" in host:
            return f"[{host}]:{self.port}"
        return f"{host}:{self.port}"
