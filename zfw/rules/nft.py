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

from collections.abc import Sequence

import attrs

from zfw.rules.model import Rule, Ruleset

TABLE = "zfw"
#: Base chains: name -> (hook, priority), as the iptables tables they stand for.
BASE = {
    "PREROUTING": ("prerouting", "mangle"),
    "INPUT": ("input", "filter"),
    "FORWARD": ("forward", "filter"),
}


@attrs.frozen
class NftRule:
    """A rule and the family it is limited to (None: both)."""

    rule: Rule
    family: int | None = None


@attrs.frozen
class NftChain:
    """A chain of the inet table; ``hook`` for a base chain."""

    name: str
    rules: tuple[NftRule, ...]
    hook: tuple[str, str] | None = None


@attrs.frozen
class NftTable:
    """``table inet zfw``."""

    chains: tuple[NftChain, ...]

    def chain(self, name: str) -> NftChain:
        """A chain by name."""
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)

    def rules(self, name: str, family: int) -> list[Rule]:
        """The rules of chain ``name`` that a packet of ``family`` is matched against."""
        return [r.rule for r in self.chain(name).rules if r.family in (None, family)]


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
        out.append(NftChain(name, rules, BASE.get(name)))
    return NftTable(tuple(out))


# --- text ------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mark_set(value: str) -> str:
    want, _, mask = value.partition("/")
    v, m = int(want, 16), int(mask, 16)
    if v == m:
        return f"meta mark set meta mark | {v:#x}"
    return f"meta mark set meta mark & {~m & 0xFFFFFFFF:#x} ^ {v:#x}"


def rule_text(r: NftRule) -> str:
    """One rule in nft syntax."""
    rule = r.rule
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
                lo, _, hi = value.partition(":")
                parts.append(
                    f"{m.name} dport {'!= ' if negated else ''}{lo}{'-' + hi if hi else ''}"
                )
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
    return "\n".join(lines) + "\n"


def replace_script(table: NftTable | None, name: str = TABLE) -> str:
    """An nft script that replaces zfw's table (or removes it, for None) in one
    transaction: nft -f applies a whole script or nothing."""
    script = f"table inet {name}\ndelete table inet {name}\n"
    return script + (table_text(table, name) if table is not None else "")
