"""Readiness and state for systemd (``Type=notify``), without libsystemd.

systemd passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or ``@name`` in
the abstract namespace); zfw sends ``READY=1`` once every listener is open,
``RELOADING=1`` and ``READY=1`` around a reload, and ``STOPPING=1``. Outside
systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``"READY=1"``, lines joined by newlines) to systemd; whether sent.

    Never raises: a service must not fail because its supervisor went away."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False
    address = "\0" + path[1:] if path[0] == "@" else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.setblocking(False)
            s.sendto(state.encode("utf-8"), address)
    except OSError:
        return False
    return True


def reloading_state() -> str:
    """``RELOADING=1`` with the monotonic time systemd 253 and later ask for."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}"


def under_journal(stream_fd: int, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream_fd`` is systemd's journal stream (``JOURNAL_STREAM`` names its
    device and inode): then a ``<N>`` prefix sets each line's priority."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(stream_fd)
        return bool(ino) and st.st_dev == int(dev) and st.st_ino == int(ino)
    except (OSError, ValueError):
        return False
