"""``python -m zfw.lab up|down|exec NODE CMD...`` (also ``contrib/lab``)."""

from __future__ import annotations

import argparse
import os
import sys

from zfw.lab import NODES, Lab, LabError
from zfw.lab.bridge import BridgeLab


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lab", description="zfw's network-namespace lab")
    p.add_argument("--name", default="zfwlab", help="namespace prefix (default zfwlab)")
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="create client, fw and server namespaces")
    up.add_argument(
        "--bridge", action="store_true", help="the firewall bridges one subnet (zfw.lab.bridge)"
    )
    sub.add_parser("down", help="remove them and what runs in them")
    e = sub.add_parser("exec", help="run a command in one of them")
    e.add_argument("node", choices=NODES)
    e.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    lab = BridgeLab(a.name) if getattr(a, "bridge", False) else Lab(a.name)
    try:
        if a.action == "up":
            lab.up()
            print(f"lab up: {', '.join(lab.ns.values())}")
        elif a.action == "down":
            lab.down()
            print("lab down")
        else:
            if not a.command:
                p.error("exec needs a command")
            os.execvp("ip", lab.cmd(a.node, a.command))
    except LabError as err:
        print(f"lab: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
