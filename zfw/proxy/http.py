"""The HTTP/1.1 application proxy (not carried by this version yet)."""

from __future__ import annotations

from typing import ClassVar

from zfw.proxy.base import UnavailableProxy


class HttpProxy(UnavailableProxy):
    """The HTTP/1.1 application proxy; a policy may name it, sessions are refused."""

    log_tag: ClassVar[str] = "http"
    default_ports: ClassVar[tuple[int, ...]] = (80,)
