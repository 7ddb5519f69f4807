"""The FTP proxy with transparent data channels (not carried by this version yet)."""

from __future__ import annotations

from typing import ClassVar

from zfw.proxy.base import UnavailableProxy


class FtpProxy(UnavailableProxy):
    """The FTP proxy; a policy may name it, sessions are refused."""

    log_tag: ClassVar[str] = "ftp"
    default_ports: ClassVar[tuple[int, ...]] = (21,)
