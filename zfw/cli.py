"""The ``zfw`` command: ``check``, ``run``, ``rules ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from zfw.errors import PolicyError, ZfwError
from zfw.loader import load_policy
from zfw.summary import describe, render


def _check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy, args.instance)
    data = describe(policy)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return 0


def _run(args: argparse.Namespace) -> int:
    from twisted.scripts.twistd import run

    from zfw import net

    load_policy(args.policy, args.instance)  # fail early, with the one-line error
    net.check_capability()
    argv = [
        "twistd",
        "--nodaemon",
        "--pidfile=",
        "zfw",
        "--policy",
        args.policy,
        "--instance",
        args.instance,
    ]
    for opt in ("log_spec", "verbose", "log_file"):
        value = getattr(args, opt)
        if value is not None:
            argv += ["--" + opt.replace("_", "-"), str(value)]
    if args.json_log:
        argv.append("--json-log")
    if args.apply_rules:
        argv.append("--apply-rules")
    sys.argv = argv
    run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zfw`` command."""
    p = argparse.ArgumentParser(prog="zfw", description="application-level proxy firewall")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a policy and print a summary")
    c.add_argument("policy")
    c.add_argument("--instance", help="only this instance")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_check)

    r = sub.add_parser("run", help="run an instance in the foreground (twistd -n zfw)")
    r.add_argument("--policy", required=True)
    r.add_argument("--instance", required=True)
    r.add_argument("--log-spec", help="per-tag verbosity, e.g. 'core.*:5,plug:3'")
    r.add_argument("--verbose", type=int, help="default verbosity (0-9)")
    r.add_argument("--log-file", help="write the log here instead of standard output")
    r.add_argument("--json-log", action="store_true", help="log JSON lines")
    r.add_argument(
        "--apply-rules",
        action="store_true",
        help="apply the policy's packet filter at start and on SIGHUP",
    )
    r.set_defaults(func=_run)

    from zfw.rules.cli import add_parser

    add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; a user mistake is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ZfwError as e:
        print(str(e) if isinstance(e, PolicyError) else f"zfw: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
