"""The compiled packet filter as plain data: tables, chains, rules and routing."""

from __future__ import annotations

import attrs

from zfw.routing import TproxyRouting

BUILTIN = {
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}


@attrs.frozen
class Match:
    """``-m NAME --opt value ...``; an option's value ``None`` is a flag."""

    name: str
    options: tuple[tuple[str, str | None, bool], ...] = ()  # (option, value, negated)


@attrs.frozen
class Rule:
    """One rule, in the vocabulary zfw emits."""

    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    protocol: str | None = None
    matches: tuple[Match, ...] = ()
    target: str = "ACCEPT"
    target_options: tuple[tuple[str, str], ...] = ()
    goto: bool = False
    comment: str | None = None

    def args(self) -> list[str]:
        """The rule as iptables arguments (after ``-A CHAIN``)."""
        out: list[str] = []
        # iptables-save's canonical form, so that `zfw rules diff` compares like with like:
        # no address for "any", and --syn spelled out.
        if self.src and not self.src.endswith("/0"):
            out += ["-s", self.src]
        if self.dst and not self.dst.endswith("/0"):
            out += ["-d", self.dst]
        if self.in_iface:
            out += ["-i", self.in_iface]
        if self.protocol:
            out += ["-p", self.protocol]
        for m in self.matches:
            out += ["-m", m.name]
            for opt, value, negated in m.options:
                if negated:
                    out.append("!")
                if opt == "syn":
                    out += ["--tcp-flags", "FIN,SYN,RST,ACK", "SYN"]
                    continue
                out.append(f"--{opt}")
                if value is not None:
                    out.append(value)
        if self.comment:
            # Quoted only when needed, as iptables-save prints it.
            quoted = self.comment if self.comment.isidentifier() else f'"{self.comment}"'
            out += ["-m", "comment", "--comment", quoted]
        out += ["-g" if self.goto else "-j", self.target]
        for opt, value in self.target_options:
            out += [f"--{opt}", value]
        return out


@attrs.frozen
class Chain:
    """A chain zfw owns, or a built-in chain zfw adds its jumps to."""

    name: str
    rules: tuple[Rule, ...] = ()

    @property
    def builtin(self) -> bool:
        """Built-in chains are shared with other tools: zfw owns only its rules there."""
        return self.name.isupper() and self.name in {c for cs in BUILTIN.values() for c in cs}


@attrs.frozen
class Table:
    """One table (``mangle`` or ``filter``) of one address family."""

    name: str
    chains: tuple[Chain, ...]

    def chain(self, name: str) -> Chain:
        """A chain by name."""
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)


@attrs.frozen
class BridgeRules:
    """The bridge part (nft backend only): TCP arriving on ``ports`` goes up to the
    firewall's IP stack (``mac``: the bridge's own), bridged frames are dropped; but
    for ``allowed`` (``(protocol, ports)``: ``ping``, ``icmp``, ``tcp``/``udp`` to ports
    from a client port, their replies from a server port)."""

    device: str
    client_ports: tuple[str, ...]
    server_ports: tuple[str, ...]
    mac: str
    allowed: tuple[tuple[str, str], ...] = ()
    log_prefix: str = "zfw"


@attrs.frozen
class Ruleset:
    """Everything the packet filter needs, per family (4 and 6), and the bridge part."""

    tables: tuple[tuple[int, Table], ...]
    routing: TproxyRouting
    bridge: BridgeRules | None = None
    #: The closed ruleset (:func:`~zfw.rules.compiler.closed_ruleset`): a bridge part
    #: loaded already stays (it drops what it does not hand to the IP stack, and the
    #: IP stack, without TPROXY, drops the rest), lest the bridge forward everything.
    closed: bool = False

    def family(self, family: int) -> tuple[Table, ...]:
        """The tables of one family."""
        return tuple(t for f, t in self.tables if f == family)

    def table(self, family: int, name: str) -> Table:
        """One table."""
        for t in self.family(family):
            if t.name == name:
                return t
        raise KeyError((family, name))


#: Bumped when the shape of :func:`ruleset_to_data` changes; older records are not read.
DATA_FORMAT = 1


def ruleset_to_data(ruleset: Ruleset) -> dict:
    """The ruleset as JSON-able data (for the last good ruleset on disk)."""
    return {"format": DATA_FORMAT, **attrs.asdict(ruleset)}


def _rule(d: dict) -> Rule:
    return Rule(
        src=d["src"],
        dst=d["dst"],
        in_iface=d["in_iface"],
        protocol=d["protocol"],
        matches=tuple(
            Match(m["name"], tuple((o, v, bool(n)) for o, v, n in m["options"]))
            for m in d["matches"]
        ),
        target=d["target"],
        target_options=tuple((o, v) for o, v in d["target_options"]),
        goto=bool(d["goto"]),
        comment=d["comment"],
    )


def ruleset_from_data(data: dict) -> Ruleset:
    """The inverse of :func:`ruleset_to_data`; ValueError for data of another shape."""
    try:
        if data.get("format") != DATA_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {DATA_FORMAT}")
        tables = tuple(
            (
                int(family),
                Table(
                    t["name"],
                    tuple(
                        Chain(c["name"], tuple(_rule(r) for r in c["rules"])) for c in t["chains"]
                    ),
                ),
            )
            for family, t in data["tables"]
        )
        r = data["routing"]
        routing = TproxyRouting(int(r["mark"]), int(r["mask"]), int(r["table"]), int(r["priority"]))
        b = data.get("bridge")
        bridge = (
            BridgeRules(
                str(b["device"]),
                tuple(map(str, b["client_ports"])),
                tuple(map(str, b["server_ports"])),
                str(b["mac"]),
                tuple((str(p), str(v)) for p, v in b["allowed"]),
                str(b["log_prefix"]),
            )
            if b
            else None
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"not a ruleset: {e!r}") from None
    return Ruleset(tables, routing, bridge, bool(data.get("closed", False)))
