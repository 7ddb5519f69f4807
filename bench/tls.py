"""The blind TLS tunnel against plain routing, in the lab.

    sudo .venv/bin/python bench/tls.py [--gib 2] [--seconds 5] [--rounds 3]

- bulk: one HTTPS download (curl) of a GiB-sized file from nginx;
- handshakes/s: ``openssl s_time -new`` (full TLS 1.3 handshakes, one at a time,
  so it measures latency as much as capacity), with two of them in parallel.

zfw runs with the packet filter it generates for bench/tls_policy.py, pinned
to CPU 0; clients and nginx to CPU 1. Best of the rounds counts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zfw.lab import SERVER4, Lab
from zfw.lab.servers import pinned, self_signed_cert, start_nginx, tls_server_lines

HERE = os.path.dirname(os.path.abspath(__file__))


def bulk(lab: Lab, gib: int) -> float:
    start = time.monotonic()
    lab.run(
        "client",
        pinned(
            1,
            [
                "curl",
                "-sk",
                "-o",
                "/dev/null",
                "--resolve",
                f"bench.example:443:{SERVER4}",
                "https://bench.example/big",
            ],
        ),
        timeout=600,
    )
    return gib * 8 * 2**30 / (time.monotonic() - start) / 1e9


def handshakes(lab: Lab, seconds: int) -> float:
    cmd = pinned(
        1, ["openssl", "s_time", "-connect", f"{SERVER4}:443", "-new", "-time", str(seconds)]
    )
    procs = [lab.popen("client", cmd) for _ in range(2)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        m = re.search(r"(\d+) connections in ([\d.]+)s", out)
        if m:
            total += int(m.group(1)) / float(m.group(2))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    lab = Lab("zfwbenchtls").up()
    results: dict[tuple[str, str], list[float]] = {}
    try:
        d = tempfile.mkdtemp()
        self_signed_cert(d, "bench.example")
        subprocess.run(["truncate", "-s", f"{a.gib}G", f"{d}/big"], check=True)
        nginx = start_nginx(
            lab, d, tls_server_lines(d, d), "    access_log off;\n    sendfile on;", cpu=1
        )
        time.sleep(1)
        policy = os.path.join(HERE, "tls_policy.py")
        for r in range(a.rounds):
            for name in ("routing", "zfw"):
                lab.tproxy({}, divert="none")
                proc = None
                if name == "zfw":
                    lab.apply_rules(policy)
                    proc = lab.popen(
                        "fw",
                        pinned(0, lab.zfw_command(policy, "bench", "--log-file", "/dev/null")),
                    )
                    time.sleep(2)
                try:
                    results.setdefault((name, "bulk"), []).append(bulk(lab, a.gib))
                    results.setdefault((name, "handshakes"), []).append(handshakes(lab, a.seconds))
                finally:
                    if proc is not None:
                        proc.kill()
                        proc.wait()
            print(f"round {r + 1} of {a.rounds} done", flush=True)
        nginx.kill()
    finally:
        lab.down()
    best = {k: max(v) for k, v in results.items()}
    for (name, metric), values in sorted(results.items()):
        unit = "Gbit/s" if metric == "bulk" else "handshakes/s"
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:8} {metric:11} {best[(name, metric)]:9.1f} {unit:13} [{rounds}]")
    for metric in ("bulk", "handshakes"):
        print(f"  {metric:11} zfw/routing {best[('zfw', metric)] / best[('routing', metric)]:.2f}")


if __name__ == "__main__":
    main()
