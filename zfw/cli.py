"""The ``zfw`` command: ``check``, ``run``, ``rules ...``."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable

from zfw import __version__
from zfw.errors import PolicyError, ZfwError
from zfw.loader import LOAD_TIME_LIMIT, load_policy
from zfw.summary import describe, render

#: Where the installed package keeps the service files.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy, args.instance, time_limit=args.time_limit)
    if args.as_user is not None:
        from zfw.policyfiles import User, unreadable

        denied = unreadable(policy, User.named(args.as_user))
        if denied:
            print("\n".join(denied), file=sys.stderr)
            return 2
    data = describe(policy)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return 0


#: The gallery's policy that ``zfw example DIR`` writes when no name is given.
DEFAULT_EXAMPLE = "three_zones"
#: How a gallery policy pulls in its zones (``policies/`` and ``zones/`` are siblings).
_INCLUDE = re.compile(r'^include_zones\("\.\./(zones/[\w.-]+\.py)"\)', re.MULTILINE)


def gallery() -> Traversable:
    """The gallery: ``policies/`` and ``zones/`` (links to the checkout's top-level folders,
    copies in a wheel)."""
    return resources.files("zfw") / "gallery"


def gallery_policies() -> dict[str, str]:
    """Each gallery policy's name and the first line of its docstring."""
    out = {}
    for entry in sorted(gallery().joinpath("policies").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            doc = ast.get_docstring(ast.parse(entry.read_text())) or ""
            out[entry.name[:-3]] = doc.split("\n", 1)[0]
    return out


def _example(args: argparse.Namespace) -> int:
    names = gallery_policies()
    if args.list:
        if args.name or args.dir:
            raise ZfwError("example --list takes no NAME or DIR")
        for name, summary in names.items():
            mark = " (the default)" if name == DEFAULT_EXAMPLE else ""
            print(f"{name:16} {summary}{mark}")
        return 0
    if args.name is None:
        raise ZfwError("example: give DIR, or NAME DIR (zfw example --list shows the names)")
    name, target_dir = (DEFAULT_EXAMPLE, args.name) if args.dir is None else (args.name, args.dir)
    if name not in names:
        raise ZfwError(f"example: no policy {name!r} in the gallery ({', '.join(names)})")
    text = gallery().joinpath("policies", f"{name}.py").read_text()
    files = {"policy.py": _INCLUDE.sub(r'include_zones("\1")', text)}
    for zones in _INCLUDE.findall(text):
        files[zones] = gallery().joinpath(zones).read_text()
    target = os.path.abspath(target_dir)
    existing = [f for f in files if os.path.exists(os.path.join(target, f))]
    if existing and not args.force:
        raise ZfwError(f"{os.path.join(target, existing[0])} exists (--force replaces it)")
    for rel, content in files.items():
        dest = os.path.join(target, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            f.write(content)
        print(dest)
    doc = ast.get_docstring(ast.parse(text)) or ""
    if "What to change first" in doc:  # each gallery policy's comment says it
        print("\n" + doc[doc.index("What to change first") :] + "\n", file=sys.stderr)
    print(f"check it with: zfw check {os.path.join(target, 'policy.py')}", file=sys.stderr)
    return 0


def _files(_args: argparse.Namespace) -> int:
    print(os.path.join(PACKAGE_DIR, "data"))
    return 0


def _run(args: argparse.Namespace) -> int:
    from twisted.scripts.twistd import run

    # The policy loads once, in the service twistd makes (a mistake is one line there).
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
    for opt in (
        "log_spec",
        "verbose",
        "log_file",
        "syslog_socket",
        "control_socket",
        "metrics",
        "workers",
    ):
        value = getattr(args, opt)
        if value is not None:
            argv += ["--" + opt.replace("_", "-"), str(value)]
    if args.json_log:
        argv.append("--json-log")
    if args.syslog:
        argv.append("--syslog")
    if args.apply_rules:
        argv += ["--apply-rules", "--rules-backend", args.backend]
    sys.argv = argv
    run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zfw`` command."""
    p = argparse.ArgumentParser(prog="zfw", description="application-level proxy firewall")
    p.add_argument("--version", action="version", version=f"zfw {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser(
        "example",
        help="write a policy of the gallery and its zones into DIR",
        description="Write DIR/policy.py and the zone files it includes (DIR/zones/): a "
        f"policy of the gallery, {DEFAULT_EXAMPLE} unless NAME is given (documentation "
        "addresses), a start for /etc/zfw.",
    )
    e.add_argument("name", nargs="?", metavar="[NAME] DIR")
    e.add_argument("dir", nargs="?", help=argparse.SUPPRESS)
    e.add_argument("--list", action="store_true", help="list the gallery's policies")
    e.add_argument("--force", action="store_true", help="replace files that exist")
    e.set_defaults(func=_example)

    f = sub.add_parser(
        "files",
        help="print the folder of the installed service files (systemd units, logrotate)",
    )
    f.set_defaults(func=_files)

    c = sub.add_parser(
        "check",
        help="validate a policy and print a summary",
        epilog="zfw example DIR writes the example policy to start from.",
    )
    c.add_argument("policy")
    c.add_argument("--instance", help="only this instance")
    c.add_argument(
        "--time-limit",
        type=float,
        default=LOAD_TIME_LIMIT,
        help=f"seconds the policy may take to load (default {LOAD_TIME_LIMIT:g})",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument(
        "--as-user",
        metavar="USER",
        help="also check that USER (the service's, e.g. zfw) can read every file the "
        "policy names: itself, its zones files, certificates and CA keys",
    )
    c.set_defaults(func=_check)

    r = sub.add_parser("run", help="run an instance in the foreground (twistd -n zfw)")
    r.add_argument("--policy", required=True)
    r.add_argument("--instance", required=True)
    r.add_argument("--log-spec", help="per-tag verbosity, e.g. 'core.*:5,plug:3'")
    r.add_argument("--verbose", type=int, help="default verbosity (0-9)")
    r.add_argument("--log-file", help="write the log here (reopened on SIGUSR1)")
    r.add_argument("--syslog", action="store_true", help="log to syslog (facility daemon)")
    r.add_argument("--syslog-socket", help="the syslog socket (default /dev/log)")
    r.add_argument("--json-log", action="store_true", help="log JSON lines")
    r.add_argument(
        "--control-socket", help="the control socket (default /run/zfw/INSTANCE.sock; 'none')"
    )
    r.add_argument("--metrics", help="serve Prometheus metrics on HOST:PORT (off by default)")
    r.add_argument(
        "--workers", help="worker processes: N or auto, one per core (default: the policy's, 1)"
    )
    r.add_argument(
        "--apply-rules",
        action="store_true",
        help="apply the policy's packet filter at start and on SIGHUP",
    )
    r.add_argument(
        "--backend",
        choices=("auto", "nft", "iptables"),
        default="auto",
        help="the packet filter backend of --apply-rules",
    )
    r.set_defaults(func=_run)

    from zfw.control.cli import add_parsers
    from zfw.rules.cli import add_parser
    from zfw.tls.cli import add_parser as add_ca_parser

    add_parser(sub)
    add_parsers(sub)
    add_ca_parser(sub)
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
