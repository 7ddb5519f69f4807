"""Put a compiled ruleset into the kernel, and take zfw's rules out again.

Each table is changed in one python-iptables commit (libiptc replaces the
table as a whole), so the packet filter is never half-applied. zfw owns its
chains (``DIVERT``, ``ZFW*`` and the ``PR``/``LO`` zone chains that its
dispatch chains lead to) and its jumps out of the built-in chains; other
tools' chains and rules are left as they are. python-iptables speaks only
the legacy xtables interface, and loading the IPv4 and IPv6 TPROXY
extensions into one process fails ("TPROXY already registered"), so each
family is applied by a child process (``python -m zfw.rules.worker``).
"""

from __future__ import annotations

import difflib
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from zfw.errors import ZfwError
from zfw.rules.model import Rule, Ruleset, Table
from zfw.rules.text import restore_text

_LISTENER_CHAIN = re.compile(r"^TP[0-9]{1,5}_*$")
FIXED_CHAINS = {"mangle": ("DIVERT", "ZFWPRE"), "filter": ("ZFWIN", "ZFWFWD", "ZFWDROP")}
# Chains reached from the fixed ones: ZFWPRE -g PR<zone> -j TP<port>, ZFWIN -g LO<zone>.
DISPATCH = {"mangle": "ZFWPRE", "filter": "ZFWIN"}
SAVE = {4: "iptables-legacy-save", 6: "ip6tables-legacy-save"}
RESTORE = {4: "iptables-legacy-restore", 6: "ip6tables-legacy-restore"}


def _netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def run_workers(
    action: str, ruleset: Ruleset | None, netns: str | None, families: Sequence[int] = (4, 6)
) -> None:
    """Change each family's tables in a child process of its own, both at once."""
    procs = []
    for family in families:
        args = [
            *_netns_prefix(netns),
            sys.executable,
            "-m",
            "zfw.rules.worker",
            action,
            str(family),
        ]
        p = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert p.stdin is not None
        p.stdin.write(pickle.dumps(ruleset))
        p.stdin.close()
        procs.append((family, p))
    errors = []
    for family, p in procs:
        assert p.stderr is not None
        err = p.stderr.read().decode(errors="replace").strip().splitlines()
        if p.wait() != 0:
            errors.append(f"IPv{family}: {err[-1] if err else p.returncode}")
    if errors:
        raise ZfwError(f"applying rules failed: {'; '.join(errors)}")


def backend_warning() -> str | None:
    """A warning when the host's ``iptables`` command is the nf_tables one."""
    exe = shutil.which("iptables")
    if exe is None:
        return None
    out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    if "nf_tables" in out:
        return (
            "note: this host's iptables command uses the nf_tables backend; zfw writes the "
            "legacy xtables tables (see them with iptables-legacy-save), and rules made "
            "with the nf_tables iptables are evaluated as well"
        )
    return None


# --- inside the worker -------------------------------------------------------------------


def _build(iptc: Any, family: int, rule: Rule) -> Any:
    r = iptc.Rule6() if family == 6 else iptc.Rule()
    if rule.src:
        r.src = rule.src
    if rule.dst:
        r.dst = rule.dst
    if rule.in_iface:
        r.in_interface = rule.in_iface
    if rule.protocol:
        # python-iptables does not know the name iptables-save prints for ICMPv6.
        r.protocol = "58" if rule.protocol == "ipv6-icmp" else rule.protocol
    for m in rule.matches:
        match = r.create_match(m.name)
        for opt, value, negated in m.options:
            if opt == "syn":
                match.tcp_flags = ["!" if negated else "", "FIN,SYN,RST,ACK", "SYN"]
                if not negated:
                    match.tcp_flags = ["FIN,SYN,RST,ACK", "SYN"]
                continue
            setattr(match, opt.replace("-", "_"), ("!" if negated else "") + (value or ""))
    if rule.comment:
        r.create_match("comment").comment = rule.comment
    target = r.create_target(rule.target, goto=rule.goto)
    for opt, value in rule.target_options:
        setattr(target, opt.replace("-", "_"), value.strip('"'))
    return r


def _owned(iptc: Any, table: Any, name: str) -> list[str]:
    """zfw's chains in a live table: the fixed ones and what zfw's dispatch leads to."""
    existing = {c.name for c in table.chains}
    owned = [c for c in FIXED_CHAINS[name] if c in existing]
    dispatch = DISPATCH[name]
    if dispatch in existing:
        for rule in iptc.Chain(table, dispatch).rules:
            t = rule.target.name
            if t in existing and t not in owned and t[:2] in ("PR", "LO"):
                owned.append(t)
    # Listener chains: reading every PR chain's rules to find them costs more than the
    # apply itself; their names (TP + port) are zfw's own.
    owned += sorted(c for c in existing if _LISTENER_CHAIN.match(c))
    return owned


class _RuleCache:
    """Builds each rule shape once; rules that differ only in addresses reuse it.

    libiptc copies a rule when it is added, so one python-iptables object can
    be re-addressed and added again; building rules is most of an apply's time.
    """

    def __init__(self, iptc: Any, family: int):
        self.iptc = iptc
        self.family = family
        self.any = "::/0" if family == 6 else "0.0.0.0/0"
        self.shapes: dict[Rule, Any] = {}

    def get(self, rule: Rule) -> Any:
        shape = attrs.evolve(rule, src=None, dst=None)
        built = self.shapes.get(shape)
        if built is None:
            built = self.shapes[shape] = _build(self.iptc, self.family, shape)
            built.final_check()  # matches and target are checked once per shape
        built.src = rule.src or self.any
        built.dst = rule.dst or self.any
        return built.rule


def replace_table(iptc: Any, family: int, name: str, new: Table | None) -> None:
    """Swap zfw's part of one live table for ``new`` (None: remove it) in one commit."""
    table = iptc.Table6(name) if family == 6 else iptc.Table(name)
    table.autocommit = False
    table.refresh()
    try:
        owned = set(_owned(iptc, table, name))
        ours = owned | ({c.name for c in new.chains if not c.builtin} if new else set())
        for chain in table.chains:
            if chain.is_builtin():
                for rule in list(chain.rules):
                    if rule.target.name in ours:
                        chain.delete_rule(rule)
        for chain_name in owned:
            iptc.Chain(table, chain_name).flush()
        for chain_name in owned:
            table.delete_chain(chain_name)
        if new is not None:
            cache = _RuleCache(iptc, family)
            for c in new.chains:
                if not c.builtin:
                    table.create_chain(c.name)
            for c in new.chains:
                for i, r in enumerate(c.rules):
                    if c.builtin:
                        table.insert_entry(c.name, cache.get(r), i)
                    else:
                        table.append_entry(c.name, cache.get(r))
        table.commit()
    finally:
        table.autocommit = True


# --- snapshots ---------------------------------------------------------------------------


def snapshot(netns: str | None) -> dict[int, str]:
    """The mangle and filter tables as they are now, per family."""
    out = {}
    for family in (4, 6):
        text = ""
        for name in ("mangle", "filter"):
            proc = subprocess.run(
                [*_netns_prefix(netns), SAVE[family], "-t", name], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise ZfwError(f"{SAVE[family]}: {proc.stderr.strip()}")
            text += proc.stdout
        out[family] = text
    return out


def restore(saved: dict[int, str], netns: str | None) -> None:
    """Put back tables saved by :func:`snapshot` (each table in one step)."""
    for family, text in saved.items():
        proc = subprocess.run(
            [*_netns_prefix(netns), RESTORE[family]], input=text, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ZfwError(f"{RESTORE[family]}: {proc.stderr.strip()}")


def zfw_lines(saved_text: str) -> list[str]:
    """The lines of iptables-save text that belong to zfw, for a diff."""
    ours: set[str] = set(FIXED_CHAINS["mangle"] + FIXED_CHAINS["filter"])
    lines = [ln for ln in saved_text.splitlines() if ln and not ln.startswith("#")]
    for ln in lines:
        parts = ln.split()
        if parts[:2] in (["-A", "ZFWPRE"], ["-A", "ZFWIN"]) and "-g" in parts:
            ours.add(parts[parts.index("-g") + 1])
    for ln in lines:
        parts = ln.split()
        if parts[:1] == ["-A"] and parts[1].startswith("PR") and parts[1] in ours and "-j" in parts:
            ours.add(parts[parts.index("-j") + 1])
    out = []
    table = ""
    for ln in lines:
        parts = ln.split()
        if ln.startswith("*"):
            table = ln
            out.append(ln)
        elif ln == "COMMIT":
            out.append(ln)
        elif ln.startswith(":"):
            name = parts[0][1:]
            if name in ours:
                out.append(f":{name} - [0:0]")
            elif (table, name) in (
                ("*mangle", "PREROUTING"),
                ("*filter", "INPUT"),
                ("*filter", "FORWARD"),
            ):
                out.append(f":{name} ACCEPT [0:0]")
        elif parts[0] == "-A":
            target = (
                parts[parts.index("-j") + 1]
                if "-j" in parts
                else (parts[parts.index("-g") + 1] if "-g" in parts else "")
            )
            if parts[1] in ours or target in ours:
                out.append(ln)
    return out


def _normalized(lines: list[str]) -> list[str]:
    """Tables with chains sorted by name and each chain's rules in order."""
    out, table, decl, rules = [], "", [], {}
    for ln in lines:
        if ln.startswith("*"):
            table, decl, rules = ln, [], {}
        elif ln.startswith(":"):
            decl.append(ln)
        elif ln.startswith("-A "):
            rules.setdefault(ln.split()[1], []).append(ln)
        elif ln == "COMMIT":
            out += [table, *sorted(decl)]
            for chain in sorted(rules):
                out += rules[chain]
            out.append("COMMIT")
    return out


def diff_lines(ruleset: Ruleset, netns: str | None) -> list[str]:
    """Unified diff from what is loaded to what the policy compiles to."""
    saved = snapshot(netns)
    out: list[str] = []
    for family in (4, 6):
        now = _normalized(zfw_lines(saved[family]))
        new = _normalized(restore_text(ruleset, family).splitlines())
        out += difflib.unified_diff(
            now, new, f"loaded (IPv{family})", f"policy (IPv{family})", lineterm=""
        )
    return out


def apply_routing(ruleset: Ruleset, netns: str | None, remove: bool = False) -> bool:
    """Add (or remove) the TPROXY policy routing; True if it was there before."""
    from pyroute2 import IPRoute, NetNS

    from zfw import routing

    ipr = NetNS(netns) if netns else IPRoute()
    try:
        was = routing.present(ipr, ruleset.routing)
        if remove:
            routing.remove(ipr, ruleset.routing)
        else:
            routing.apply(ipr, ruleset.routing)
        return was
    finally:
        ipr.close()


def apply(ruleset: Ruleset, netns: str | None = None, families: Sequence[int] = (4, 6)) -> None:
    """Apply routing first (harmless alone), then each family's tables."""
    apply_routing(ruleset, netns)
    run_workers("apply", ruleset, netns, families)


def flush(ruleset: Ruleset, netns: str | None = None) -> None:
    """Remove zfw's chains, jumps and routing."""
    run_workers("flush", None, netns)
    apply_routing(ruleset, netns, remove=True)
