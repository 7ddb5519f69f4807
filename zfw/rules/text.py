"""The ruleset as ``iptables-restore`` text: what a person reviews."""

from __future__ import annotations

from zfw.rules.model import Ruleset, Table


def table_text(table: Table) -> str:
    """One table in iptables-restore form (built-in chains keep their policy)."""
    lines = [f"*{table.name}"]
    for c in table.chains:
        lines.append(f":{c.name} {'ACCEPT' if c.builtin else '-'} [0:0]")
    for c in table.chains:
        for r in c.rules:
            lines.append(" ".join(["-A", c.name, *r.args()]))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def restore_text(ruleset: Ruleset, family: int) -> str:
    """Every table of a family, for iptables-restore (4) or ip6tables-restore (6)."""
    return "".join(table_text(t) for t in ruleset.family(family))


def routing_text(ruleset: Ruleset) -> str:
    """The policy routing, as ip commands."""
    r = ruleset.routing
    lines = []
    for v, any_ in (("", "0.0.0.0/0"), ("-6 ", "::/0")):
        lines.append(f"ip {v}rule add fwmark {r.mark:#x}/{r.mask:#x} lookup {r.table}")
        lines.append(f"ip {v}route add local {any_} dev lo table {r.table}")
    return "\n".join(lines) + "\n"


def full_text(ruleset: Ruleset, routing: bool = True) -> str:
    """IPv4 and IPv6 tables and (``routing``) the routing, commented, for ``zfw rules show``."""
    return (
        "# IPv4 (iptables-restore)\n"
        + restore_text(ruleset, 4)
        + "\n# IPv6 (ip6tables-restore)\n"
        + restore_text(ruleset, 6)
        + ("\n# policy routing\n" + routing_text(ruleset) if routing else "")
    )
