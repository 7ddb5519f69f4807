"""HttpProxy against PlugProxy and plain kernel routing, in the lab.

    sudo .venv/bin/python bench/http_proxy.py [--seconds 5] [--rounds 3] [--million]

- keep-alive requests/s with small responses (wrk, 32 connections, against nginx);
- new connections/s (wrk with ``Connection: close``);
- with ``--million``: one million keep-alive requests through HttpProxy, its
  RSS sampled as they go (per-request memory growth would show as a slope).

zfw is pinned to CPU 0, wrk and nginx to CPU 1; the best round counts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from plug import NGINX_HTTP, NGINX_SERVER, wrk  # the same load against the same server

from zfw.lab import Lab
from zfw.lab.servers import pinned, start_nginx

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "http_policy.py")


def start_zfw(lab: Lab, instance: str):
    if instance == "routing":
        lab.tproxy({}, divert="none")
        return None
    lab.tproxy({80: 50080 if instance == "http" else 50081})
    proc = lab.popen("fw", pinned(0, lab.zfw_command(POLICY, instance, "--log-file", "/dev/null")))
    time.sleep(2)
    return proc


def rss_kib(lab: Lab, pid: int) -> int:
    status = lab.run("fw", ["cat", f"/proc/{pid}/status"]).stdout
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def million(lab: Lab) -> None:
    """One million requests through HttpProxy; RSS every ~100,000."""
    proc = start_zfw(lab, "http")
    assert proc is not None
    pid = int(lab.run("fw", ["pgrep", "-n", "-f", "zfw_plugin|twistd"]).stdout.split()[0])
    done, samples, start = 0, [], time.monotonic()
    try:
        while done < 1_000_000:
            rate = wrk(lab, 10, False)
            done += int(rate * 10)
            samples.append((done, rss_kib(lab, pid)))
            print(f"    {done:>9} requests  RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)
    finally:
        proc.kill()
        proc.wait()
    first, half, last = samples[0], samples[len(samples) // 2], samples[-1]
    per_request = (last[1] - first[1]) * 1024 / max(1, last[0] - first[0])
    second_half = (last[1] - half[1]) * 1024 / max(1, last[0] - half[0])
    print(
        f"  {done} requests in {time.monotonic() - start:.0f} s; RSS {first[1] / 1024:.1f} MiB "
        f"after {first[0]}, {last[1] / 1024:.1f} MiB after {last[0]}: "
        f"{per_request:.2f} bytes per request overall, {second_half:.2f} in the second half"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--million", action="store_true")
    a = ap.parse_args()
    lab = Lab("zfwbenchhttp").up()
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for ns in ("client", "server"):
            lab.run(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000",
                         "net.ipv4.tcp_tw_reuse=1"])  # fmt: skip
        nginx = start_nginx(lab, tempfile.mkdtemp(), NGINX_SERVER, NGINX_HTTP, 4096, cpu=1)
        time.sleep(1)
        # Routing first: stale conntrack entries of diverted connections stall routed ones.
        for setup in ["routing"] * a.rounds + ["plug", "http"] * a.rounds:
            proc = start_zfw(lab, setup)
            try:
                results.setdefault((setup, "keepalive"), []).append(wrk(lab, a.seconds, False))
                results.setdefault((setup, "conn"), []).append(wrk(lab, a.seconds, True))
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
            print(f"    {setup:8} keepalive {results[(setup, 'keepalive')][-1]:9.0f}  "
                  f"conn {results[(setup, 'conn')][-1]:9.0f}", flush=True)  # fmt: skip
        if a.million:
            million(lab)
        nginx.kill()
    finally:
        lab.down()
    best = {k: max(v) for k, v in results.items()}
    print("\nbest of each (all rounds in brackets), requests/s")
    for (setup, metric), values in sorted(results.items()):
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {setup:8} {metric:10} {best[(setup, metric)]:9.0f} [{rounds}]")
    print("\nratios")
    for metric in ("keepalive", "conn"):
        h, p, r = (best[(s, metric)] for s in ("http", "plug", "routing"))
        print(f"  {metric:10} http/plug {h / p:5.2f}   http/routing {h / r:5.2f}   "
              f"plug/routing {p / r:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
