"""Session limits and ids."""

from __future__ import annotations

from zfw.engine.session import Session, SessionTable
from zfw.model import InstanceOptions, Service
from zfw.proxy.plug import PlugProxy


def _session(table, svc):
    s = Session(table.next_id(svc), svc, None, ("a", 1), ("b", 2), None, None, None, table.remove)
    table.add(s)
    return s


def _never(session, why):
    raise AssertionError(f"nothing should have to yield: {why}")


def test_limits_per_service_and_instance():
    table = SessionTable("inst", InstanceOptions(max_sessions=3, headroom=0))
    a = Service("a", PlugProxy, max_sessions=2)
    b = Service("b", PlugProxy)
    s1 = _session(table, a)
    assert s1.id == "inst/a:1"
    _session(table, a)
    refusal = table.make_room(a, "a", 0.0, _never)
    assert refusal.kind == "fair"  # the only address holds the most
    assert refusal.reason == "a holds the most sessions (2) of service 'a', at its limit of 2"
    assert table.make_room(b, "a", 0.0, _never) is None
    _session(table, b)
    assert table.make_room(b, "a", 0.0, _never).reason.endswith(
        "instance 'inst', at its limit of 3"
    )
    s1.close()
    s1.close()  # twice is harmless
    assert table.make_room(a, "a", 0.0, _never) is None and table.running("a") == 1


def test_when_empty_fires_after_the_last_session():
    table = SessionTable("inst", InstanceOptions())
    svc = Service("a", PlugProxy)
    s = _session(table, svc)
    fired = []
    table.when_empty().addCallback(fired.append)
    assert fired == []
    s.close()
    assert fired == [None]
    table.when_empty().addCallback(fired.append)
    assert fired == [None, None]


def _from(table, svc, address):
    s = Session(
        table.next_id(svc), svc, None, (address, 1), ("b", 2), None, None, None, table.remove
    )
    table.add(s)
    return s


def test_a_fixed_cap_per_address_is_honoured_exactly():
    table = SessionTable("inst", InstanceOptions())
    web = Service("web", PlugProxy, max_sessions=50, max_sessions_per_client=5)
    held = [_from(table, web, "192.0.2.9") for _ in range(5)]
    reason = table.client_refuse_reason(web, "192.0.2.9", 0.0)
    assert reason == "5 sessions of this address running (max_sessions_per_client)"
    assert table.client_refuse_reason(web, "192.0.2.10", 0.0) is None  # the others go on
    held[0].close()
    assert table.client_refuse_reason(web, "192.0.2.9", 0.0) is None
    for s in held[1:]:
        s.close()
    assert not table.services and not table.pool.total


def test_no_cap_per_address_by_default():
    table = SessionTable("inst", InstanceOptions())
    web = Service("web", PlugProxy)
    for _ in range(899):  # up to the headroom (a tenth of 1,000) nothing is asked
        assert table.client_refuse_reason(web, "a", 0.0) is None
        assert table.make_room(web, "a", 0.0, _never) is None
        _from(table, web, "a")
    assert table.make_room(web, "a", 0.0, _never) is None
    _from(table, web, "a")
    assert table.make_room(web, "a", 0.0, _never).kind == "fair"  # 900: near the limit


def test_new_sessions_a_second_per_address():
    table = SessionTable("inst", InstanceOptions())
    web = Service("web", PlugProxy, max_new_sessions_per_client=3)
    assert [table.client_refuse_reason(web, "a", 10.0) for _ in range(3)] == [None] * 3
    assert "more than 3 new sessions a second" in table.client_refuse_reason(web, "a", 10.0)
    assert table.client_refuse_reason(web, "b", 10.0) is None
    assert table.client_refuse_reason(web, "a", 10.4) is None  # 0.4 s: 1.2 tokens back


def test_a_zone_can_be_stricter():
    from zfw.zones import Zone

    table = SessionTable("inst", InstanceOptions())
    web = Service("web", PlugProxy, max_sessions_per_client=100)
    guests = Zone("guests", (), max_sessions_per_client=1, max_new_sessions_per_client=50)
    _from(table, web, "a")
    assert "1 sessions of this address" in table.client_refuse_reason(web, "a", 0.0, guests)
    assert table.client_refuse_reason(web, "a", 0.0) is None  # the service alone allows it
