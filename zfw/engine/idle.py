"""One timer for the idle timeouts and deadlines of every session of an engine.

A timer per session (or per HTTP request) costs a heap insertion and a
cancellation each time; one sweep a second costs one pass over the open
sessions. Timeouts therefore fire up to one tick late.
"""

from __future__ import annotations

from typing import Any, Protocol


class Watched(Protocol):
    """What the sweep needs of a relay."""

    idle_timeout: float | None
    #: A deadline in reactor seconds (None: none); past it, ``overdue()`` is called.
    due: float | None

    def traffic(self) -> int:
        """Bytes moved so far, both ways."""

    def expire(self, reason: str) -> None:
        """Close: idle for too long."""

    def overdue(self) -> None:
        """The deadline ``due`` has passed."""


class IdleWatch:
    """Closes relays that moved no byte for their ``idle_timeout``."""

    def __init__(self, reactor: Any, tick: float = 1.0):
        self.reactor = reactor
        self.tick = tick
        self._watched: dict[Watched, tuple[int, float]] = {}
        self._call: Any = None

    def add(self, item: Watched) -> None:
        """Start watching ``item`` (one with an ``idle_timeout``)."""
        self._watched[item] = (item.traffic(), self.reactor.seconds())
        if self._call is None:
            self._call = self.reactor.callLater(self.tick, self._sweep)

    def discard(self, item: Watched) -> None:
        """Stop watching ``item``."""
        self._watched.pop(item, None)

    def __len__(self) -> int:
        return len(self._watched)

    def _sweep(self) -> None:
        self._call = None
        now = self.reactor.seconds()
        expired = []
        overdue = []
        for item, (seen, since) in self._watched.items():
            if item.due is not None and now >= item.due:
                overdue.append(item)
                continue
            total = item.traffic()
            if total != seen:
                self._watched[item] = (total, now)
            elif item.idle_timeout is not None and now - since >= item.idle_timeout:
                expired.append(item)
        for item in overdue:
            if item in self._watched:
                item.due = None
                item.overdue()
        for item in expired:
            self.discard(item)
            item.expire(f"idle for {item.idle_timeout:g} s")
        if self._watched:
            self._call = self.reactor.callLater(self.tick, self._sweep)
