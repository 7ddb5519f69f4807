"""``zfw status|sessions|kill|reload|loglevel``: the control commands of the ``zfw`` command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zfw.control.client import RUN_DIR, call, running, socket_path
from zfw.errors import ZfwError


def _targets(args: argparse.Namespace) -> dict[str, str]:
    """Instance -> socket the command goes to: ``--socket``, ``--instance``, or all."""
    if args.socket:
        return {args.instance or args.socket: args.socket}
    if args.instance:
        return {args.instance: socket_path(args.run_dir, args.instance)}
    found = running(args.run_dir)
    if not found:
        raise ZfwError(f"no instance is running (no control socket in {args.run_dir})")
    return found


def _ask(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: call(path, request) for name, path in _targets(args).items()}


def _status(args: argparse.Namespace) -> int:
    answers = _ask(args, {"command": "status"})
    if args.json:
        print(json.dumps(answers, indent=2))
        return 0 if all(a["ok"] for a in answers.values()) else 1
    for name, a in answers.items():
        if not a["ok"]:
            print(f"{name}: {a['error']}", file=sys.stderr)
            continue
        p = a["policy"]
        print(f"instance {name} (pid {a['pid']}), {a['state']}, up {a['uptime']:.0f} s")
        print(f"  policy {p['file']} sha256 {p['sha256'][:16]}, loaded {p['loaded']}")
        print(f"  packet filter: {a['packet_filter']}; log spec {a['log_spec']}")
        s = a["sessions"]
        print(f"  sessions {s['running']} of {s['limit']}")
        for lst in a["listeners"]:
            print(f"  listener {lst['address']} ({lst['mode']}) -> {lst['service']}")
        for svc, c in a["services"].items():
            r, rates = c["refused"], c["rates"]
            print(
                f"  service {svc}: {c['sessions_running']}/{c['limit']} running, "
                f"{c['sessions_total']} total, refused zone {r['zone']} limit {r['limit']} "
                f"client {r['client']} fair {r['fair']} proxy {r['proxy']}, "
                f"evicted {c['evicted']}, "
                f"connect failures {c['connect_failures']}, "
                f"bytes in {c['bytes_from_client']} out {c['bytes_from_server']}, "
                f"rate {rates['1m']}/{rates['5m']}/{rates['15m']} per s"
            )
            if c["proxy"]:
                print("    " + ", ".join(f"{k} {v}" for k, v in c["proxy"].items()))
    return 0 if all(a["ok"] for a in answers.values()) else 1


def _sessions(args: argparse.Namespace) -> int:
    answers = _ask(args, {"command": "sessions"})
    code = 0 if all(a["ok"] for a in answers.values()) else 1
    if args.json:
        print(json.dumps({n: a.get("sessions", a) for n, a in answers.items()}, indent=2))
        return code
    for name, a in answers.items():
        if not a["ok"]:
            print(f"{name}: {a['error']}", file=sys.stderr)
    print(f"{'ID':<28} {'CLIENT':<26} {'SERVER':<26} {'IN':>10} {'OUT':>10} {'AGE':>7}  STATE")
    for a in answers.values():
        for s in a.get("sessions", []):
            client = f"{s['client']} ({s['client_zone']})"
            server = f"{s['server']} ({s['server_zone']})"
            print(
                f"{s['id']:<28} {client:<26} {server:<26} {s['bytes_from_client']:>10} "
                f"{s['bytes_from_server']:>10} {s['age']:>7.1f}  {s['state']}"
            )
    return code


def _kill(args: argparse.Namespace) -> int:
    if not args.instance and not args.socket:
        args.instance = args.session.split("/", 1)[0]  # ids are INSTANCE/SERVICE:N
    return _print_one(_ask(args, {"command": "kill", "session": args.session}), "killed")


def _reload(args: argparse.Namespace) -> int:
    return _print_one(_ask(args, {"command": "reload"}), "ok")


def _loglevel(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"command": "loglevel", "spec": args.spec}
    if args.seconds is not None:
        request["seconds"] = args.seconds
    return _print_one(_ask(args, request), "ok")


def _print_one(answers: dict[str, dict[str, Any]], word: str) -> int:
    """``ok`` (or the refusal) per instance; exit status 1 if any refused."""
    refused = False
    for name, a in answers.items():
        prefix = f"{name}: " if len(answers) > 1 else ""
        if a["ok"]:
            print(f"{prefix}{word}")
        else:
            refused = True
            print(f"{prefix}{a['error']}", file=sys.stderr)
    return 1 if refused else 0


def add_parsers(sub: Any) -> None:
    """Add the control commands to the ``zfw`` command's subparsers."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--instance", help="the instance (default: every running one)")
        p.add_argument("--run-dir", default=RUN_DIR, help=f"where the sockets are ({RUN_DIR})")
        p.add_argument("--socket", help="a control socket path (zfw run --control-socket)")

    p = sub.add_parser("status", help="what a running instance is doing, and its counters")
    common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_status)

    p = sub.add_parser("sessions", help="the sessions of running instances")
    common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_sessions)

    p = sub.add_parser("kill", help="end a session (ids from zfw sessions)")
    p.add_argument("session", help="INSTANCE/SERVICE:N")
    common(p)
    p.set_defaults(func=_kill)

    p = sub.add_parser(
        "reload", help="load the policy again: ok, or why it was refused (exit status 1)"
    )
    common(p)
    p.set_defaults(func=_reload)

    p = sub.add_parser("loglevel", help="change log levels at run time")
    p.add_argument("spec", help="as --log-spec, e.g. 'http.*:6'")
    p.add_argument("--for", dest="seconds", type=float, help="go back after SECONDS")
    common(p)
    p.set_defaults(func=_loglevel)
