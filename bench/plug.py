"""PlugProxy against plain kernel routing and a minimal Twisted relay, in the lab.

    sudo .venv/bin/python bench/plug.py [--seconds 5] [--gib 2] [--ab REV]

Measures, through each of: plain routing, the minimal relay
(bench/minimal_relay.py), the same relay passing half-closes on
(``--half-close``, as PlugProxy does) and zfw's PlugProxy
(bench/plug_policy.py):

- bulk throughput of one stream (socat, /dev/zero to /dev/null);
- small keep-alive requests/s relayed (wrk against nginx);
- new connections/s (wrk with ``Connection: close``), with both forms of the
  DIVERT rule (the textbook ``-m socket`` first, and ``! --syn`` first).

With ``--ab REV`` zfw of the commit REV (a git worktree of it, first on the
module path) runs in every round too, and the ratios this/REV are printed:
what a change costs, measured in one run.

The proxy runs pinned to CPU 0; load generator and server to CPU 1. Each
round runs every proxy once, back to back. Prints each figure's best round,
the ratios of the best rounds and the median of the ratios within each round
(steadier on a noisy machine); nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zfw.lab import SERVER4, Lab
from zfw.lab.servers import pinned, start_nginx

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = {80: 50080, 9: 50080}

NGINX_HTTP = "    access_log off;\n    keepalive_requests 1000000;"
NGINX_SERVER = """        listen 80 reuseport backlog=4096;
        location / { return 200 "hello\\n"; }"""


def many_connections(lab: Lab) -> None:
    """Ports enough for a load generator's new connections, in the client and server."""
    for ns in ("client", "server"):
        lab.run(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000",
                     "net.ipv4.tcp_tw_reuse=1"])  # fmt: skip


def wrk(lab: Lab, seconds: int, close: bool) -> float:
    args = [
        "timeout",
        "-s",
        "KILL",
        str(seconds + 20),
        "wrk",
        "-t1",
        "-c32",
        f"-d{seconds}s",
        "--timeout",
        "2s",
    ]
    if close:
        args += ["-H", "Connection: close"]
    proc = lab.run(
        "client", pinned(1, [*args, f"http://{SERVER4}/"]), check=False, timeout=seconds + 60
    )
    return wrk_rate(proc)


def wrk_rate(proc: subprocess.CompletedProcess[str]) -> float:
    """Requests/s of a wrk run (0: it failed), and its errors said."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    if not m:
        why = proc.stderr.strip()[:200]
        print(f"      (wrk failed, exit {proc.returncode}: {why}; this round counts 0)", flush=True)
        return 0.0
    errors = re.search(r"Socket errors: (.*)", proc.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    if errors or non2xx:
        print(f"      (wrk: {errors and errors.group(1)}; non-2xx {non2xx and non2xx.group(1)})")
    return float(m.group(1))


def bulk(lab: Lab, gib: int) -> float:
    start = time.monotonic()
    lab.run(
        "client",
        pinned(1, ["sh", "-c", f"head -c {gib}G /dev/zero | socat -b 262144 -u - TCP:{SERVER4}:9"]),
        timeout=600,
    )
    return gib * 8 * 2**30 / (time.monotonic() - start) / 1e9


#: The worktree of the --ab commit, when there is one.
BASE: list[str] = []


def base_worktree(rev: str) -> str:
    """A detached git worktree of ``rev`` in a temporary folder."""
    path = tempfile.mkdtemp(prefix="zfw-ab-")
    top = os.path.join(HERE, "..")
    subprocess.run(["git", "-C", top, "worktree", "add", "-q", "--detach", path, rev], check=True)
    return path


def remove_worktree() -> None:
    if BASE:
        subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", BASE[0]])


def start_proxy(lab: Lab, name: str):
    """Start the minimal relay or zfw (``base``: the --ab commit's) pinned to CPU 0;
    None for plain routing."""
    if name == "routing":
        return None
    env = None
    if name in ("minimal", "minimal-hc"):
        args = [sys.executable, os.path.join(HERE, "minimal_relay.py"), "50080"]
        if name == "minimal-hc":
            args.append("--half-close")
    else:
        args = lab.zfw_command(
            os.path.join(HERE, "plug_policy.py"), "bench", "--log-file", "/dev/null"
        )
        if name == "base":
            env = {**os.environ, "PYTHONPATH": BASE[0]}
    proc = lab.popen("fw", pinned(0, args), stderr=subprocess.DEVNULL, env=env)
    time.sleep(2)
    return proc


def stop_proxy(proc) -> None:
    if proc is not None:
        proc.kill()
        proc.wait()


def run_round(lab: Lab, a, name: str, results: dict) -> None:
    """One round of every metric for one setup; results keep each round's figure."""
    proc = start_proxy(lab, name)
    try:
        for divert in ("none",) if name == "routing" else ("nosyn", "textbook"):
            lab.tproxy(PORTS if divert != "none" else {}, divert=divert)
            time.sleep(0.5)
            if divert in ("none", "nosyn"):
                results.setdefault((name, "bulk"), []).append(bulk(lab, a.gib))
                results.setdefault((name, "keepalive"), []).append(wrk(lab, a.seconds, False))
            metric = "conn/none" if divert == "none" else f"conn/{divert}"
            results.setdefault((name, metric), []).append(wrk(lab, a.seconds, True))
    finally:
        stop_proxy(proc)


def cpu_seconds(root: int) -> float:
    """CPU time (user and system) of process ``root`` and all below it, including
    children that have ended (a proxy's helpers: Squid's certificate generators)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(below)
        tree |= below
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def paired(ours: list[float], theirs: list[float]) -> list[float]:
    """Round-by-round ratios (rounds where either failed are left out)."""
    return [a / b for a, b in zip(ours, theirs, strict=True) if a and b] or [0.0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--gib", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ab", metavar="REV", help="also zfw of commit REV, and the ratios")
    a = ap.parse_args()
    if a.ab:
        BASE.append(base_worktree(a.ab))
    proxies = ("minimal", "minimal-hc", "zfw", *(("base",) if a.ab else ()))
    lab = Lab("zfwbench").up()
    results: dict = {}
    try:
        many_connections(lab)
        nginx = start_nginx(lab, tempfile.mkdtemp(), NGINX_SERVER, NGINX_HTTP, 4096, cpu=1)
        sink = lab.popen(
            "server",
            pinned(
                1, ["socat", "-b", "262144", "-u", "TCP-LISTEN:9,reuseaddr,fork", "OPEN:/dev/null"]
            ),
        )
        time.sleep(1)
        # The machines are noisy: rounds alternate the proxies, and the best round counts.
        # Plain routing goes first: after a proxy has run, stale conntrack entries of its
        # diverted connections stall some routed ones.
        for _ in range(a.rounds):
            run_round(lab, a, "routing", results)
        for r in range(a.rounds):
            for name in proxies:
                run_round(lab, a, name, results)
            print(f"round {r + 1} of {a.rounds} done", flush=True)
            for (name, metric), values in sorted(results.items()):
                print(f"    {name:10} {metric:14} {values[-1]:10.1f}", flush=True)
        nginx.kill()
        sink.kill()
    finally:
        lab.down()
        remove_worktree()

    best = {k: max(v) for k, v in results.items()}
    print("\nbest of each (all rounds in brackets)")
    for (name, metric), values in sorted(results.items()):
        unit = "Gbit/s" if metric == "bulk" else "req/s"
        rounds = ", ".join(f"{v:.1f}" if unit == "Gbit/s" else f"{v:.0f}" for v in values)
        print(f"  {name:10} {metric:14} {best[(name, metric)]:10.1f} {unit:6} [{rounds}]")
    print("\nratios of the best rounds")
    metrics = (
        ("bulk", "bulk"),
        ("keepalive", "keepalive"),
        ("conn/nosyn", "conn/none"),
        ("conn/textbook", "conn/none"),
    )
    for metric, base in metrics:
        z, m, r = best[("zfw", metric)], best[("minimal", metric)], best[("routing", base)]
        h = best[("minimal-hc", metric)]
        print(
            f"  {metric:14} zfw/minimal {z / m:5.2f}   zfw/minimal-hc {z / h:5.2f}   "
            f"zfw/routing {z / r:5.2f}   minimal/routing {m / r:5.2f}"
        )
    # Each round runs the three proxies back to back, so the machine's slow phases
    # mostly hit all three: the ratio within a round is steadier than that of two
    # best rounds, which may come from different phases.
    print("\nmedian of the ratios within each round (each round's ratios in brackets)")
    for metric, _base in metrics:
        line = f"  {metric:14}"
        for other in ("minimal", "minimal-hc"):
            ratios = paired(results[("zfw", metric)], results[(other, metric)])
            shown = ", ".join(f"{x:.2f}" for x in ratios)
            line += f" zfw/{other} {statistics.median(ratios):5.2f} [{shown}]  "
        print(line.rstrip())
    if a.ab:
        print(f"\nthis / {a.ab}: median of the ratios within each round [each round]")
        for metric, _base in metrics:
            ratios = paired(results[("zfw", metric)], results[("base", metric)])
            shown = ", ".join(f"{x:.3f}" for x in ratios)
            print(f"  {metric:14} {statistics.median(ratios):5.3f} [{shown}]")
    for name in ("minimal", "minimal-hc", "zfw"):
        t, n = best[(name, "conn/textbook")], best[(name, "conn/nosyn")]
        print(f"  {name}: new connections/s, textbook DIVERT / '! --syn' DIVERT = {t / n:.2f}")


if __name__ == "__main__":
    main()
