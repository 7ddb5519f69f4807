"""The bridge part of the nft backend: ``table bridge zfw``, without I/O.

::

    PREROUTING (prerouting, -300, on the bridge's ports only)
        what the policy lets bridge: accept (it stays bridged)
        any other TCP: meta pkttype set host ether daddr set <the bridge's MAC>
                       (up to the IP stack: TPROXY, socket match, or dropped there)
    FORWARD (forward, filter)
        from the bridge's ports: jump ZFWBR
    ZFWBR
        ARP, ICMPv6 neighbour and router discovery, MLD: accept
        DHCP, DHCPv6 (only client port to server port, and back): accept
        what the policy lets bridge: accept
        log and drop

Only frames that arrive on the declared ports are looked at: another bridge, or
other ports of this one, are none of zfw's business.
"""

from __future__ import annotations

from zfw.rules.model import BridgeRules

TABLE = "zfw"
#: ICMPv6 that neighbour discovery, router discovery and multicast listeners need.
ND = (
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-redirect",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "mld2-listener-report",
)


def _set(items: tuple[str, ...]) -> str:
    quoted = [f'"{x}"' for x in items]
    return quoted[0] if len(quoted) == 1 else "{ " + ", ".join(quoted) + " }"


def _ports(ports: str) -> str:
    items = [p.replace(":", "-") for p in ports.split(",")]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _allowed(b: BridgeRules) -> list[str]:
    """Rules accepting what the policy lets bridge (both directions)."""
    clients, servers = _set(b.client_ports), _set(b.server_ports)
    out = []
    for proto, ports in b.allowed:
        if proto == "ping":
            out.append("icmp type { echo-request, echo-reply } accept")
            out.append("icmpv6 type { echo-request, echo-reply } accept")
        elif proto == "icmp":
            out.append("meta l4proto { icmp, ipv6-icmp } accept")
        else:
            out.append(f"iifname {clients} {proto} dport {_ports(ports)} accept")
            out.append(f"iifname {servers} {proto} sport {_ports(ports)} accept")
    return out


def bridge_text(b: BridgeRules, name: str = TABLE) -> str:
    """``table bridge zfw { ... }``."""
    ports = _set((*b.client_ports, *b.server_ports))
    tcp_allowed = [r for r in _allowed(b) if " tcp " in r]
    pre = [
        "type filter hook prerouting priority -300; policy accept;",
        *tcp_allowed,
        f"iifname {ports} meta l4proto tcp meta pkttype set host ether daddr set {b.mac} "
        f'comment "{b.device}: TCP to the proxies"',
    ]
    fwd = [
        "type filter hook forward priority filter; policy accept;",
        f"iifname {ports} jump ZFWBR",
    ]
    zfwbr = [
        "ether type arp accept",
        f"icmpv6 type {{ {', '.join(ND)} }} accept",
        "udp sport 68 udp dport 67 accept",
        "udp sport 67 udp dport 68 accept",
        "udp sport 546 udp dport 547 accept",
        "udp sport 547 udp dport 546 accept",
        *_allowed(b),
        f'log prefix "{b.log_prefix} bridge drop: " drop',
    ]
    lines = [f"table bridge {name} {{"]
    for chain, rules in (("PREROUTING", pre), ("FORWARD", fwd), ("ZFWBR", zfwbr)):
        lines.append(f"\tchain {chain} {{")
        lines += [f"\t\t{r}" for r in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def remove_script(name: str = TABLE) -> str:
    """Remove zfw's bridge table, if there is one (part of a larger script)."""
    return f"table bridge {name}\ndelete table bridge {name}\n"
