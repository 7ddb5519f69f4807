"""Pass-through: what a proxy does when a client's first bytes are not its protocol
(an SSH banner or a TLS hello on an HTTP port, anything but TLS on a TLS port).

The proxies tell (:mod:`zfw.http.sniff`, :mod:`zfw.tls.sniff`); ``pass_through``
says what follows: ``refuse`` them as ever, or ``tunnel`` them to the server the
zones already permitted, as :class:`~zfw.proxy.plug.PlugProxy` does, the bytes
read so far first. Either way one line says why, and a counter counts it
(``passed_through``, ``refused_not_protocol``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zfw.options import choice, option
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.plug import PlugProxy
from zfw.stream import Stream

#: What ``pass_through`` may say.
CHOICES = ("refuse", "tunnel")


def pass_through_option(protocol: str) -> Any:
    """The ``pass_through`` option of a proxy of ``protocol``."""
    return option(
        choice(CHOICES),
        "refuse",
        f"when the client's first bytes are not {protocol} (an SSH banner ...): "
        '`"refuse"` them, or `"tunnel"` them to the server unchanged as PlugProxy does '
        "(logged and counted either way)",
    )


class FirstBytes:
    """A client's first bytes, held until ``sniff`` (:func:`zfw.http.sniff.not_http`,
    :func:`zfw.tls.sniff.not_tls`) tells its protocol from another; ``active``
    False: nothing is judged (a proxy that never passes another protocol through)."""

    def __init__(self, sniff: Callable[[bytes], tuple[bool, str | None]], active: bool):
        self.sniff = sniff
        self.held: bytes | None = b"" if active else None

    @property
    def deciding(self) -> bool:
        """Whether the first bytes are still to be judged."""
        return self.held is not None

    def feed(self, data: bytes) -> tuple[bytes, str | None]:
        """``data`` judged with what is held: ``(b"", None)`` while undecided (held);
        ``(bytes, None)`` the protocol, to go on with; ``(bytes, why)`` another
        protocol. Once decided, ``(data, None)``."""
        if self.held is None:
            return data, None
        first = self.held + data
        decided, why = self.sniff(first)
        if not decided:
            self.held = first
            return b"", None
        self.held = None
        return first, why

    def take(self) -> bytes:
        """What is held, undecided (at the client's end); nothing is judged after."""
        held, self.held = self.held or b"", None
        return held


def not_protocol(proxy: Proxy, protocol: str, why: str, action: str) -> bool:
    """Log and count that the client does not speak ``protocol`` (``why``); whether
    ``action`` (a ``pass_through`` value) says to tunnel it."""
    tunnel = action == "tunnel"
    if tunnel:
        proxy.session.stats.count("passed_through")
        proxy.log("info", 3, f"not {protocol}: {why}; tunnelled as pass_through says")
    else:
        proxy.session.stats.count("refused_not_protocol")
        proxy.log("violation", 1, f"not {protocol}: {why}; refused as pass_through says")
    return tunnel


def tunnel(
    proxy: Proxy, client: Stream, pending: bytes, connect: Callable[..., Any] | None = None
) -> None:
    """Hand ``client`` over to PlugProxy, ``pending`` first to the server (opened with
    ``connect``, else the session's way); PlugProxy takes the client's events."""
    proxy.hand_over(PlugProxy, client, Handover(pending=pending, connect=connect))
