"""The compiled ruleset as one nftables table, ``table inet zfw``, without I/O.

The iptables backend loads a mangle and a filter table per family; nftables
takes both families and both tables in one ``inet`` table of zfw's own, with
base chains at the same hooks and priorities (``PREROUTING`` at
``prerouting``/``mangle``, ``INPUT`` and ``FORWARD`` at ``filter``) and the
same chains below them (``ZFWPRE``, ``PR<zone>``, ``TP<port>``, ``DIVERT``,
``ZFWIN``, ``LO<zone>``, ``ZFWFWD``, ``ZFWDROP``).

A chain of the two families becomes one chain: rules that name an address
(or ICMP, or TPROXY) can only match their own family; the others, where both
families have them in the same order, are written once; any other rule gets a
``meta nfproto`` of its family. Each family thus sees exactly its iptables
rules, in their order (:func:`merge` keeps the order within each family).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

from zfw.rules.model import BridgeRules, Match, Rule, Ruleset
from zfw.rules.nftbridge import bridge_text, remove_script

TABLE = "zfw"
#: Base chains: name -> (hook, priority), as the iptables tables they stand for.
BASE = {
    "PREROUTING": ("prerouting", "mangle"),
    "INPUT": ("input", "filter"),
    "FORWARD": ("forward", "filter"),
}


@attrs.frozen
class NftRule:
    """A rule and the family it is limited to (None: both).

    A dispatch by source address is one verdict map instead of a rule per network:
    ``vmap`` holds disjoint address ranges ``(first, last, chain)`` of family
    ``family``, and ``rule`` the goto or jump that each of them makes."""

    rule: Rule
    family: int | None = None
    vmap: tuple[tuple[int, int, str], ...] = ()

    def expanded(self) -> list[Rule]:
        """The plain rules this one stands for (a verdict map: one per network)."""
        if not self.vmap:
            return [self.rule]
        make = ipaddress.IPv4Address if self.family == 4 else ipaddress.IPv6Address
        return [
            attrs.evolve(self.rule, src=str(net), target=chain)
            for first, last, chain in self.vmap
            for net in ipaddress.summarize_address_range(make(first), make(last))
        ]


@attrs.frozen
class NftChain:
    """A chain of the inet table; ``hook`` for a base chain."""

    name: str
    rules: tuple[NftRule, ...]
    hook: tuple[str, str] | None = None


@attrs.frozen
class NftTable:
    """``table inet zfw``, and the bridge part (``table bridge zfw``) if any."""

    chains: tuple[NftChain, ...]
    bridge: BridgeRules | None = None
    #: Leave a loaded bridge part as it is (the closed ruleset).
    keep_bridge: bool = False

    def chain(self, name: str) -> NftChain:
        """A chain by name."""
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)

    def rules(self, name: str, family: int) -> list[Rule]:
        """The rules of chain ``name`` that a packet of ``family`` is matched against."""
        return [
            x for r in self.chain(name).rules if r.family in (None, family) for x in r.expanded()
        ]


def _own_family(rule: Rule) -> bool:
    """Whether ``rule`` can only ever match packets of the family it was compiled for."""
    return bool(
        rule.src or rule.dst or rule.protocol in ("icmp", "ipv6-icmp") or rule.target == "TPROXY"
    )


def _lcs(a: Sequence[Rule], b: Sequence[Rule]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of ``a`` and ``b``."""
    n, m = len(a), len(b)
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            dp[i][j] = dp[i + 1][j + 1] + 1 if a[i] == b[j] else max(dp[i + 1][j], dp[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif dp[i + 1][j] >= dp[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def merge(v4: Sequence[Rule], v6: Sequence[Rule]) -> tuple[NftRule, ...]:
    """One chain of both families' rules, each family's in its own order."""
    shared_a = [i for i, r in enumerate(v4) if not _own_family(r)]
    shared_b = [j for j, r in enumerate(v6) if not _own_family(r)]
    common = _lcs([v4[i] for i in shared_a], [v6[j] for j in shared_b])
    anchors = [(shared_a[x], shared_b[y]) for x, y in common]
    out: list[NftRule] = []
    i = j = 0

    def own(rule: Rule, family: int) -> NftRule:
        return NftRule(rule, None if _own_family(rule) else family)

    for ai, bj in [*anchors, (len(v4), len(v6))]:
        out += [own(r, 4) for r in v4[i:ai]]
        out += [own(r, 6) for r in v6[j:bj]]
        if ai < len(v4):
            out.append(NftRule(v4[ai]))
        i, j = ai + 1, bj + 1
    return tuple(out)


def _dispatch(rule: Rule) -> bool:
    """``-s CIDR -g CHAIN`` (or ``-j``) and nothing else: a verdict map can take it."""
    return bool(
        rule.src
        and not (rule.dst or rule.in_iface or rule.protocol or rule.matches or rule.comment)
        and rule.target not in ("ACCEPT", "DROP", "REJECT", "RETURN", "TPROXY", "MARK", "LOG")
    )


def _vmap(run: list[Rule], family: int) -> NftRule:
    """Rules ``-s CIDR -g CHAIN`` (the first match wins) as disjoint ranges."""
    taken: list[tuple[int, int]] = []  # ranges decided by earlier rules, sorted
    ranges: list[tuple[int, int, str]] = []
    for rule in run:
        net = ipaddress.ip_network(rule.src)  # type: ignore[arg-type]
        lo, hi = int(net.network_address), int(net.broadcast_address)
        cursor = lo
        for a, b in taken:
            if b < cursor or a > hi:
                continue
            if a > cursor:
                ranges.append((cursor, a - 1, rule.target))
            cursor = max(cursor, b + 1)
        if cursor <= hi:
            ranges.append((cursor, hi, rule.target))
        taken = sorted([*taken, (lo, hi)])
        merged: list[tuple[int, int]] = []
        for a, b in taken:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        taken = merged
    ranges.sort()
    joined: list[tuple[int, int, str]] = []
    for a, b, chain in ranges:
        if joined and joined[-1][2] == chain and joined[-1][1] + 1 == a:
            joined[-1] = (joined[-1][0], b, chain)
        else:
            joined.append((a, b, chain))
    shape = attrs.evolve(run[0], src=None, target=run[0].target)
    return NftRule(shape, family, tuple(joined))


def _ports(rule: Rule) -> tuple[str, str] | None:
    """``(match, ports)`` when a rule's only port test is one ``--dport``."""
    found = [(m.name, v) for m in rule.matches for o, v, n in m.options if o == "dport" and not n]
    return found[0] if len(found) == 1 and found[0][1] is not None else None  # type: ignore[return-value]


def _with_ports(rule: Rule, ports: str) -> Rule:
    matches = tuple(
        Match(m.name, tuple((o, ports if o == "dport" else v, n) for o, v, n in m.options))
        for m in rule.matches
    )
    return attrs.evolve(rule, matches=matches)


def _compact(rules: Sequence[NftRule]) -> tuple[NftRule, ...]:
    """Runs of source dispatch become verdict maps; neighbours that differ only in
    their destination port become one rule with a port set."""
    out: list[NftRule] = []
    i = 0
    while i < len(rules):
        r = rules[i]
        if _dispatch(r.rule) and r.family is None:
            family = 6 if ":" in (r.rule.src or "") else 4
            j = i
            while (
                j < len(rules)
                and _dispatch(rules[j].rule)
                and rules[j].family is None
                and (":" in (rules[j].rule.src or "")) == (family == 6)
                and rules[j].rule.goto == r.rule.goto
            ):
                j += 1
            if j - i > 1:
                out.append(_vmap([x.rule for x in rules[i:j]], family))
                i = j
                continue
        ports = _ports(r.rule)
        if out and ports and not out[-1].vmap:
            prev = out[-1]
            before = _ports(prev.rule)
            if (
                before
                and before[0] == ports[0]
                and prev.family == r.family
                and _with_ports(prev.rule, "") == _with_ports(r.rule, "")
            ):
                out[-1] = NftRule(_with_ports(prev.rule, f"{before[1]},{ports[1]}"), r.family)
                i += 1
                continue
        out.append(r)
        i += 1
    return tuple(out)


def build(ruleset: Ruleset) -> NftTable:
    """The inet table of a compiled ruleset."""
    chains: dict[str, dict[int, tuple[Rule, ...]]] = {}
    for family, table in ruleset.tables:
        for c in table.chains:
            chains.setdefault(c.name, {})[family] = c.rules
    out = []
    for name, by_family in chains.items():
        rules = merge(by_family.get(4, ()), by_family.get(6, ()))
        if 4 not in by_family or 6 not in by_family:  # a chain of one family only
            only = 4 if 4 in by_family else 6
            rules = tuple(NftRule(r.rule, None if _own_family(r.rule) else only) for r in rules)
        out.append(NftChain(name, _compact(rules), BASE.get(name)))
    return NftTable(tuple(out), ruleset.bridge, ruleset.closed)


# --- text ------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mark_set(value: str) -> str:
    want, _, mask = value.partition("/")
    v, m = int(want, 16), int(mask, 16)
    if v == m:
        return f"meta mark set meta mark | {v:#x}"
    return f"meta mark set meta mark & {~m & 0xFFFFFFFF:#x} ^ {v:#x}"


def _element(first: int, last: int, family: int) -> str:
    make = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    nets = list(ipaddress.summarize_address_range(make(first), make(last)))
    if len(nets) == 1:
        net = nets[0]
        return str(net.network_address) if net.num_addresses == 1 else str(net)
    return f"{make(first)}-{make(last)}"


def rule_text(r: NftRule) -> str:
    """One rule in nft syntax."""
    rule = r.rule
    if r.vmap:
        ip = "ip6" if r.family == 6 else "ip"
        verb = "goto" if rule.goto else "jump"
        elements = ", ".join(
            f"{_element(a, b, r.family or 4)} : {verb} {chain}" for a, b, chain in r.vmap
        )
        return f"{ip} saddr vmap {{ {elements} }}"
    six = bool(
        (rule.src and ":" in rule.src)
        or (rule.dst and ":" in rule.dst)
        or rule.protocol == "ipv6-icmp"
        or dict(rule.target_options).get("on-ip", "").count(":")
    )
    ip = "ip6" if six else "ip"
    parts: list[str] = []
    if r.family is not None:
        parts.append(f"meta nfproto ipv{r.family}")
    if rule.in_iface:
        parts.append(f"iifname {_quote(rule.in_iface)}")
    if rule.src and not rule.src.endswith("/0"):
        parts.append(f"{ip} saddr {rule.src}")
    elif rule.src:
        parts.append(f"meta nfproto ipv{6 if six else 4}")
    if rule.dst and not rule.dst.endswith("/0"):
        parts.append(f"{ip} daddr {rule.dst.removesuffix('/32').removesuffix('/128')}")
    elif rule.dst:
        parts.append(f"meta nfproto ipv{6 if six else 4}")
    has_port = any(opt == "dport" for m in rule.matches for opt, _v, _n in m.options)
    if rule.protocol and not (has_port and rule.protocol in ("tcp", "udp")):
        parts.append(f"meta l4proto {rule.protocol}")
    for m in rule.matches:
        for opt, value, negated in m.options or (("", None, False),):
            if m.name == "socket":
                parts.append("socket transparent 1")
            elif opt == "syn":
                parts.append(f"tcp flags & (fin|syn|rst|ack) {'!=' if negated else '=='} syn")
            elif opt == "dport":
                assert value is not None
                ports = [p.replace(":", "-") for p in value.split(",")]
                shown = ports[0] if len(ports) == 1 else "{ " + ", ".join(ports) + " }"
                parts.append(f"{m.name} dport {'!= ' if negated else ''}{shown}")
            elif opt == "mark":
                assert value is not None
                want, _, mask = value.partition("/")
                parts.append(f"meta mark & {int(mask, 16):#x} == {int(want, 16):#x}")
            elif opt == "ctstate":
                assert value is not None
                parts.append(f"ct state {value.lower()}")
            else:
                raise ValueError(f"no nft form for -m {m.name} --{opt}")
    opts = dict(rule.target_options)
    t = rule.target
    if t in ("ACCEPT", "DROP", "RETURN"):
        parts.append(t.lower())
    elif t == "TPROXY":
        on_ip = opts["on-ip"]
        addr = "" if on_ip in ("0.0.0.0", "::") else (f"[{on_ip}]" if ":" in on_ip else on_ip)
        parts.append(f"tproxy {ip} to {addr}:{opts['on-port']}")
        parts.append(_mark_set(opts["tproxy-mark"]))
        parts.append("accept")
    elif t == "MARK":
        parts.append(_mark_set(opts["set-xmark"]))
    elif t == "LOG":
        parts.append(f"log prefix {_quote(opts['log-prefix'].strip(chr(34)))}")
    elif t == "REJECT":  # port unreachable, as iptables' REJECT by default
        icmp = "icmpv6" if opts.get("reject-with", "").startswith("icmp6") else "icmp"
        parts.append(f"reject with {icmp} port-unreachable")
    else:
        parts.append(f"{'goto' if rule.goto else 'jump'} {t}")
    if rule.comment:
        parts.append(f"comment {_quote(rule.comment)}")
    return " ".join(parts)


def table_text(table: NftTable, name: str = TABLE) -> str:
    """The table as an nft script body (``table inet zfw { ... }``)."""
    lines = [f"table inet {name} {{"]
    for c in table.chains:
        lines.append(f"\tchain {c.name} {{")
        if c.hook is not None:
            hook, priority = c.hook
            lines.append(f"\t\ttype filter hook {hook} priority {priority}; policy accept;")
        lines += [f"\t\t{rule_text(r)}" for r in c.rules]
        lines.append("\t}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    return text + (bridge_text(table.bridge, name) if table.bridge is not None else "")


def replace_script(table: NftTable | None, name: str = TABLE, bridged: bool = False) -> str:
    """An nft script that replaces zfw's tables (``inet``, and ``bridge`` when the new
    table has a bridge part or ``bridged``: one is loaded; or removes them, for None) in
    one transaction: nft -f applies a whole script or nothing."""
    script = f"table inet {name}\ndelete table inet {name}\n"
    keep = table is not None and table.keep_bridge and table.bridge is None
    if (bridged and not keep) or (table is not None and table.bridge is not None):
        script += remove_script(name)
    return script + (table_text(table, name) if table is not None else "")
