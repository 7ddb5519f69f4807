"""Most-specific zone lookup and permission inheritance."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfw.errors import PolicyError
from zfw.zones import INBOUND, OUTBOUND, Zone, ZoneTable, check_zone_name, parse_networks


def zone(name, addrs, inbound=(), outbound=(), parent=None, umbrella=False):
    return Zone(name, parse_networks(addrs), tuple(inbound), tuple(outbound), parent, umbrella)


NESTED = ZoneTable.build(
    [
        zone("big", "10.0.0.0/8"),
        zone("mid", "10.0.0.0/16"),
        zone("host", "10.0.0.25/32"),
        zone("v6", ["2001:db8::/32"]),
        zone("v6sub", ["2001:db8:1::/48", "198.51.100.0/24"]),
        zone("world", ["0.0.0.0/0", "::/0"]),
    ]
)


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("10.0.44.1", "mid"),
        ("10.0.0.25", "host"),
        ("10.0.0.24", "mid"),
        ("10.1.0.1", "big"),
        ("10.255.255.255", "big"),
        ("11.0.0.0", "world"),
        ("0.0.0.0", "world"),
        ("198.51.100.7", "v6sub"),
        ("2001:db8::1", "v6"),
        ("2001:db8:1::1", "v6sub"),
        ("2001:db8:1:ffff::1", "v6sub"),
        ("2001:db9::1", "world"),
        ("::ffff:10.0.0.25", "host"),
        ("fe80::1%eth0", "world"),
    ],
)
def test_most_specific_lookup(addr, expected):
    assert NESTED.lookup(addr).name == expected


def test_lookup_outside_every_zone():
    table = ZoneTable.build([zone("a", "192.0.2.0/24"), zone("b", "2001:db8::/32")])
    assert table.lookup("198.51.100.1") is None
    assert table.lookup("2001:db9::1") is None


def family_tree():
    return ZoneTable.build(
        [
            zone("root", "10.0.0.0/8", inbound=["web"], outbound=["ssh"]),
            zone("child", "10.1.0.0/16", outbound=["ftp"], parent="root"),
            zone("grandchild", "10.1.1.0/24", parent="child"),
            zone("umb", "10.2.0.0/16", parent="root", umbrella=True),
            zone("under_umb", "10.2.1.0/24", parent="umb"),
            zone("star", "192.0.2.0/24", outbound=["*"]),
            zone("star_child", "192.0.2.0/25", parent="star"),
        ]
    )


@pytest.mark.parametrize(
    ("zone_name", "service", "direction", "expected"),
    [
        ("root", "ssh", OUTBOUND, True),
        ("root", "ftp", OUTBOUND, False),
        ("root", "web", INBOUND, True),
        ("root", "ssh", INBOUND, False),
        ("child", "ftp", OUTBOUND, True),
        ("child", "ssh", OUTBOUND, True),  # inherited from root
        ("child", "web", INBOUND, True),
        ("grandchild", "ssh", OUTBOUND, True),  # two levels up
        ("grandchild", "ftp", OUTBOUND, True),
        ("grandchild", "smtp", OUTBOUND, False),
        ("umb", "ssh", OUTBOUND, False),  # umbrella: no inheritance
        ("umb", "web", INBOUND, False),
        ("under_umb", "ssh", OUTBOUND, False),  # stops at the umbrella
        ("star", "anything", OUTBOUND, True),
        ("star", "anything", INBOUND, False),
        ("star_child", "anything", OUTBOUND, True),  # '*' inherited
    ],
)
def test_permission_inheritance(zone_name, service, direction, expected):
    table = family_tree()
    assert table.permits(table[zone_name], service, direction) is expected


def test_ancestors_stop_at_umbrella():
    table = family_tree()
    assert [z.name for z in table.ancestors(table["grandchild"])] == ["grandchild", "child", "root"]
    assert [z.name for z in table.ancestors(table["under_umb"])] == ["under_umb", "umb"]


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        (
            [zone("a", "10.0.0.0/8"), zone("b", "10.0.0.0/8")],
            "10.0.0.0/8 is in zone 'a' and zone 'b'",
        ),
        ([zone("a", ["10.0.0.0/8", "10.0.0.0/8"])], "10.0.0.0/8 is twice in zone 'a'"),
        ([zone("a", "10.0.0.0/8"), zone("a", "11.0.0.0/8")], "zone 'a' is declared twice"),
        ([zone("a", "10.0.0.0/8", parent="nope")], "unknown admin_parent 'nope'"),
        (
            [zone("a", "10.0.0.0/8", parent="b"), zone("b", "11.0.0.0/8", parent="a")],
            "admin_parent cycle: a -> b -> a",
        ),
        ([zone("a", "10.0.0.0/8", parent="a")], "admin_parent cycle: a -> a"),
    ],
)
def test_table_errors(zones, message):
    with pytest.raises(PolicyError, match=message):
        ZoneTable.build(zones)


@pytest.mark.parametrize("name", ["", "has space", "x" * 27, "-dash", "a/b", "ünï"])
def test_bad_zone_names(name):
    with pytest.raises(PolicyError):
        check_zone_name(name)


def test_zone_name_at_the_limit():
    assert check_zone_name("z" * 26) == "z" * 26


@pytest.mark.parametrize("addrs", ["10.0.0.1/8", "10.0.0.0/33", "nonsense", [], [42]])
def test_bad_networks(addrs):
    with pytest.raises(PolicyError):
        parse_networks(addrs)


# --- property: lookup equals brute-force longest-prefix match ------------------------------

v4_nets = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_nets = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False),
    st.integers(0, 2**128 - 1).map(lambda i: ipaddress.IPv6Address(i)),
    st.integers(0, 128),
)
v4_addrs = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6_addrs = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


def _near(nets):
    """Addresses inside the generated networks, so that lookups hit them."""
    return st.sampled_from(nets).flatmap(
        lambda n: st.integers(0, n.num_addresses - 1).map(lambda i: n.network_address + i)
    )


@settings(max_examples=300, deadline=None)
@given(
    nets=st.lists(st.one_of(v4_nets, v6_nets), min_size=1, max_size=40, unique=True),
    data=st.data(),
)
def test_lookup_is_longest_prefix_match(nets, data):
    table = ZoneTable.build([Zone(f"z{i}", (n,)) for i, n in enumerate(nets)])
    addrs = data.draw(st.lists(st.one_of(v4_addrs, v6_addrs, _near(nets)), max_size=30))
    for addr in addrs:
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        candidates = [(n.prefixlen, i) for i, n in enumerate(nets) if addr in n]
        expected = f"z{max(candidates)[1]}" if candidates else None
        found = table.lookup(addr)
        assert (found.name if found else None) == expected
