"""Per-service counters."""

from __future__ import annotations

from zfw.stats import InstanceStats, ServiceStats


class _Fake:
    closed = False

    def __init__(self, c: int, s: int):
        self.c, self.s = c, s

    def traffic(self) -> tuple[int, int]:
        return self.c, self.s


def test_snapshot_counts_finished_and_running_bytes():
    stats = ServiceStats("web")
    stats.total = 3
    stats.finished(_Fake(10, 1000))
    stats.count("http_requests_2xx")
    stats.count("http_requests_2xx")
    snap = stats.snapshot([_Fake(5, 50), _Fake(1, 2)])
    assert snap["sessions_running"] == 2 and snap["sessions_total"] == 3
    assert snap["bytes_from_client"] == 16 and snap["bytes_from_server"] == 1052
    assert snap["proxy"] == {"http_requests_2xx": 2}


def test_rates_approach_the_steady_rate():
    stats = InstanceStats()
    web = stats.service("web")
    assert stats.service("web") is web
    for _ in range(2160):  # three hours of 5 s ticks at 2 new sessions a second
        web.total += 10
        stats.tick()
    one, five, fifteen = web.rates
    assert abs(one - 2) < 0.01 and abs(five - 2) < 0.01 and abs(fifteen - 2) < 0.05
    web.tick()  # nothing new for 5 s: the 1-minute rate falls fastest
    assert web.rates[0] < web.rates[1] < web.rates[2]
