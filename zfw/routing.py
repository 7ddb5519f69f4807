"""The policy routing TPROXY needs, applied idempotently with pyroute2.

Packets carrying the TPROXY mark are looked up in a table whose only route
is ``local default dev lo``, so the kernel delivers them to the local socket
that TPROXY (or the socket match) chose. Both for IPv4 and IPv6::

    ip rule add fwmark MARK/MASK lookup TABLE
    ip route add local default dev lo table TABLE

The kernel accepts duplicate rules silently, so each is compared first.
"""

from __future__ import annotations

import socket
from typing import Any

import attrs

FAMILIES = ((socket.AF_INET, "0.0.0.0/0"), (socket.AF_INET6, "::/0"))
RTN_LOCAL = 2


@attrs.frozen
class TproxyRouting:
    """The rule and route of one TPROXY setup."""

    mark: int
    mask: int
    table: int
    priority: int = 100


def _has_rule(ipr: Any, family: int, r: TproxyRouting) -> bool:
    for rule in ipr.get_rules(family=family):
        if (
            rule.get_attr("FRA_FWMARK") == r.mark
            and rule.get_attr("FRA_FWMASK") == r.mask
            and rule.get_attr("FRA_TABLE") == r.table
        ):
            return True
    return False


def _has_route(ipr: Any, family: int, r: TproxyRouting) -> bool:
    for route in ipr.get_routes(family=family, table=r.table):
        if route.get("type") == RTN_LOCAL and route.get("dst_len") == 0:
            return True
    return False


def _rule(ipr: Any, op: str, family: int, r: TproxyRouting) -> None:
    ipr.rule(op, family=family, fwmark=r.mark, fwmask=r.mask, table=r.table, priority=r.priority)


def _route(ipr: Any, op: str, family: int, dst: str, r: TproxyRouting, lo: int) -> None:
    # A route of type 'local' must have scope 'host', or the kernel refuses it.
    ipr.route(op, family=family, dst=dst, type="local", table=r.table, oif=lo, scope="host")


def apply(ipr: Any, r: TproxyRouting) -> list[str]:
    """Add what is missing; return what was added, for the log."""
    lo = ipr.link_lookup(ifname="lo")[0]
    done = []
    if not ipr.get_links(lo)[0]["flags"] & 1:  # IFF_UP: a local route needs lo up
        ipr.link("set", index=lo, state="up")
        done.append("ip link set lo up")
    for family, dst in FAMILIES:
        v = "-6 " if family == socket.AF_INET6 else ""
        if not _has_rule(ipr, family, r):
            _rule(ipr, "add", family, r)
            done.append(f"ip {v}rule add fwmark {r.mark:#x}/{r.mask:#x} lookup {r.table}")
        if not _has_route(ipr, family, r):
            _route(ipr, "add", family, dst, r, lo)
            done.append(f"ip {v}route add local default dev lo table {r.table}")
    return done


def remove(ipr: Any, r: TproxyRouting) -> None:
    """Remove the rule and route (every copy of the rule)."""
    lo = ipr.link_lookup(ifname="lo")[0]
    for family, dst in FAMILIES:
        while _has_rule(ipr, family, r):
            _rule(ipr, "del", family, r)
        if _has_route(ipr, family, r):
            _route(ipr, "del", family, dst, r, lo)


def present(ipr: Any, r: TproxyRouting) -> bool:
    """Whether rule and route are in place for both families."""
    return all(_has_rule(ipr, f, r) and _has_route(ipr, f, r) for f, _ in FAMILIES)
