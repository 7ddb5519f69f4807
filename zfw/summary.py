"""A policy described for people (``zfw check``) and for machines (``--json``)."""

from __future__ import annotations

from typing import Any

from zfw.model import DirectedRouter, InbandRouter, Listener, Policy, Service
from zfw.zones import INBOUND, OUTBOUND


def _router(svc: Service) -> str:
    r = svc.router
    if isinstance(r, DirectedRouter):
        return f"directed to {r.target}" + (", forging client address" if r.forge_addr else "")
    if isinstance(r, InbandRouter):
        return "in-band (the server named in each request)" + (
            ", forging client address" if r.forge_addr else ""
        )
    text = "transparent"
    if r.forced_port:
        text += f", port forced to {r.forced_port}"
    return text + (", forging client address" if r.forge_addr else "")


def _listener(lst: Listener) -> dict[str, Any]:
    return {
        "address": str(lst.address),
        "service": lst.service,
        "transparent": lst.transparent,
        "intercept": [str(p) for p in lst.intercept],
    }


def permitted_pairs(policy: Policy) -> list[tuple[str, str, list[str]]]:
    """For each (client zone, server zone), the services permitted between them."""
    services = sorted(policy.all_services())
    zones = list(policy.zones)
    out = []
    for src in zones:
        outbound = [s for s in services if policy.zones.permits(src, s, OUTBOUND)]
        if not outbound:
            continue
        for dst in zones:
            allowed = [s for s in outbound if policy.zones.permits(dst, s, INBOUND)]
            if allowed:
                out.append((src.name, dst.name, allowed))
    return out


def describe(policy: Policy) -> dict[str, Any]:
    """The policy as plain data."""
    instances = {}
    for inst in policy.instances.values():
        if policy.instance_name is not None and inst.name != policy.instance_name:
            continue
        instances[inst.name] = {
            "max_sessions": inst.options.max_sessions,
            "shutdown_grace": inst.options.shutdown_grace,
            "services": {
                s.name: {
                    "proxy": s.proxy_class.__name__,
                    "router": _router(s),
                    "max_sessions": s.max_sessions,
                }
                for s in inst.services.values()
            },
            "listeners": [_listener(lst) for lst in inst.listeners],
        }
    pf = policy.packet_filter
    return {
        "policy": policy.path,
        "instance": policy.instance_name,
        "zones": {
            z.name: {
                "addresses": [str(n) for n in z.networks],
                "admin_parent": z.admin_parent,
                "umbrella": z.umbrella,
                "inbound_services": list(z.inbound_services),
                "outbound_services": list(z.outbound_services),
            }
            for z in policy.zones
        },
        "instances": instances,
        "local_services": {
            s.name: {
                "protocol": s.protocol,
                "ports": [str(p) for p in s.ports],
                "zones": list(s.zones),
            }
            for s in policy.local_services
        },
        "permitted": [
            {"from": a, "to": b, "services": svcs} for a, b, svcs in permitted_pairs(policy)
        ],
        "packet_filter": {
            "tproxy_mark": hex(pf.tproxy_mark),
            "tproxy_mask": hex(pf.tproxy_mask),
            "route_table": pf.route_table,
        },
        "warnings": list(policy.warnings),
    }


def render(data: dict[str, Any]) -> str:
    """The plain data of :func:`describe` as readable text."""
    lines = [f"policy {data['policy']}: OK"]
    lines.append("\nzones:")
    for name, z in data["zones"].items():
        extra = []
        if z["admin_parent"]:
            extra.append(f"parent {z['admin_parent']}")
        if z["umbrella"]:
            extra.append("umbrella")
        tail = f"  ({', '.join(extra)})" if extra else ""
        lines.append(f"  {name}: {', '.join(z['addresses'])}{tail}")
        lines.append(
            f"      out: {', '.join(z['outbound_services']) or '-'}"
            f"   in: {', '.join(z['inbound_services']) or '-'}"
        )
    for name, inst in data["instances"].items():
        lines.append(f"\ninstance {name} (max {inst['max_sessions']} sessions):")
        for sname, s in inst["services"].items():
            lines.append(
                f"  service {sname}: {s['proxy']}, {s['router']}, max {s['max_sessions']} sessions"
            )
        for lst in inst["listeners"]:
            mode = "transparent" if lst["transparent"] else "plain"
            ports = ", ".join(lst["intercept"]) or "nothing"
            what = f", intercepts {ports}" if lst["transparent"] else ""
            lines.append(f"  listener {lst['address']} -> {lst['service']} ({mode}{what})")
    if data["local_services"]:
        lines.append("\nlocal services (the firewall itself):")
        for name, s in data["local_services"].items():
            lines.append(
                f"  {name}: {s['protocol']}/{','.join(s['ports'])} from {', '.join(s['zones'])}"
            )
    lines.append("\npermitted (client zone -> server zone: services):")
    for p in data["permitted"] or [{"from": "-", "to": "-", "services": ["nothing"]}]:
        lines.append(f"  {p['from']} -> {p['to']}: {', '.join(p['services'])}")
    for w in data["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
