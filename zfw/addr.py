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
