"""PlugProxy: a plain bidirectional byte relay."""

from __future__ import annotations

from typing import ClassVar

from zfw.proxy.base import Proxy


class PlugProxy(Proxy):
    """Relays bytes both ways unchanged."""

    log_tag: ClassVar[str] = "plug"
