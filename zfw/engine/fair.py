"""Fair admission: near a limit, the client address holding the most sessions yields.

A pool (the instance, or one service) has a limit. Below ``limit - headroom`` a new
session costs two counter updates. From there on the pool *nears* its limit, and a
new connection from the address holding the most sessions of the pool (or as many as
the most) is refused; one from any other address makes room first: the busiest
address's oldest session that may yield (one still opening, or idle) is closed. So
one address's flood cannot take a service, and a busy NAT address is served in full
while there is room. Pure bookkeeping, no Twisted: the engine acts on the answers.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Generic, TypeVar

T = TypeVar("T")

#: Sessions of the busiest address looked at per admission at most; those looked at
#: and kept go to the back, so that the next admission looks at others.
SCAN = 64


def client_key(host: str) -> str:
    """Whom a client address counts as: itself (IPv4), its /64 (IPv6: one host commonly
    has a whole /64 to take addresses from), the IPv4 address of an IPv4-mapped one."""
    if ":" not in host:
        return host
    try:
        ip = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"


def threshold(limit: int, headroom: float) -> int:
    """Sessions from which a pool of ``limit`` nears it: ``headroom`` (a share of the
    limit, rounded up) is kept for the addresses other than the busiest."""
    return limit - math.ceil(limit * headroom)


class Pool(Generic[T]):
    """The sessions of one pool by client address, and which address holds the most
    (counts move by one, so keeping the top is O(1))."""

    def __init__(self) -> None:
        self.total = 0
        self._by_address: dict[str, dict[T, None]] = {}
        #: count -> the addresses holding that many sessions.
        self._holding: dict[int, set[str]] = {}
        #: Sessions of the busiest address.
        self.top = 0

    def count(self, address: str) -> int:
        """Sessions ``address`` holds."""
        held = self._by_address.get(address)
        return len(held) if held else 0

    def _move(self, address: str, old: int, new: int) -> None:
        if old:
            bucket = self._holding[old]
            bucket.discard(address)
            if not bucket:
                del self._holding[old]
                if self.top == old and new < old:
                    self.top = new
        if new:
            self._holding.setdefault(new, set()).add(address)
            if new > self.top:
                self.top = new

    def add(self, address: str, item: T) -> None:
        """Count ``item``, a new session of ``address``."""
        held = self._by_address.setdefault(address, {})
        held[item] = None
        self.total += 1
        self._move(address, len(held) - 1, len(held))

    def remove(self, address: str, item: T) -> None:
        """Forget ``item`` (counted with ``add``)."""
        held = self._by_address[address]
        del held[item]
        self.total -= 1
        self._move(address, len(held) + 1, len(held))
        if not held:
            del self._by_address[address]

    def busiest(self) -> str | None:
        """An address holding the most sessions (None: the pool is empty)."""
        bucket = self._holding.get(self.top)
        return next(iter(bucket)) if bucket else None

    def candidates(self, address: str) -> Iterator[T]:
        """Up to :data:`SCAN` of ``address``'s sessions, oldest (or longest unlooked-at)
        first; each one the caller does not close goes to the back."""
        held = self._by_address.get(address, {})
        for item in list(islice(held, SCAN)):
            yield item
            if item in held:  # kept: the next scan starts past it
                del held[item]
                held[item] = None


class Refusal:
    """Why a new session is refused: ``kind`` is the counter (``limit``, ``fair``)."""

    def __init__(self, kind: str, reason: str):
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"Refusal({self.kind!r}, {self.reason!r})"


def make_room(
    pool: Pool[T],
    what: str,
    limit: int,
    headroom: float,
    address: str,
    may_yield: Callable[[T], bool],
) -> tuple[Refusal | None, T | None]:
    """Whether ``address`` may open a session of ``pool`` (of ``what``, at most
    ``limit``), and the session to close first to make room for it (None: none)."""
    if pool.total < threshold(limit, headroom):
        return None, None
    if pool.total > limit:  # (a reload lowered it): nobody until enough have ended
        return Refusal("limit", f"{what} limit of {limit} sessions reached"), None
    held = pool.count(address)
    if held and held >= pool.top:
        full = "at" if pool.total >= limit else "near"
        return (
            Refusal(
                "fair",
                f"{address} holds the most sessions ({held}) of {what}, {full} its limit "
                f"of {limit}",
            ),
            None,
        )
    busiest = pool.busiest()
    if busiest is not None:
        for item in pool.candidates(busiest):
            if may_yield(item):
                return None, item
    if pool.total >= limit:
        return Refusal("limit", f"{what} limit of {limit} sessions reached"), None
    return None, None
