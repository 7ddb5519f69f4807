"""Policy -> Ruleset, without I/O.

mangle (per family)::

    PREROUTING  -p tcp ! --syn -m socket -j DIVERT     established traffic of local sockets
                -j ZFWPRE                              TPROXY dispatch
                -p tcp -m socket -j DIVERT             remaining SYNs: foreign-address listeners
    ZFWPRE      -s CIDR -g PR<zone>                    source zone, most specific first
    PR<zone>    -j TP<port>                            listeners whose service may leave
    TP<port>    -d CIDR -p tcp --dport P -j TPROXY ... destinations whose zone admits the service
                -d CIDR -j RETURN                      a sub-zone must not fall to its parent's
    DIVERT      -j MARK; -j ACCEPT

The TP<port> chains (one per transparent listener) are shared by all source
zones, so the ruleset grows with zones x services rather than zones squared.

filter (per family)::

    INPUT       -j ZFWIN
    FORWARD     -j ZFWFWD                              everything is proxied: forward nothing
    ZFWFWD      -p udp --dport 443 -j REJECT           QUIC: browsers fall back to TCP at once
                -g ZFWDROP                             log and drop
    ZFWIN       lo, established, TPROXY mark, ICMP: ACCEPT; -s CIDR -g LO<zone>; log and drop
    LO<zone>    local services and plain listener ports the zone may reach; log and drop

:func:`closed_ruleset` is what ``zfw rules apply`` loads when the policy does
not load and no last good ruleset was recorded: ``FORWARD -j ZFWFWD``,
``ZFWFWD -g ZFWDROP`` (log and drop) and nothing else; the host's own traffic
(INPUT, OUTPUT) is left to other tools, so that an administrator can log in. A
bridge part loaded already (nft backend) is kept: it hands TCP to the IP stack,
which then drops it, and drops the rest.

Zone semantics come from :class:`~zfw.zones.ZoneTable` itself (most specific
zone, ``admin_parent`` inheritance, umbrella, ``"*"``), the same code the
engine decides with.
"""

from __future__ import annotations

from collections.abc import Iterable

from zfw.model import Listener, Policy, PortRange, Service
from zfw.routing import TproxyRouting
from zfw.rules.model import BridgeRules, Chain, Match, Rule, Ruleset, Table
from zfw.zones import INBOUND, OUTBOUND, IPNetwork, Zone

ANY = {4: "0.0.0.0", 6: "::"}
MANGLE_CHAINS = ("DIVERT", "ZFWPRE")
FILTER_CHAINS = ("ZFWIN", "ZFWFWD", "ZFWDROP")


def _family_nets(policy: Policy, family: int) -> list[tuple[IPNetwork, Zone]]:
    """Every (network, zone) of a family, most specific first, then by address."""
    nets = [(n, z) for z in policy.zones for n in z.networks if n.version == family]
    nets.sort(key=lambda nz: (-nz[0].prefixlen, int(nz[0].network_address)))
    return nets


def _parents(nets: list[tuple[IPNetwork, Zone]]) -> dict[IPNetwork, IPNetwork | None]:
    """The closest enclosing network of each network (they nest or are disjoint)."""
    parent: dict[IPNetwork, IPNetwork | None] = {}
    stack: list[IPNetwork] = []
    for net, _z in sorted(nets, key=lambda nz: (int(nz[0].network_address), nz[0].prefixlen)):
        while stack and not net.subnet_of(stack[-1]):  # type: ignore[arg-type]
            stack.pop()
        parent[net] = stack[-1] if stack else None
        stack.append(net)
    return parent


def _dport(ports: PortRange) -> Match:
    return Match("tcp", (("dport", str(ports), False),))


def _tproxy_rules(dst: str, listener: Listener, family: int, mark: str, comment: str) -> list[Rule]:
    host = listener.address.host
    if host and (":" in host) != (family == 6):
        return []
    on_ip = host or ANY[family]
    return [
        Rule(
            dst=dst,
            protocol="tcp",
            matches=(_dport(p),),
            target="TPROXY",
            target_options=(
                ("on-port", str(listener.address.port)),
                ("on-ip", on_ip),
                ("tproxy-mark", mark),
            ),
            comment=comment,
        )
        for p in listener.intercept
    ]


def _drop(prefix: str) -> list[Rule]:
    return [
        Rule(target="LOG", target_options=(("log-prefix", f'"{prefix}"'),)),
        Rule(target="DROP"),
    ]


def _quic(how: str, family: int) -> list[Rule]:
    """Forwarded QUIC refused at once (ICMP port unreachable), so that a browser falls
    back to TCP, which the proxies see, without waiting for QUIC to time out."""
    if how != "reject":
        return []
    reply = "icmp6-port-unreachable" if family == 6 else "icmp-port-unreachable"
    return [
        Rule(
            protocol="udp",
            matches=(Match("udp", (("dport", "443", False),)),),
            comment="QUIC",
            target="REJECT",
            target_options=(("reject-with", reply),),
        )
    ]


def compile_policy(policy: Policy, instances: Iterable[str] | None = None) -> Ruleset:
    """Compile the packet filter for ``instances`` (default: every instance)."""
    names = list(instances) if instances is not None else list(policy.instances)
    services: dict[str, Service] = {}
    transparent: list[Listener] = []
    plain: list[Listener] = []
    for name in names:
        inst = policy.instances[name]
        services.update(inst.services)
        for lst in inst.listeners:
            # A redirect listener is reached through NAT: only INPUT must let it in.
            (transparent if lst.tproxy else plain).append(lst)
    pf = policy.packet_filter
    mark = f"{pf.tproxy_mark:#x}/{pf.tproxy_mask:#x}"
    zones = policy.zones
    # Which services may go out of / into each zone: asked once per zone and service.
    out_ok = {(z.name, s): zones.permits(z, s, OUTBOUND) for z in zones for s in services}
    in_ok = {(z.name, s): zones.permits(z, s, INBOUND) for z in zones for s in services}
    tables = []
    for family in (4, 6):
        nets = _family_nets(policy, family)
        parents = _parents(nets)
        tables.append(
            (family, _mangle(policy, family, nets, parents, transparent, out_ok, in_ok, mark))
        )
        tables.append((family, _filter(policy, family, nets, plain, services, out_ok, mark)))
    routing = TproxyRouting(pf.tproxy_mark, pf.tproxy_mask, pf.route_table)
    return Ruleset(tuple(tables), routing, _bridge(policy))


def _bridge(policy: Policy) -> BridgeRules | None:
    """The bridge part: every TCP segment on the bridge's ports goes up to the IP stack
    above (TPROXY to the listeners, the socket match for zfw's own connections and FTP
    data channels, the rest dropped there: nothing is forwarded), other bridged frames
    are dropped but for what the policy lets bridge."""
    b = policy.bridge
    if b is None:
        return None
    allowed = tuple((t.protocol, ",".join(str(p) for p in t.ports)) for t in b.bridge_traffic)
    return BridgeRules(
        b.device,
        b.client_ports,
        b.server_ports,
        b.mac,
        allowed,
        policy.packet_filter.log_prefix,
    )


def closed_ruleset(routing: TproxyRouting, log_prefix: str = "zfw") -> Ruleset:
    """Forward nothing, divert nothing, leave the host's own traffic alone (both families).

    The mangle tables are empty, so that applying this removes zfw's TPROXY dispatch."""
    filter_ = Table(
        "filter",
        (
            Chain("FORWARD", (Rule(target="ZFWFWD"),)),
            Chain("ZFWFWD", (Rule(target="ZFWDROP", goto=True),)),
            Chain("ZFWDROP", tuple(_drop(f"{log_prefix} closed: "))),
        ),
    )
    mangle = Table("mangle", ())
    return Ruleset(tuple((f, t) for f in (4, 6) for t in (mangle, filter_)), routing, closed=True)


def _mangle(policy, family, nets, parents, listeners, out_ok, in_ok, mark) -> Table:
    divert = Rule(target="DIVERT")
    pre = Chain(
        "PREROUTING",
        (
            Rule(
                protocol="tcp",
                matches=(Match("tcp", (("syn", None, True),)), Match("socket")),
                target="DIVERT",
            ),
            Rule(target="ZFWPRE"),
            Rule(protocol="tcp", matches=(Match("socket"),), target=divert.target),
        ),
    )
    dispatch = Chain(
        "ZFWPRE", tuple(Rule(src=str(n), target=f"PR{z.name}", goto=True) for n, z in nets)
    )
    # One chain per transparent listener: TPROXY for the destinations whose zone admits
    # its service, most specific first. Shared by every source zone, so the size grows
    # with zones + services, not zones x zones.
    tp_chains: list[Chain] = []
    tp_name: dict[Listener, str] = {}
    taken: set[str] = set()
    for lst in listeners:
        svc = lst.service
        by_net = {
            net: (_tproxy_rules(str(net), lst, family, mark, svc) if in_ok[(dst.name, svc)] else [])
            for net, dst in nets
        }
        if not any(by_net.values()):
            continue
        memo: dict[IPNetwork, bool] = {}

        def above(net: IPNetwork, _memo=memo, _by=by_net) -> bool:
            """Whether an enclosing network has rules that would catch ``net``'s packets."""
            if net not in _memo:
                p = parents[net]
                _memo[net] = p is not None and (bool(_by[p]) or above(p))
            return _memo[net]

        rules = []
        for net, _dst in nets:
            rules += by_net[net]
            # A network whose parent has no rules of its own is covered by the parent's RETURN.
            parent = parents[net]
            if above(net) and (by_net[net] or (parent is not None and by_net[parent])):
                rules.append(Rule(dst=str(net), target="RETURN"))
        name = f"TP{lst.address.port}"
        while name in taken:
            name += "_"
        taken.add(name)
        tp_name[lst] = name
        tp_chains.append(Chain(name, tuple(rules)))
    zone_chains = []
    for src_zone in policy.zones:
        if not any(n.version == family for n in src_zone.networks):
            continue
        jumps = tuple(
            Rule(target=tp_name[lst], comment=lst.service)
            for lst in listeners
            if lst in tp_name and out_ok[(src_zone.name, lst.service)]
        )
        zone_chains.append(Chain(f"PR{src_zone.name}", jumps))
    divert_chain = Chain(
        "DIVERT",
        (Rule(target="MARK", target_options=(("set-xmark", mark),)), Rule(target="ACCEPT")),
    )
    return Table("mangle", (pre, divert_chain, dispatch, *zone_chains, *tp_chains))


def _filter(policy, family, nets, plain, services, out_ok, mark) -> Table:
    prefix = policy.packet_filter.log_prefix
    icmp = "ipv6-icmp" if family == 6 else "icmp"
    zin = [
        Rule(in_iface="lo", target="ACCEPT"),
        Rule(
            matches=(Match("conntrack", (("ctstate", "RELATED,ESTABLISHED", False),)),),
            target="ACCEPT",
        ),
        Rule(matches=(Match("mark", (("mark", mark, False),)),), target="ACCEPT"),
        Rule(protocol=icmp, target="ACCEPT"),
        *(Rule(src=str(n), target=f"LO{z.name}", goto=True) for n, z in nets),
        Rule(target="ZFWDROP", goto=True),
    ]
    zone_chains = []
    for zone in policy.zones:
        if not any(n.version == family for n in zone.networks):
            continue
        lineage = {z.name for z in policy.zones.ancestors(zone)}
        rules = []
        for ls in policy.local_services:
            if lineage & set(ls.zones):
                rules += [
                    Rule(
                        protocol=ls.protocol,
                        matches=(Match(ls.protocol, (("dport", str(p), False),)),),
                        comment=f"local {ls.name}",
                    )
                    for p in ls.ports
                ]
        for lst in plain:
            host = lst.address.host
            if host and (":" in host) != (family == 6):
                continue
            if out_ok[(zone.name, lst.service)]:
                rules.append(
                    Rule(
                        # as iptables shows it back, so that `zfw rules diff` finds no drift
                        dst=f"{host}/{128 if ':' in host else 32}" if host else None,
                        protocol="tcp",
                        matches=(_dport(PortRange(lst.address.port, lst.address.port)),),
                        comment=f"listener {lst.service}",
                    )
                )
        rules.append(Rule(target="ZFWDROP", goto=True))
        zone_chains.append(Chain(f"LO{zone.name}", tuple(rules)))
    return Table(
        "filter",
        (
            Chain("INPUT", (Rule(target="ZFWIN"),)),
            Chain("FORWARD", (Rule(target="ZFWFWD"),)),
            Chain("ZFWIN", tuple(zin)),
            Chain(
                "ZFWFWD",
                (*_quic(policy.packet_filter.quic, family), Rule(target="ZFWDROP", goto=True)),
            ),
            Chain("ZFWDROP", tuple(_drop(f"{prefix} drop: "))),
            *zone_chains,
        ),
    )
