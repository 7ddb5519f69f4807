"""Fair admission near a limit: the busiest address yields (zfw.engine.fair)."""

from __future__ import annotations

from zfw.engine.fair import SCAN, Pool, client_key, make_room, threshold
from zfw.engine.session import Session, SessionTable
from zfw.model import InstanceOptions, Service
from zfw.proxy.plug import PlugProxy


def test_threshold_keeps_the_headroom():
    assert threshold(1000, 0.1) == 900
    assert threshold(1000, 0) == 1000
    assert threshold(1, 0.1) == 0
    assert threshold(15, 0.1) == 13  # rounded up: never less than asked


def test_the_pool_knows_its_busiest_address():
    pool: Pool[int] = Pool()
    for i in range(3):
        pool.add("a", i)
    pool.add("b", 10)
    assert (pool.total, pool.top, pool.busiest()) == (4, 3, "a")
    pool.remove("a", 0)
    pool.remove("a", 1)
    assert pool.top == 1 and pool.busiest() in ("a", "b")
    pool.remove("a", 2)
    assert (pool.top, pool.busiest(), pool.count("a")) == (1, "b", 0)
    pool.remove("b", 10)
    assert (pool.total, pool.top, pool.busiest()) == (0, 0, None)


def test_free_while_there_is_room():
    pool: Pool[int] = Pool()
    for i in range(89):
        pool.add("a", i)
    assert make_room(pool, "service 'x'", 100, 0.1, "a", lambda _: True) == (None, None)


def test_near_the_limit_the_busiest_address_is_refused():
    pool: Pool[int] = Pool()
    for i in range(90):
        pool.add("a", i)
    refusal, victim = make_room(pool, "service 'x'", 100, 0.1, "a", lambda _: True)
    assert victim is None and refusal is not None and refusal.kind == "fair"
    assert refusal.reason == "a holds the most sessions (90) of service 'x', near its limit of 100"


def test_others_get_the_oldest_session_that_may_yield():
    pool: Pool[int] = Pool()
    for i in range(95):
        pool.add("a", i)
    pool.add("b", 100)
    assert make_room(pool, "x", 100, 0.1, "b", lambda i: i >= 3) == (None, 3)
    # b, not the busiest, is served even when nothing may yield, while there is room
    assert make_room(pool, "x", 100, 0.1, "b", lambda _: False) == (None, None)
    for i in range(101, 105):
        pool.add("b", i)
    refusal, victim = make_room(pool, "x", 100, 0.1, "c", lambda _: False)
    assert victim is None and refusal.kind == "limit"
    assert refusal.reason == "x limit of 100 sessions reached"


def test_a_tie_for_the_most_is_the_most():
    pool: Pool[int] = Pool()
    for i in range(5):
        pool.add("a", i)
        pool.add("b", 10 + i)
    refusal, _ = make_room(pool, "x", 10, 0, "b", lambda _: True)
    assert refusal is not None and refusal.kind == "fair"


def test_each_scan_looks_at_others():
    pool: Pool[int] = Pool()
    for i in range(3 * SCAN):
        pool.add("a", i)
    pool.add("b", -1)
    seen: list[int] = []

    def never(i: int) -> bool:
        seen.append(i)
        return False

    make_room(pool, "x", 3 * SCAN + 1, 0, "b", never)
    make_room(pool, "x", 3 * SCAN + 1, 0, "b", never)
    assert seen == list(range(2 * SCAN))


class _Proxy:
    def __init__(self, opening: bool):
        self.opening = opening

    def may_yield(self) -> bool:
        return self.opening

    def state(self) -> str:
        return ""


def _from(table, svc, address, opening):
    s = Session(
        table.next_id(svc), svc, None, (address, 1), ("b", 2), None, None, None, table.remove
    )
    s.proxy = _Proxy(opening)
    table.add(s)
    return s


def test_the_table_closes_what_yields_and_counts_every_pool():
    table = SessionTable("inst", InstanceOptions(max_sessions=10, headroom=0.2))
    web = Service("web", PlugProxy)
    busy = [_from(table, web, "a", opening=i % 2 == 1) for i in range(8)]
    evicted = []

    def evict(s, why):
        evicted.append((s, why))
        s.close()

    assert table.make_room(web, "b", 0.0, evict) is None
    assert [s for s, _ in evicted] == [busy[1]]  # the oldest still opening
    assert evicted[0][1] == "instance 'inst' is near its limit of 10: b needs room"
    assert table.pool.count("a") == 7 and table.running("web") == 7


def test_an_idle_session_yields_after_yield_idle():
    table = SessionTable("inst", InstanceOptions(yield_idle=10.0))
    web = Service("web", PlugProxy)
    s = _from(table, web, "a", opening=False)
    assert not table.may_yield(s, s.started + 9.0)
    assert table.may_yield(s, s.started + 10.0)


def test_over_a_lowered_limit_nobody_is_admitted():
    pool: Pool[int] = Pool()
    for i in range(12):
        pool.add("a", i)
    refusal, victim = make_room(pool, "x", 10, 0.1, "b", lambda _: True)
    assert victim is None and refusal.kind == "limit"


def test_an_ipv6_client_counts_as_its_64():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1::2") == client_key("2001:db8:1:0:ffff::9") == "2001:db8:1::/64"
    assert client_key("2001:db8:1:1::2") == "2001:db8:1:1::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"


def test_sessions_from_one_64_are_one_client():
    table = SessionTable("inst", InstanceOptions())
    web = Service("web", PlugProxy, max_sessions_per_client=2)
    _from(table, web, "2001:db8:1::2", opening=False)
    _from(table, web, "2001:db8:1::3", opening=False)
    assert table.client_refuse_reason(web, "2001:db8:1::/64", 0.0) == (
        "2 sessions of this address running (max_sessions_per_client)"
    )
