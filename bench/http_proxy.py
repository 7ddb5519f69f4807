"""HttpProxy against PlugProxy, Squid, a minimal relay and plain kernel routing, in the lab.

    sudo .venv/bin/python bench/http_proxy.py [--seconds 5] [--rounds 3] [--million]
    sudo .venv/bin/python bench/http_proxy.py --ab REV [--rounds 5]

- keep-alive requests/s with small responses (wrk, 32 connections, against nginx);
- new connections/s (wrk with ``Connection: close``);
- the same through Squid (Debian's, in TPROXY mode, no cache, no access log;
  ``contrib/install-deps --bench`` installs it) and through the minimal Twisted
  relay (bench/minimal_relay.py): the issue gave Squid's rate against such a relay;
- with ``--million``: one million keep-alive requests through HttpProxy; after
  every 10-s run, its RSS, then (through ``bench/memprobe``) the blocks
  Python's allocator holds after a garbage collection and the RSS after
  ``malloc_trim``. Per-request growth of live memory would show as a slope
  in the blocks; memory the C allocator keeps after it was freed shows as
  RSS that the trim gives back.

With ``--ab REV``: HttpProxy and PlugProxy of this checkout against those of the
commit REV (a git worktree of it, put first on the module path), in alternating
rounds, and their ratio per round: what a change costs, measured in one run.

zfw is pinned to CPU 0, wrk and nginx to CPU 1; the best round counts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from plug import (  # the same load, server, relay and A/B worktree
    BASE,
    NGINX_HTTP,
    NGINX_SERVER,
    base_worktree,
    many_connections,
    remove_worktree,
    start_proxy,
    wrk,
)

from zfw.lab import Lab
from zfw.lab.servers import pinned, start_nginx

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "http_policy.py")
SQUID_CONF = """\
http_port 3128
http_port 3129 tproxy
http_access allow all
cache deny all
access_log none
pinger_enable off
cache_log {dir}/cache.log
pid_filename {dir}/squid.pid
coredump_dir {dir}
shutdown_lifetime 0 seconds
max_filedescriptors 8192
"""


def start_squid(lab: Lab):
    """Squid in the firewall namespace, TPROXY port 3129, pinned to CPU 0 as zfw is."""
    directory = tempfile.mkdtemp()
    os.chmod(directory, 0o777)  # Squid runs as the proxy user
    conf = os.path.join(directory, "squid.conf")
    with open(conf, "w") as f:
        f.write(SQUID_CONF.format(dir=directory))
    lab.tproxy({80: 3129})
    return lab.popen("fw", pinned(0, ["squid", "-N", "-f", conf]))


def start_setup(lab: Lab, instance: str, env: dict[str, str] | None = None):
    """Start one setup pinned to CPU 0 (None: plain routing, nothing to start)."""
    if instance == "routing":
        lab.tproxy({}, divert="none")
        return None
    if instance == "minimal":
        lab.tproxy({80: 50080})
        return start_proxy(lab, "minimal")
    if instance == "squid":
        proc = start_squid(lab)
    elif instance.startswith("base-"):  # the --ab commit's (which may predate some options)
        inner = instance[len("base-") :]
        lab.tproxy({80: 50080 if inner == "http" else 50081})
        cmd = lab.zfw_command(POLICY, inner, "--log-file", "/dev/null")
        i = cmd.index("--control-socket")
        args = pinned(0, cmd[:i] + cmd[i + 2 :])
        proc = lab.popen("fw", args, env={**os.environ, "PYTHONPATH": BASE[0]})
    else:
        lab.tproxy({80: 50080 if instance == "http" else 50081})
        args = pinned(0, lab.zfw_command(POLICY, instance, "--log-file", "/dev/null"))
        proc = lab.popen("fw", args, env={**os.environ, **(env or {})})
    time.sleep(2)
    return proc


def stop(proc, setup: str) -> None:
    """Squid gets SIGTERM (it removes its pid file and shared memory), the others SIGKILL."""
    if setup == "squid":
        proc.terminate()
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def rss_kib(lab: Lab, pid: int) -> int:
    status = lab.run("fw", ["cat", f"/proc/{pid}/status"]).stdout
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def _lines(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.readlines()


def probe(lab: Lab, pid: int, path: str) -> tuple[int, int]:
    """Ask bench/memprobe in zfw for (allocated blocks, RSS KiB after malloc_trim)."""
    count = len(_lines(path))
    lab.run("fw", ["kill", "-USR2", str(pid)])
    for _ in range(100):
        time.sleep(0.05)
        lines = _lines(path)
        if len(lines) > count:
            blocks, rss = lines[-1].split()
            return int(blocks), int(rss)
    raise RuntimeError("zfw did not answer the memory probe (bench/memprobe not loaded?)")


def slope(samples: list[tuple[int, int]]) -> tuple[float, float]:
    """Growth per request, overall and over the second half, of (requests, value) samples."""
    first, half, last = samples[0], samples[len(samples) // 2], samples[-1]
    overall = (last[1] - first[1]) / max(1, last[0] - first[0])
    second = (last[1] - half[1]) / max(1, last[0] - half[0])
    return overall, second


def million(lab: Lab) -> None:
    """One million requests through HttpProxy; memory after every 10-s wrk run."""
    out = os.path.join(tempfile.mkdtemp(), "memprobe")
    env = {"PYTHONPATH": os.path.join(HERE, "memprobe"), "ZFW_MEMPROBE": out}
    proc = start_setup(lab, "http", env)
    assert proc is not None
    pid = int(lab.run("fw", ["pgrep", "-n", "-f", "zfw_plugin|twistd"]).stdout.split()[0])
    done, start = 0, time.monotonic()
    rss, blocks, trimmed = [], [], []
    try:
        while done < 1_000_000:
            done += int(wrk(lab, 10, False) * 10)
            rss.append((done, rss_kib(lab, pid)))
            b, t = probe(lab, pid, out)
            blocks.append((done, b))
            trimmed.append((done, t))
            print(
                f"    {done:>9} requests  RSS {rss[-1][1] / 1024:6.1f} MiB, "
                f"after trim {t / 1024:6.1f} MiB, allocated blocks {b}",
                flush=True,
            )
    finally:
        proc.kill()
        proc.wait()
    print(f"  {done} requests in {time.monotonic() - start:.0f} s, from {rss[0][0]} on:")
    for name, samples, unit in (
        ("RSS", rss, 1024),
        ("RSS after malloc_trim", trimmed, 1024),
        ("allocated blocks", blocks, 1),
    ):
        overall, second = slope(samples)
        what = "bytes" if unit == 1024 else "blocks"
        print(
            f"    {name:22} {samples[0][1]} -> {samples[-1][1]}: {overall * unit:.3f} {what} "
            f"per request overall, {second * unit:.3f} in the second half"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--million", action="store_true")
    ap.add_argument("--ab", metavar="REV", help="against the proxies of commit REV instead")
    a = ap.parse_args()
    if a.ab:
        BASE.append(base_worktree(a.ab))
    lab = Lab("zfwbenchhttp").up()
    results: dict[tuple[str, str], list[float]] = {}
    try:
        many_connections(lab)
        nginx = start_nginx(lab, tempfile.mkdtemp(), NGINX_SERVER, NGINX_HTTP, 4096, cpu=1)
        time.sleep(1)
        proxies = ["minimal", "squid", "plug", "http"]
        if a.ab:
            proxies = []
        elif shutil.which("squid") is None:
            print("    squid is not installed (contrib/install-deps --bench): left out")
            proxies.remove("squid")
        # Routing first: stale conntrack entries of diverted connections stall routed ones.
        order = ["routing"] * a.rounds + proxies * a.rounds
        if a.ab:
            # Which of the two goes first alternates: the second of a pair may find the
            # machine in another state (caches, frequency) than the first did.
            order = []
            for r in range(a.rounds):
                pairs = [["base-http", "http"], ["base-plug", "plug"]]
                order += [x for pair in pairs for x in (pair if r % 2 == 0 else pair[::-1])]
        for setup in order:
            proc = start_setup(lab, setup)
            try:
                results.setdefault((setup, "keepalive"), []).append(wrk(lab, a.seconds, False))
                results.setdefault((setup, "conn"), []).append(wrk(lab, a.seconds, True))
            finally:
                if proc is not None:
                    stop(proc, setup)
            print(f"    {setup:8} keepalive {results[(setup, 'keepalive')][-1]:9.0f}  "
                  f"conn {results[(setup, 'conn')][-1]:9.0f}", flush=True)  # fmt: skip
        if a.million:
            million(lab)
        nginx.kill()
    finally:
        lab.down()
        remove_worktree()
    best = {k: max(v) for k, v in results.items()}
    print("\nbest of each (all rounds in brackets), requests/s")
    for (setup, metric), values in sorted(results.items()):
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {setup:8} {metric:10} {best[(setup, metric)]:9.0f} [{rounds}]")
    print("\nratios")
    if a.ab:
        for proxy in ("http", "plug"):
            for metric in ("keepalive", "conn"):
                base = results[(f"base-{proxy}", metric)]
                pairs = zip(results[(proxy, metric)], base, strict=True)
                per_round = sorted(h / b for h, b in pairs)
                median = per_round[len(per_round) // 2]
                ratio = best[(proxy, metric)] / best[(f"base-{proxy}", metric)]
                rounds = ", ".join(f"{r:.3f}" for r in per_round)
                print(
                    f"  {proxy:4} {metric:10} this/{a.ab}: best {ratio:5.3f}"
                    f"   median within rounds {median:5.3f}   [{rounds}]"
                )
        return
    for metric in ("keepalive", "conn"):
        h, p, r, m = (best[(s, metric)] for s in ("http", "plug", "routing", "minimal"))
        print(f"  {metric:10} http/plug {h / p:5.2f}   http/minimal {h / m:5.2f}   "
              f"http/routing {h / r:5.2f}   plug/minimal {p / m:5.2f}")  # fmt: skip
        if ("squid", metric) in best:
            q = best[("squid", metric)]
            print(f"  {'':10} http/squid {h / q:5.2f}   squid/minimal {q / m:5.2f}   "
                  f"squid/plug {q / p:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
