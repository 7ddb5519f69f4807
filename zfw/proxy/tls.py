"""The blind TLS tunnel that decides by SNI (not carried by this version yet)."""

from __future__ import annotations

from typing import ClassVar

from zfw.proxy.base import UnavailableProxy


class TlsTunnelProxy(UnavailableProxy):
    """The blind TLS tunnel; a policy may name it, sessions are refused."""

    log_tag: ClassVar[str] = "tls"
    default_ports: ClassVar[tuple[int, ...]] = (443,)
