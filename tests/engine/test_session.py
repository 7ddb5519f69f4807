"""Session limits and ids."""

from __future__ import annotations

from zfw.engine.session import Session, SessionTable
from zfw.model import InstanceOptions, Service
from zfw.proxy.plug import PlugProxy


def _session(table, svc):
    s = Session(table.next_id(svc), svc, None, ("a", 1), ("b", 2), None, None, None, table.remove)
    table.add(s)
    return s


def test_limits_per_service_and_instance():
    table = SessionTable("inst", InstanceOptions(max_sessions=3))
    a = Service("a", PlugProxy, max_sessions=2)
    b = Service("b", PlugProxy)
    s1 = _session(table, a)
    assert s1.id == "inst/a:1"
    _session(table, a)
    assert table.refuse_reason(a) == "service limit of 2 sessions reached"
    assert table.refuse_reason(b) is None
    _session(table, b)
    assert table.refuse_reason(b) == "instance limit of 3 sessions reached"
    s1.close()
    s1.close()  # twice is harmless
    assert table.refuse_reason(a) is None and table.per_service["a"] == 1


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
