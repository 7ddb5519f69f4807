"""Rule compiler and apply: time for N zones x M services, and how it grows.

    sudo .venv/bin/python bench/rules.py

Compiles synthetic policies (zones on documentation-like private ranges,
every zone permitting every service out, a catch-all zone permitting them
in), renders them for nftables too, and applies the 100 x 20 one with both
backends (iptables: python-iptables, nft: ``nft -f``) inside a network
namespace of its own, and the 200 x 20 one with nft to show how it grows.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zfw.loader import load_policy
from zfw.rules import apply as live
from zfw.rules import nft, nftables
from zfw.rules.compiler import compile_policy


def policy_text(zones: int, services: int) -> str:
    names = [f"svc{i}" for i in range(services)]
    lines = ["from zfw.policy import *", ""]
    base = ipaddress.ip_network("10.0.0.0/8")
    for i, net in zip(range(zones), base.subnets(new_prefix=20), strict=False):
        v6 = f"2001:db8:{i:x}::/48"
        lines.append(f"InetZone('z{i}', ['{net}', '{v6}'], outbound_services={names!r})")
    lines.append(f"InetZone('world', ['0.0.0.0/0', '::/0'], inbound_services={names!r})")
    lines += ["", "def bench():"]
    for i, n in enumerate(names):
        lines.append(f"    Service('{n}', PlugProxy)")
        lines.append(f"    Listener(SockAddrInet('', {40000 + i}), '{n}', intercept={1000 + i})")
    return "\n".join(lines) + "\n"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print(
        f"{'zones':>6} {'services':>8} {'rules':>7} {'compile ms':>11} {'us/(zone*svc)':>14}"
        f" {'nft render ms':>14}"
    )
    big = {}
    for zones, services in ((25, 5), (50, 10), (100, 10), (100, 20), (200, 20)):
        path = tmp / f"p{zones}x{services}.py"
        path.write_text(policy_text(zones, services))
        policy = load_policy(str(path))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            ruleset = compile_policy(policy)
            best = min(best, time.perf_counter() - t0)
        rules = sum(len(c.rules) for _f, t in ruleset.tables for c in t.chains)
        per = best * 1e6 / (zones * services)
        t0 = time.perf_counter()
        nft.replace_script(nft.build(ruleset))
        render = time.perf_counter() - t0
        print(
            f"{zones:>6} {services:>8} {rules:>7} {best * 1000:>11.1f} {per:>14.1f}"
            f" {render * 1000:>14.1f}"
        )
        big[(zones, services)] = ruleset
    ns = "zfwbench-rules"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    times: dict[str, tuple[float, float]] = {}
    try:
        for name, apply in (
            ("iptables", lambda r: live.run_workers("apply", r, ns)),
            ("nft", lambda r: nftables.apply(nft.build(r), ns)),
            ("nft 200x20", lambda r: nftables.apply(nft.build(big[(200, 20)]), ns)),
        ):
            ruleset = big[(100, 20)]
            t0 = time.perf_counter()
            apply(ruleset)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            apply(ruleset)
            times[name] = (first, time.perf_counter() - t0)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    path = tmp / "p100x20.py"
    t0 = time.perf_counter()
    compile_policy(load_policy(str(path)))
    load_compile = time.perf_counter() - t0
    print(f"\n100 zones x 20 services: load+compile {load_compile * 1000:.0f} ms")
    for name, (first, again) in times.items():
        print(
            f"  {name:10} apply (empty) {first * 1000:6.0f} ms, apply (replacing) "
            f"{again * 1000:6.0f} ms, load+compile+replace {(load_compile + again) * 1000:6.0f} ms"
        )
    ratio = times["nft"][1] / times["iptables"][1]
    print(f"  nft / iptables (replacing): {ratio:.2f}")


if __name__ == "__main__":
    main()
