"""``zfw rules show|diff|apply|try|confirm|flush``."""

from __future__ import annotations

import argparse
import difflib
import os
import select
import sys
import time

from zfw.errors import ZfwError
from zfw.loader import load_policy
from zfw.rules import apply as live
from zfw.rules.compiler import compile_policy
from zfw.rules.evaluate import Packet, evaluate
from zfw.rules.model import Ruleset
from zfw.rules.text import full_text, restore_text

STATE_DIR = "/run/zfw"


def _ruleset(args: argparse.Namespace) -> Ruleset:
    policy = load_policy(args.policy)
    instances = [args.instance] if args.instance else None
    if args.instance and args.instance not in policy.instances:
        raise ZfwError(f"unknown instance {args.instance!r}")
    return compile_policy(policy, instances)


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
    saved = live.snapshot(netns)
    out: list[str] = []
    for family in (4, 6):
        now = _normalized(live.zfw_lines(saved[family]))
        new = _normalized(restore_text(ruleset, family).splitlines())
        out += difflib.unified_diff(
            now, new, f"loaded (IPv{family})", f"policy (IPv{family})", lineterm=""
        )
    return out


def lockout_reason(ruleset: Ruleset) -> str | None:
    """Why the new rules would cut the SSH session this command runs in, if they would."""
    conn = os.environ.get("SSH_CONNECTION", "").split()
    if len(conn) != 4:
        return None
    client, server, port = conn[0], conn[2], int(conn[3])
    v = evaluate(ruleset, Packet(client, server, port), frozenset({server}))
    if v.action in ("accept", "divert"):
        return None
    return (
        f"the new rules would drop new connections from {client} to port {port} of "
        f"{server}, the management (SSH) session this runs in; use --force to apply anyway"
    )


def _guarded_apply(args: argparse.Namespace, ruleset: Ruleset) -> None:
    if not args.netns and not args.force:
        reason = lockout_reason(ruleset)
        if reason:
            raise ZfwError(f"refusing to apply: {reason}")
    warning = None if args.netns else live.backend_warning()
    if warning:
        print(warning, file=sys.stderr)
    live.apply(ruleset, args.netns)


def _confirm_path(netns: str | None) -> str:
    return os.path.join(STATE_DIR, f"confirm-{netns or 'host'}")


def cmd_show(args: argparse.Namespace) -> int:
    print(full_text(_ruleset(args)), end="")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    lines = diff_lines(_ruleset(args), args.netns)
    print("\n".join(lines) if lines else "no difference: the loaded rules are the policy's")
    return 1 if lines else 0


def cmd_apply(args: argparse.Namespace) -> int:
    _guarded_apply(args, _ruleset(args))
    print("rules applied")
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    ruleset = _ruleset(args)
    saved = live.snapshot(args.netns)
    os.makedirs(STATE_DIR, exist_ok=True)
    confirm = _confirm_path(args.netns)
    if os.path.exists(confirm):
        os.unlink(confirm)
    routing_was = live.apply_routing(ruleset, args.netns, remove=False)
    try:
        _guarded_apply(args, ruleset)
    except BaseException:
        live.restore(saved, args.netns)
        if not routing_was:
            live.apply_routing(ruleset, args.netns, remove=True)
        raise
    print(
        f"rules applied; confirm within {args.timeout:g} s (press Enter, or run "
        f"'zfw rules confirm{' --netns ' + args.netns if args.netns else ''}'), "
        "or they are rolled back",
        flush=True,
    )
    deadline = time.monotonic() + args.timeout
    interactive = sys.stdin.isatty()
    while time.monotonic() < deadline:
        if os.path.exists(confirm):
            os.unlink(confirm)
            print("confirmed")
            return 0
        if interactive and select.select([sys.stdin], [], [], 0.2)[0]:
            sys.stdin.readline()
            print("confirmed")
            return 0
        time.sleep(0.2)
    live.restore(saved, args.netns)
    if not routing_was:
        live.apply_routing(ruleset, args.netns, remove=True)
    print("not confirmed: previous rules and routing restored", file=sys.stderr)
    return 3


def cmd_confirm(args: argparse.Namespace) -> int:
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(_confirm_path(args.netns), "w"):
        pass
    print("confirmation sent")
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    live.flush(_ruleset(args), args.netns)
    print("zfw's rules and routing removed")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``rules`` and its subcommands to the ``zfw`` parser."""
    rules = sub.add_parser("rules", help="the packet filter generated from the policy")
    rsub = rules.add_subparsers(dest="rules_command", required=True)

    def common(p: argparse.ArgumentParser, policy: bool = True) -> None:
        if policy:
            p.add_argument("policy")
            p.add_argument("--instance", help="only this instance's listeners")
        p.add_argument("--netns", help="act inside this network namespace")

    for name, func, help_ in (
        ("show", cmd_show, "print the iptables-restore text and routing"),
        ("diff", cmd_diff, "compare with what is loaded now (exit 1 if different)"),
        ("apply", cmd_apply, "apply atomically (one commit per table)"),
        ("try", cmd_try, "apply, and roll back unless confirmed in time"),
        ("flush", cmd_flush, "remove zfw's chains, jumps and routing"),
    ):
        p = rsub.add_parser(name, help=help_)
        common(p)
        if name in ("apply", "try"):
            p.add_argument(
                "--force",
                action="store_true",
                help="apply even if it would cut the current SSH session",
            )
        if name == "try":
            p.add_argument("--timeout", type=float, default=30.0)
        p.set_defaults(func=func)
    p = rsub.add_parser("confirm", help="confirm a pending 'zfw rules try'")
    common(p, policy=False)
    p.set_defaults(func=cmd_confirm)
