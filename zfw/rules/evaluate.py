"""A small interpreter of compiled rulesets: what happens to one packet.

It understands exactly the vocabulary the compiler emits. The rule tests
use it to check the packet filter against the engine's own decision; the
lock-out guard uses it to see whether a management connection survives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from zfw.routing import TproxyRouting
from zfw.rules.model import Rule, Ruleset, Table
from zfw.rules.nft import NftTable


@attrs.frozen
class Packet:
    """A packet arriving at the firewall (TCP unless ``protocol`` says otherwise)."""

    src: str
    dst: str
    dport: int
    syn: bool = True
    socket: bool = False  # a local socket matches it (-m socket)
    established: bool = False
    mark: int = 0
    in_iface: str = "eth0"
    protocol: str = "tcp"


@attrs.frozen
class Verdict:
    """``action`` is 'tproxy' (to ``port``), 'divert', 'accept', 'drop' or 'reject'."""

    action: str
    port: int | None = None
    chain_path: tuple[str, ...] = ()


def _in(net: str, addr: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(net)


def _matches(rule: Rule, p: Packet, mark: int) -> bool:
    if rule.src and not _in(rule.src, p.src):
        return False
    if rule.dst and not _in(rule.dst, p.dst):
        return False
    if rule.in_iface and rule.in_iface != p.in_iface:
        return False
    if rule.protocol and rule.protocol != p.protocol:
        return False
    for m in rule.matches:
        for opt, value, negated in m.options or (("", None, False),):
            if m.name == "socket":
                ok = p.socket
            elif opt == "syn":
                ok = p.syn
            elif opt == "dport":  # a port, a range lo:hi, or (nft) a list of them
                assert value is not None
                ok = False
                for item in value.split(","):
                    lo, _, hi = item.partition(":")
                    ok = ok or int(lo) <= p.dport <= int(hi or lo)
            elif opt == "mark":
                assert value is not None
                want, _, mask = value.partition("/")
                ok = mark & int(mask, 16) == int(want, 16)
            elif opt == "ctstate":
                ok = p.established
            else:
                raise ValueError(f"unknown match {m.name} --{opt}")
            if ok == negated:
                return False
    return True


def run_chain(
    table: Table | Callable[[str], Sequence[Rule]], chain: str, p: Packet, mark: int = 0
) -> tuple[Verdict | None, int]:
    """Walk ``chain``; a verdict, or None when the packet falls through (and the mark).

    ``table``: an iptables table, or a function from a chain's name to its rules. A
    built-in chain the ruleset does not name (the closed ruleset's) has no rules of zfw's."""
    lookup = table if callable(table) else (lambda n: table.chain(n).rules)  # type: ignore[union-attr]

    def rules_of(name: str) -> Sequence[Rule]:
        try:
            return lookup(name)
        except KeyError:
            if name in ("PREROUTING", "INPUT", "FORWARD"):
                return ()
            raise

    path = [chain]
    stack: list[tuple[str, int]] = []
    name, i = chain, 0
    while True:
        rules = rules_of(name)
        if i >= len(rules):
            if not stack:
                return None, mark
            name, i = stack.pop()
            continue
        rule = rules[i]
        i += 1
        if not _matches(rule, p, mark):
            continue
        t = rule.target
        if t == "ACCEPT":
            return Verdict("accept", None, tuple(path)), mark
        if t == "DROP":
            return Verdict("drop", None, tuple(path)), mark
        if t == "REJECT":
            return Verdict("reject", None, tuple(path)), mark
        if t == "RETURN":
            if not stack:
                return None, mark
            name, i = stack.pop()
            continue
        if t == "TPROXY":
            opts = dict(rule.target_options)
            want, _, mask = opts["tproxy-mark"].partition("/")
            mark = (mark & ~int(mask, 16)) | int(want, 16)
            return Verdict("tproxy", int(opts["on-port"]), tuple(path)), mark
        if t == "MARK":
            want, _, mask = dict(rule.target_options)["set-xmark"].partition("/")
            mark = (mark & ~int(mask, 16)) ^ int(want, 16)
            continue
        if t == "LOG":
            continue
        path.append(t)
        if not rule.goto:
            stack.append((name, i))
        name, i = t, 0


def evaluate(ruleset: Ruleset, p: Packet, local_addresses: frozenset[str] = frozenset()) -> Verdict:
    """The fate of ``p``: diverted by TPROXY or the socket match, accepted, or dropped."""
    family = ipaddress.ip_address(p.src).version
    mangle = ruleset.table(family, "mangle")
    filt = ruleset.table(family, "filter")
    return _walk(mangle, filt, ruleset.routing, p, local_addresses)


def evaluate_nft(
    table: NftTable,
    routing: TproxyRouting,
    p: Packet,
    local_addresses: frozenset[str] = frozenset(),
) -> Verdict:
    """The same for the nftables form: one inet table, each rule limited to its family."""
    family = ipaddress.ip_address(p.src).version

    def rules_of(name: str) -> Sequence[Rule]:
        return table.rules(name, family)

    return _walk(rules_of, rules_of, routing, p, local_addresses)


def _walk(
    mangle: Any, filt: Any, routing: TproxyRouting, p: Packet, local_addresses: frozenset[str]
) -> Verdict:
    verdict, mark = run_chain(mangle, "PREROUTING", p, p.mark)
    if verdict is not None and verdict.action == "tproxy":
        return verdict
    if verdict is not None and verdict.action == "drop":
        return verdict
    local = p.dst in local_addresses or (mark & routing.mask) == routing.mark
    if verdict is not None and verdict.action == "accept" and (mark & routing.mask) == routing.mark:
        return Verdict("divert", None, verdict.chain_path)
    chain = "INPUT" if local else "FORWARD"
    fverdict, _ = run_chain(filt, chain, p, mark)
    return fverdict or Verdict("accept", None, (chain,))
