"""The engine's zone and routing decision (pure)."""

from __future__ import annotations

import pytest

from zfw.engine.decision import decide
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


def test_plain_listener_needs_a_directed_router(write_policy):
    p = load_policy(
        str(
            write_policy(
                "InetZone('a', '0.0.0.0/0', inbound_services=['*'], outbound_services=['*'])\n"
                "def i():\n    Service('s', PlugProxy)\n"
                "    Listener(SockAddrInet('', 5000), 's', transparent=False)\n"
            )
        ),
        "i",
    )
    lst = p.instance.listeners[0]
    d = decide(p, lst, p.instance.services["s"], ("192.0.2.1", 1), ("192.0.2.2", 5000))
    assert not d.allowed and "needs a DirectedRouter" in d.reason
