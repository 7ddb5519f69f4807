"""Counters of a running instance, per service, in the spirit of Zorp's SZIG.

The engine counts sessions (admitted, refused by the zones, by a limit or by the
proxy, connect failures) and folds each finished session's bytes in; proxies
count what matters to them with :meth:`ServiceStats.count` (``http_requests_2xx``,
``http_violations``, ``ftp_transfers``, ``tls_rejected_policy`` ...). Counting
is a dictionary increment: nothing is computed until somebody asks
(``zfw status``, the Prometheus endpoint). Counters live as long as the
process, across reloads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

#: Seconds between two updates of the session rates.
RATE_INTERVAL = 5.0
_WINDOWS = (60.0, 300.0, 900.0)


class _Session(Protocol):
    closed: bool

    def traffic(self) -> tuple[int, int]: ...


class ServiceStats:
    """The counters of one service."""

    def __init__(self, name: str):
        self.name = name
        self.total = 0
        self.refused_zone = 0
        self.refused_limit = 0
        self.refused_client = 0
        self.refused_fair = 0
        #: Sessions closed to make room for other addresses near a limit.
        self.evicted = 0
        self.refused_proxy = 0
        self.connect_failures = 0
        #: Bytes of finished sessions: from the client, from the server(s).
        self.bytes_from_client = 0
        self.bytes_from_server = 0
        #: Per-proxy counters by name.
        self.proxy: dict[str, int] = {}
        #: New sessions a second, averaged over 1, 5 and 15 minutes.
        self.rates = [0.0, 0.0, 0.0]
        self._counted = 0

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the proxy counter ``key``."""
        self.proxy[key] = self.proxy.get(key, 0) + n

    def finished(self, session: _Session) -> None:
        """Fold a finished session's bytes in."""
        from_client, from_server = session.traffic()
        self.bytes_from_client += from_client
        self.bytes_from_server += from_server

    def tick(self, interval: float = RATE_INTERVAL) -> None:
        """Update the rates from the sessions admitted since the last tick."""
        rate = (self.total - self._counted) / interval
        self._counted = self.total
        for i, window in enumerate(_WINDOWS):
            decay = math.exp(-interval / window)
            self.rates[i] = self.rates[i] * decay + rate * (1 - decay)

    def snapshot(self, running: Iterable[_Session] = ()) -> dict[str, object]:
        """The counters as plain data; the bytes include those of ``running`` sessions."""
        from_client, from_server = self.bytes_from_client, self.bytes_from_server
        n = 0
        for s in running:
            c, sv = s.traffic()
            from_client += c
            from_server += sv
            n += 1
        return {
            "sessions_running": n,
            "sessions_total": self.total,
            "refused": {
                "zone": self.refused_zone,
                "limit": self.refused_limit,
                "client": self.refused_client,
                "fair": self.refused_fair,
                "proxy": self.refused_proxy,
            },
            "evicted": self.evicted,
            "connect_failures": self.connect_failures,
            "bytes_from_client": from_client,
            "bytes_from_server": from_server,
            "rates": {
                "1m": round(self.rates[0], 3),
                "5m": round(self.rates[1], 3),
                "15m": round(self.rates[2], 3),
            },
            "proxy": dict(sorted(self.proxy.items())),
        }


class InstanceStats:
    """The counters of every service of an instance, made on first use."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceStats] = {}

    def service(self, name: str) -> ServiceStats:
        """The counters of service ``name``."""
        stats = self.services.get(name)
        if stats is None:
            stats = self.services[name] = ServiceStats(name)
        return stats

    def tick(self) -> None:
        """Update every service's rates."""
        for stats in self.services.values():
            stats.tick()
