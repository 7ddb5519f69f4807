"""The engine's zone and routing decision (pure)."""

from __future__ import annotations

import pytest

from zfw.engine.decision import decide, decide_server
from zfw.errors import PolicyError
from zfw.loader import load_policy

POLICY = """
InetZone('lan', ['192.0.2.0/24', '2001:db8:1::/64'], outbound_services=['*'])
InetZone('guest', '192.0.2.128/25')
InetZone('srv', ['198.51.100.0/24', '2001:db8:2::/64'], inbound_services=['*'])

def i():
    Service('t', PlugProxy)
    Service('d', PlugProxy, router=DirectedRouter(SockAddrInet('198.51.100.9', 25)))
    Service('nf', PlugProxy, router=TransparentRouter(forge_addr=False, forced_port=8080))
    Listener(SockAddrInet('', 50001), 't', intercept=1)
    Listener(SockAddrInet('192.0.2.1', 50002), 'd', transparent=False)
    Listener(SockAddrInet('', 50003), 'nf', intercept=3)
    Service('df', PlugProxy, router=DirectedRouter(SockAddrInet('198.51.100.9', 25), forge_addr=True))
    Listener(SockAddrInet('', 50004), 'df', intercept=4)
"""


@pytest.fixture
def policy(write_policy):
    return load_policy(str(write_policy(POLICY)), "i")


def _decide(policy, index, client, dest):
    inst = policy.instance
    lst = inst.listeners[index]
    return decide(policy, lst, inst.services[lst.service], client, dest)


def test_transparent_forges_the_client_address(policy):
    d = _decide(policy, 0, ("192.0.2.7", 4000), ("198.51.100.2", 1))
    assert d.allowed and d.client_zone.name == "lan" and d.server_zone.name == "srv"
    assert d.target == ("198.51.100.2", 1) and d.source == ("192.0.2.7", 0)


def test_ipv4_mapped_addresses_are_plain(policy):
    d = _decide(policy, 0, ("::ffff:192.0.2.7", 4000), ("::ffff:198.51.100.2", 1))
    assert d.allowed and d.source == ("192.0.2.7", 0) and d.target == ("198.51.100.2", 1)


def test_forced_port_without_forging(policy):
    d = _decide(policy, 2, ("2001:db8:1::5", 4000), ("2001:db8:2::9", 3))
    assert d.allowed and d.target == ("2001:db8:2::9", 8080) and d.source is None


def test_directed_router_on_plain_listener(policy):
    d = _decide(policy, 1, ("192.0.2.7", 4000), ("192.0.2.1", 50002))
    assert d.allowed and d.target == ("198.51.100.9", 25) and d.server_zone.name == "srv"


@pytest.mark.parametrize(
    ("index", "client", "dest", "reason"),
    [
        (0, ("192.0.2.200", 1), ("198.51.100.2", 1), "not permitted from zone 'guest'"),
        (0, ("203.0.113.1", 1), ("198.51.100.2", 1), "client address 203.0.113.1 is in no zone"),
        (0, ("192.0.2.7", 1), ("203.0.113.1", 1), "server address 203.0.113.1 is in no zone"),
        (0, ("192.0.2.7", 1), ("192.0.2.8", 1), "to zone 'lan'"),
        (3, ("2001:db8:1::5", 1), ("2001:db8:2::1", 4), "across IPv4 and IPv6"),
    ],
)
def test_denials_say_why(policy, index, client, dest, reason):
    d = _decide(policy, index, client, dest)
    assert not d.allowed and reason in d.reason


def test_plain_listener_needs_a_directed_or_inband_router(write_policy):
    path = write_policy(
        "InetZone('a', '0.0.0.0/0', inbound_services=['*'], outbound_services=['*'])\n"
        "def i():\n    Service('s', PlugProxy)\n"
        "    Listener(SockAddrInet('', 5000), 's', transparent=False)\n"
    )
    with pytest.raises(PolicyError) as e:
        load_policy(str(path), "i")
    listener_line = (
        path.read_text()
        .splitlines()
        .index("    Listener(SockAddrInet('', 5000), 's', transparent=False)")
    )
    assert e.value.lineno == listener_line + 1
    assert "needs a DirectedRouter or an InbandRouter" in str(e.value)


INBAND = """
InetZone('lan', '192.0.2.0/24', outbound_services=['web'])
InetZone('guest', '192.0.2.128/25', outbound_services=[])
InetZone('srv', '198.51.100.0/24', inbound_services=['web'])
InetZone('dmz', '203.0.113.0/24')

def i():
    Service('web', HttpProxyNonTransparent, router=InbandRouter())
    Listener(SockAddrInet('192.0.2.1', 3128), 'web', transparent=False)
"""


def test_inband_router_decides_the_client_zone_at_accept(write_policy):
    p = load_policy(str(write_policy(INBAND)), "i")
    lst, svc = p.instance.listeners[0], p.instance.services["web"]
    d = decide(p, lst, svc, ("192.0.2.7", 4000), ("192.0.2.1", 3128))
    assert d.allowed and d.target is None and d.client_zone.name == "lan"
    d = decide(p, lst, svc, ("192.0.2.200", 4000), ("192.0.2.1", 3128))
    assert not d.allowed and "not permitted from zone 'guest'" in d.reason


def test_inband_router_decides_each_named_server(write_policy):
    p = load_policy(str(write_policy(INBAND)), "i")
    svc = p.instance.services["web"]
    lan = p.zones.lookup("192.0.2.7")
    d = decide_server(p, svc, ("192.0.2.7", 4000), ("198.51.100.2", 80), lan)
    assert d.allowed and d.target == ("198.51.100.2", 80) and d.source is None
    d = decide_server(p, svc, ("192.0.2.7", 4000), ("203.0.113.5", 80), lan)
    assert not d.allowed and "to zone 'dmz'" in d.reason
    d = decide_server(p, svc, ("192.0.2.7", 4000), ("::ffff:198.51.100.2", 80), lan)
    assert d.allowed and d.target == ("198.51.100.2", 80)


@pytest.mark.parametrize(
    ("service", "listener", "message"),
    [
        (
            "Service('w', PlugProxy, router=InbandRouter())",
            "Listener(SockAddrInet('', 3128), 'w', transparent=False)",
            "InbandRouter needs a proxy that reads the server from the request",
        ),
        (
            "Service('w', HttpProxy, router=InbandRouter())",
            "Listener(SockAddrInet('', 3128), 'w', intercept=80)",
            "clients must connect to it directly (transparent=False)",
        ),
    ],
)
def test_inband_router_misuse_is_a_policy_error(write_policy, service, listener, message):
    path = write_policy(
        "InetZone('a', '0.0.0.0/0', inbound_services=['*'], outbound_services=['*'])\n"
        f"def i():\n    {service}\n    {listener}\n"
    )
    with pytest.raises(PolicyError) as e:
        load_policy(str(path), "i")
    lines = path.read_text().splitlines()
    assert message in str(e.value)
    assert e.value.lineno in (lines.index(f"    {service}") + 1, lines.index(f"    {listener}") + 1)
