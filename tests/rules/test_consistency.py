"""The compiled packet filter agrees with the engine's own decision.

For random policies (nested zones, admin parents, umbrellas, '*', IPv4 and
IPv6) and random connections, the ruleset interpreter's verdict (divert to
which listener, or drop) must match what the engine decides.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfw.addr import SockAddrInet
from zfw.engine.decision import decide
from zfw.model import Instance, Listener, Policy, PortRange, Service
from zfw.proxy.plug import PlugProxy
from zfw.rules import nft
from zfw.rules.compiler import compile_policy
from zfw.rules.evaluate import Packet, evaluate, evaluate_nft
from zfw.zones import Zone, ZoneTable

SERVICES = ["s0", "s1", "s2", "s3"]
PORTS = [21, 22, 80, 443]

# Small address spaces so that random networks nest and addresses hit them.
v4_nets = st.builds(
    lambda a, p: ipaddress.ip_network((a << 24, p), strict=False),
    st.integers(0, 3).map(lambda i: 10 + i),
    st.integers(8, 30),
).map(
    lambda n: ipaddress.ip_network((int(n.network_address) & 0xFFFF0F00, n.prefixlen), strict=False)
)
v6_nets = st.integers(16, 120).flatmap(
    lambda p: st.integers(0, 3).map(
        lambda a: ipaddress.ip_network((0x20010DB8 << 96 | a << 80, p), strict=False)
    )
)
service_lists = st.lists(st.sampled_from([*SERVICES, "*"]), max_size=3, unique=True)


@st.composite
def policies(draw):
    nets = draw(st.lists(st.one_of(v4_nets, v6_nets), min_size=1, max_size=8, unique=True))
    count = draw(st.integers(1, min(5, len(nets))))
    groups: list[list] = [[] for _ in range(count)]
    for i, n in enumerate(nets):
        groups[i % count if i < count else draw(st.integers(0, count - 1))].append(n)
    zones = []
    for i, g in enumerate(groups):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        zones.append(
            Zone(
                f"z{i}",
                tuple(g),
                tuple(draw(service_lists)),
                tuple(draw(service_lists)),
                f"z{parent}" if parent is not None else None,
                draw(st.booleans()),
            )
        )
    services = {s: Service(s, PlugProxy) for s in SERVICES}
    listeners = []
    for i, s in enumerate(SERVICES):
        ports = draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True))
        host = draw(st.sampled_from(["", "", "0.0.0.0", "::"]))
        listeners.append(
            Listener(SockAddrInet(host, 50000 + i), s, True, tuple(PortRange(p, p) for p in ports))
        )
    inst = Instance("i", MappingProxyType(services), tuple(listeners))
    return Policy(
        "<test>", ZoneTable.build(zones), MappingProxyType({"i": inst}), instance_name="i"
    )


def addresses(policy: Policy):
    nets = [n for z in policy.zones for n in z.networks]
    inside = st.sampled_from(nets).flatmap(
        lambda n: st.integers(0, n.num_addresses - 1).map(lambda k: str(n.network_address + k))
    )
    outside = st.sampled_from(["192.0.2.1", "2001:db9::1", "10.255.255.1"])
    return st.one_of(inside, inside, outside)


def _iptables(ruleset):
    return lambda p: evaluate(ruleset, p)


def _nft(ruleset):
    table = nft.build(ruleset)
    return lambda p: evaluate_nft(table, ruleset.routing, p)


@settings(max_examples=200, deadline=None)
@given(policy=policies(), data=st.data())
@pytest.mark.parametrize("backend", [_iptables, _nft], ids=["iptables", "nft"])
def test_compiled_rules_match_engine_decisions(backend, policy, data):
    ruleset = compile_policy(policy)
    judge = backend(ruleset)
    by_port = {lst.address.port: lst for lst in policy.instance.listeners}
    addrs = addresses(policy)
    for _ in range(10):
        src = data.draw(addrs)
        dst = data.draw(addrs.filter(lambda a, s=src: (":" in a) == (":" in s)))
        port = data.draw(st.sampled_from(PORTS))
        verdict = judge(Packet(src, dst, port))
        allowed = set()
        for lst in policy.instance.listeners:
            host = lst.address.host
            if any(port in r for r in lst.intercept) and (
                not host or (":" in host) == (":" in src)
            ):
                d = decide(
                    policy, lst, policy.instance.services[lst.service], (src, 1234), (dst, port)
                )
                if d.allowed:
                    allowed.add(lst.address.port)
        if verdict.action == "tproxy":
            assert verdict.port in allowed, (src, dst, port, verdict, by_port[verdict.port])
        else:
            assert not allowed, (src, dst, port, verdict, allowed)
            assert verdict.action == "drop"


@settings(max_examples=100, deadline=None)
@given(policy=policies(), data=st.data())
def test_nft_and_iptables_forms_agree_on_every_packet(policy, data):
    """Beyond the engine's decision (new connections): established packets, local
    sockets, marks, and packets to the firewall itself take the same way in both."""
    ruleset = compile_policy(policy)
    table = nft.build(ruleset)
    addrs = addresses(policy)
    for _ in range(10):
        src = data.draw(addrs)
        dst = data.draw(addrs.filter(lambda a, s=src: (":" in a) == (":" in s)))
        p = Packet(
            src,
            dst,
            data.draw(st.sampled_from(PORTS)),
            syn=data.draw(st.booleans()),
            socket=data.draw(st.booleans()),
            established=data.draw(st.booleans()),
            mark=data.draw(st.sampled_from([0, 0x1000000])),
            in_iface=data.draw(st.sampled_from(["eth0", "lo"])),
            protocol=data.draw(st.sampled_from(["tcp", "tcp", "udp"])),
        )
        local = frozenset({dst}) if data.draw(st.booleans()) else frozenset()
        a = evaluate(ruleset, p, local)
        b = evaluate_nft(table, ruleset.routing, p, local)
        assert (a.action, a.port) == (b.action, b.port), (p, a, b)


def test_the_nft_check_fails_when_a_rule_is_missing():
    """Remove any one TPROXY or dispatch rule of the nft table and a connection that the
    engine admits is no longer diverted: the comparison above would catch it."""
    from zfw.loader import load_policy

    policy = load_policy("policies/three_zones.py", "intra")
    ruleset = compile_policy(policy)
    table = nft.build(ruleset)
    probes = [
        Packet("192.0.2.20", "198.51.100.2", 80),
        Packet("2001:db8:1::20", "2001:db8:2::2", 22),
    ]
    assert [evaluate_nft(table, ruleset.routing, p).action for p in probes] == ["tproxy"] * 2
    broken = 0
    for chain in table.chains:
        for i, r in enumerate(chain.rules):
            if r.rule.target != "TPROXY" and not r.rule.target.startswith(("PR", "TP")):
                continue
            rules = chain.rules[:i] + chain.rules[i + 1 :]
            mutated = nft.NftTable(
                tuple(attrs.evolve(c, rules=rules) if c is chain else c for c in table.chains)
            )
            if any(evaluate_nft(mutated, ruleset.routing, p).action != "tproxy" for p in probes):
                broken += 1
    assert broken >= 6  # the dispatch and TPROXY rules on the probes' paths


@pytest.mark.parametrize("backend", [_iptables, _nft], ids=["iptables", "nft"])
@pytest.mark.parametrize("quic", ["reject", "drop"])
def test_forwarded_quic_is_rejected_or_dropped_and_never_forwarded(backend, quic):
    from zfw.loader import load_policy

    policy = load_policy("policies/three_zones.py", "intra")
    policy = attrs.evolve(policy, packet_filter=attrs.evolve(policy.packet_filter, quic=quic))
    judge = backend(compile_policy(policy))
    for src, dst in (("192.0.2.20", "198.51.100.2"), ("2001:db8:1::20", "2001:db8:2::2")):
        assert judge(Packet(src, dst, 443, protocol="udp")).action == quic
        assert judge(Packet(src, dst, 4433, protocol="udp")).action == "drop"
        assert judge(Packet(src, dst, 443)).action != "reject"  # TCP/443: the proxies'
