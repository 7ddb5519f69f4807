"""``zfw rules show|diff|apply|try|confirm|flush``."""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time

from zfw.errors import ZfwError
from zfw.loader import load_policy
from zfw.model import PacketFilterOptions
from zfw.routing import TproxyRouting
from zfw.rules import apply as live
from zfw.rules import backends, forwarding, state
from zfw.rules.compiler import closed_ruleset, compile_policy
from zfw.rules.evaluate import Packet, evaluate
from zfw.rules.model import Ruleset

STATE_DIR = "/run/zfw"


def _ruleset(args: argparse.Namespace, narrow: bool = False) -> Ruleset:
    """The packet filter of the whole policy: every instance's listeners, so that
    applying for one never removes another's (``narrow``: only ``--instance``'s, for show)."""
    policy = load_policy(args.policy)
    if args.instance and args.instance not in policy.instances:
        raise ZfwError(f"unknown instance {args.instance!r}")
    instances = [args.instance] if narrow and args.instance else None
    return compile_policy(policy, instances)


def _backend(args: argparse.Namespace, ruleset: Ruleset | None = None) -> backends.Backend:
    backend, why = backends.choose(args.backend, args.netns, ruleset)
    if why:
        print(f"backend: {backend.name} ({why})", file=sys.stderr)
    return backend


def _leftovers(backend: backends.Backend, netns: str | None) -> None:
    other = backends.other(backend)
    if other.present(netns):
        print(
            f"note: zfw's rules are also loaded in the {other.name} backend (from before a "
            f"switch?); both are evaluated. Remove them: zfw rules flush --backend {other.name}",
            file=sys.stderr,
        )


def _state_path(netns: str | None) -> str:
    return os.path.join(STATE_DIR, f"rules-{netns or 'host'}.json")


def _save_state(backend: backends.Backend, ruleset: Ruleset, netns: str | None) -> None:
    """What was applied, so that flush can undo it when the policy no longer loads."""
    r = ruleset.routing
    data = {"backend": backend.name, "mark": r.mark, "mask": r.mask, "table": r.table}
    try:
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(_state_path(netns), "w") as f:
            json.dump(data, f)
    except OSError:
        pass  # flush then falls back to the defaults


def _routing_of_last_apply(netns: str | None) -> Ruleset:
    """A ruleset carrying only the routing applied last (or the defaults)."""
    opts = PacketFilterOptions()
    mark, mask, table = opts.tproxy_mark, opts.tproxy_mask, opts.route_table
    try:
        with open(_state_path(netns)) as f:
            data = json.load(f)
        mark, mask, table = int(data["mark"]), int(data["mask"]), int(data["table"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return Ruleset((), TproxyRouting(mark, mask, table))


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


def _refuse_lockout(args: argparse.Namespace, ruleset: Ruleset) -> None:
    if not args.netns and not args.force:
        reason = lockout_reason(ruleset)
        if reason:
            raise ZfwError(f"refusing to apply: {reason}")


def _guarded_apply(args: argparse.Namespace, ruleset: Ruleset, backend: backends.Backend) -> None:
    _refuse_lockout(args, ruleset)
    _install(args, ruleset, backend)


def _install(
    args: argparse.Namespace, ruleset: Ruleset, backend: backends.Backend, routing: bool = True
) -> None:
    """Load ``ruleset`` (``routing``: and its policy routing, recorded for flush)."""
    if backend.name == "iptables" and not args.netns:
        warning = live.backend_warning()
        if warning:
            print(warning, file=sys.stderr)
    if routing:
        live.apply_routing(ruleset, args.netns)  # harmless alone; the rules then lead to it
    backend.apply(ruleset, args.netns)
    if routing:
        _save_state(backend, ruleset, args.netns)
    _leftovers(backend, args.netns)


def _confirm_path(netns: str | None) -> str:
    return os.path.join(STATE_DIR, f"confirm-{netns or 'host'}")


def _closed(netns: str | None) -> Ruleset:
    return closed_ruleset(_routing_of_last_apply(netns).routing)


def _record(args: argparse.Namespace, ruleset: Ruleset, backend: backends.Backend) -> None:
    """Keep ``ruleset`` as the last good one (a failure to is said, not fatal)."""
    last = state.LastGood(ruleset, time.time(), os.path.abspath(args.policy), backend.name)
    try:
        state.save(state.state_dir(args.state_dir), args.netns, last)
    except OSError as e:
        print(f"note: the last good ruleset was not recorded: {e}", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    if args.closed:
        ruleset = _closed(args.netns)
    elif args.policy:
        ruleset = _ruleset(args, narrow=True)
    else:
        raise ZfwError("rules show needs a policy file (or --closed)")
    backend, _why = backends.choose(args.backend, args.netns, ruleset)
    print(backend.text(ruleset, routing=not args.closed), end="")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    ruleset = _ruleset(args)
    lines = _backend(args, ruleset).diff(ruleset, args.netns)
    print("\n".join(lines) if lines else "no difference: the loaded rules are the policy's")
    return 1 if lines else 0


def _failure(e: Exception) -> str:
    """One line for what went wrong (a ZfwError says it already)."""
    return str(e) if isinstance(e, ZfwError) else f"{type(e).__name__}: {e}"


def cmd_apply(args: argparse.Namespace) -> int:
    """Apply the policy's rules; when it does not load, its rules would lock out the
    SSH session this runs in, or they cannot be applied: the last good ruleset or else
    the closed one, and exit 1."""
    backend = _backend(args)
    try:
        ruleset = _ruleset(args)
    except Exception as e:  # also the policy's own code failing in a way the loader missed
        return _fall_back(args, backend, _failure(e))
    if ruleset.bridge is not None and backend.name != "nft" and args.backend == "auto":
        backend = _backend(args, ruleset)
    try:
        _refuse_lockout(args, ruleset)
    except ZfwError as e:  # the closed ruleset leaves SSH (INPUT) alone
        return _fall_back(args, backend, str(e))
    try:
        _install(args, ruleset, backend)
    except Exception as e:  # the backend or the kernel refused; tell, never a traceback
        return _fall_back(args, backend, f"applying the rules failed: {_failure(e)}")
    _record(args, ruleset, backend)
    if args.forwarding:
        forwarding.switch(True, args.netns)
    print(f"rules applied ({backend.name})")
    return 0


def _fall_back(args: argparse.Namespace, backend: backends.Backend, reason: str) -> int:
    """Forward nothing the policy has not allowed before: the last good ruleset, else
    zfw's rules loaded now, else the closed one, else (none could be loaded) forwarding
    off. One line; exit 1."""
    notes = [reason]
    last, problem = state.load(state.state_dir(args.state_dir), args.netns)
    if problem:
        notes.append(problem)
    done = None
    if last is not None:
        try:
            _install(args, last.ruleset, backend)
            done = f"kept the last good ruleset of {last.when()} ({backend.name})"
        except Exception as e:
            notes.append(f"the last good ruleset failed too ({_failure(e)})")
    if done is None and last is None and backend.present(args.netns):
        # Applied by a zfw that kept no record (zfw run --apply-rules, an older version):
        # zfw's rules forward nothing either, and they keep the proxies reachable.
        done = f"kept zfw's rules loaded now, none being recorded as good ({backend.name})"
    if done is None:
        try:
            # No routing: it would lead nowhere, and its table may be another tool's.
            _install(args, _closed(args.netns), backend, routing=False)
            done = f"applied the closed ruleset: nothing is forwarded ({backend.name})"
        except Exception as e:
            notes.append(f"the closed ruleset failed too ({_failure(e)})")
    try:
        if done is None:
            forwarding.switch(False, args.netns)
            done = "no rules of zfw's could be loaded: forwarding switched off"
        elif args.forwarding:
            forwarding.switch(True, args.netns)  # safe: zfw's FORWARD chain drops everything
    except ZfwError as e:
        done = (done or "no rules of zfw's could be loaded") + f"; forwarding unchanged ({e})"
    print(f"zfw rules apply: {'; '.join(notes)}; {done}", file=sys.stderr)
    return 1


def cmd_try(args: argparse.Namespace) -> int:
    ruleset = _ruleset(args)
    backend = _backend(args, ruleset)
    saved = backend.snapshot(args.netns)
    os.makedirs(STATE_DIR, exist_ok=True)
    confirm = _confirm_path(args.netns)
    if os.path.exists(confirm):
        os.unlink(confirm)
    routing_was = live.apply_routing(ruleset, args.netns, remove=False)

    def roll_back() -> None:
        backend.restore(saved, args.netns)
        if not routing_was:
            live.apply_routing(ruleset, args.netns, remove=True)

    try:
        _guarded_apply(args, ruleset, backend)
    except BaseException:
        roll_back()
        raise
    print(
        f"rules applied ({backend.name}); confirm within {args.timeout:g} s (press Enter, or "
        f"run 'zfw rules confirm{' --netns ' + args.netns if args.netns else ''}'), "
        "or they are rolled back",
        flush=True,
    )
    deadline = time.monotonic() + args.timeout
    interactive = sys.stdin.isatty()
    while time.monotonic() < deadline:
        if os.path.exists(confirm):
            os.unlink(confirm)
            _record(args, ruleset, backend)
            print("confirmed")
            return 0
        if interactive and select.select([sys.stdin], [], [], 0.2)[0]:
            sys.stdin.readline()
            _record(args, ruleset, backend)
            print("confirmed")
            return 0
        time.sleep(0.2)
    roll_back()
    print("not confirmed: previous rules and routing restored", file=sys.stderr)
    return 3


def cmd_confirm(args: argparse.Namespace) -> int:
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(_confirm_path(args.netns), "w"):
        pass
    print("confirmation sent")
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    """Remove what zfw owns; works when the policy no longer loads (or is not given)."""
    routing = None
    if args.policy:
        try:
            routing = _ruleset(args)
        except ZfwError as e:
            print(f"zfw: the policy does not load ({e}); flushing without it", file=sys.stderr)
    if routing is None:
        routing = _routing_of_last_apply(args.netns)
    if args.backend == "auto":  # everything zfw owns, in both
        chosen = [b for b in (backends.Nft(), backends.Iptables()) if b.present(args.netns)]
        keep_routing = False
    else:
        chosen = [backends.get(args.backend)]
        keep_routing = backends.other(chosen[0]).present(args.netns)
    for backend in chosen:
        backend.flush(args.netns)
    if keep_routing:
        print(
            f"the routing stays: zfw's rules in the {backends.other(chosen[0]).name} "
            "backend still use it",
            file=sys.stderr,
        )
    else:
        live.apply_routing(routing, args.netns, remove=True)
    names = " and ".join(b.name for b in chosen) or "no backend had any"
    if not keep_routing and forwarding.is_on(args.netns):
        print(
            "note: forwarding is on and no rules of zfw's are loaded: this host forwards "
            "everything (sysctl -w net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0)",
            file=sys.stderr,
        )
    print(
        f"zfw's rules ({names}) and routing removed"
        if not keep_routing
        else f"zfw's rules ({names}) removed"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``rules`` and its subcommands to the ``zfw`` parser."""
    rules = sub.add_parser("rules", help="the packet filter generated from the policy")
    rsub = rules.add_subparsers(dest="rules_command", required=True)

    def common(p: argparse.ArgumentParser, policy: bool = True, optional: bool = False) -> None:
        if policy:
            p.add_argument("policy", nargs="?" if optional else None)
            p.add_argument(
                "--instance",
                help="show: only this instance's listeners (the others always apply all)",
            )
            p.add_argument(
                "--backend",
                choices=backends.BACKENDS,
                default="auto",
                help="nft, iptables (legacy xtables), or auto (default: nft where the "
                "host's iptables is iptables-nft or nft tables are loaded)",
            )
        p.add_argument("--netns", help="act inside this network namespace")

    for name, func, help_ in (
        ("show", cmd_show, "print the iptables-restore text and routing"),
        ("diff", cmd_diff, "compare with what is loaded now (exit 1 if different)"),
        ("apply", cmd_apply, "apply atomically (one commit per table)"),
        ("try", cmd_try, "apply, and roll back unless confirmed in time"),
        ("flush", cmd_flush, "remove zfw's rules and routing (the policy is optional)"),
    ):
        p = rsub.add_parser(name, help=help_)
        common(p, optional=name in ("flush", "show"))
        if name in ("apply", "try"):
            p.add_argument(
                "--force",
                action="store_true",
                help="apply even if it would cut the current SSH session",
            )
            p.add_argument(
                "--state-dir",
                help="where the last good ruleset is kept "
                f"(default $ZFW_STATE_DIR or {state.DEFAULT_DIR})",
            )
        if name == "apply":
            p.add_argument(
                "--forwarding",
                action="store_true",
                help="switch IPv4 and IPv6 forwarding on once zfw's rules are in place "
                "(the policy's, the last good or the closed ones)",
            )
        if name == "show":
            p.add_argument(
                "--closed",
                action="store_true",
                help="the closed ruleset that apply falls back to (no policy needed)",
            )
        if name == "try":
            p.add_argument("--timeout", type=float, default=30.0)
        p.set_defaults(func=func)
    p = rsub.add_parser("confirm", help="confirm a pending 'zfw rules try'")
    common(p, policy=False)
    p.set_defaults(func=cmd_confirm)
