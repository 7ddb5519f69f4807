"""PlugProxy against plain kernel routing and a minimal Twisted relay, in the lab.

    sudo .venv/bin/python bench/plug.py [--seconds 5] [--gib 2]

Measures, through each of: plain routing, the minimal relay
(bench/minimal_relay.py) and zfw's PlugProxy (bench/plug_policy.py):

- bulk throughput of one stream (socat, /dev/zero to /dev/null);
- small keep-alive requests/s relayed (wrk against nginx);
- new connections/s (wrk with ``Connection: close``), with both forms of the
  DIVERT rule (the textbook ``-m socket`` first, and ``! --syn`` first).

The proxy runs pinned to CPU 0; load generator and server to CPU 1. Prints
figures and ratios; nothing here is a pass/fail test.
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

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = {80: 50080, 9: 50080}

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    server {{
        listen 80 reuseport backlog=4096;
        location / {{ return 200 "hello\\n"; }}
    }}
}}
"""


def pinned(cpu: int, args: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *args]


def wrk(lab: Lab, seconds: int, close: bool) -> float:
    args = ["wrk", "-t1", "-c32", f"-d{seconds}s"]
    if close:
        args += ["-H", "Connection: close"]
    out = lab.run("client", pinned(1, [*args, f"http://{SERVER4}/"]), timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"      (wrk: socket errors {errors.group(1)})")
    return float(m.group(1))


def bulk(lab: Lab, gib: int) -> float:
    start = time.monotonic()
    lab.run(
        "client",
        pinned(1, ["sh", "-c", f"head -c {gib}G /dev/zero | socat -b 262144 -u - TCP:{SERVER4}:9"]),
        timeout=600,
    )
    return gib * 8 * 2**30 / (time.monotonic() - start) / 1e9


def measure(lab: Lab, seconds: int, gib: int, name: str, divert: str, results: dict) -> None:
    lab.tproxy(PORTS if divert != "none" else {}, divert=divert)
    time.sleep(0.5)
    if divert in ("none", "nosyn"):
        results[(name, "bulk")] = bulk(lab, gib)
        results[(name, "keepalive")] = wrk(lab, seconds, close=False)
    results[(name, f"conn/{divert}")] = wrk(lab, seconds, close=True)
    for key, value in results.items():
        if key[0] == name and (key[1] == f"conn/{divert}" or divert in ("none", "nosyn")):
            unit = "Gbit/s" if key[1] == "bulk" else "req/s"
            print(f"  {name:8} {key[1]:16} {value:10.1f} {unit}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--gib", type=int, default=2)
    a = ap.parse_args()
    lab = Lab("zfwbench").up()
    results: dict = {}
    try:
        for ns in ("client", "server"):
            lab.run(
                ns,
                [
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.ip_local_port_range=1024 65000",
                    "net.ipv4.tcp_tw_reuse=1",
                ],
            )
        tmp = tempfile.mkdtemp()
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=tmp))
        nginx = lab.popen("server", pinned(1, ["nginx", "-c", os.path.join(tmp, "nginx.conf")]))
        sink = lab.popen(
            "server",
            pinned(
                1, ["socat", "-b", "262144", "-u", "TCP-LISTEN:9,reuseaddr,fork", "OPEN:/dev/null"]
            ),
        )
        time.sleep(1)
        print("plain kernel routing", flush=True)
        measure(lab, a.seconds, a.gib, "routing", "none", results)

        print("minimal Twisted relay (bench/minimal_relay.py)", flush=True)
        relay = lab.popen(
            "fw",
            pinned(0, [sys.executable, os.path.join(HERE, "minimal_relay.py"), "50080"]),
            stderr=subprocess.DEVNULL,
        )
        assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        for divert in ("nosyn", "textbook"):
            measure(lab, a.seconds, a.gib, "minimal", divert, results)
        relay.kill()
        relay.wait()

        print("zfw PlugProxy (bench/plug_policy.py, default log level)", flush=True)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        zfw = lab.popen(
            "fw",
            pinned(
                0,
                [
                    twistd,
                    "-n",
                    "--pidfile=",
                    "zfw",
                    "--policy",
                    os.path.join(HERE, "plug_policy.py"),
                    "--instance",
                    "bench",
                    "--log-file",
                    "/dev/null",
                ],
            ),
        )
        time.sleep(2)
        for divert in ("nosyn", "textbook"):
            measure(lab, a.seconds, a.gib, "zfw", divert, results)
        zfw.kill()
        nginx.kill()
        sink.kill()
    finally:
        lab.down()

    print("\nratios")
    for metric in ("bulk", "keepalive", "conn/nosyn", "conn/textbook"):
        z = results.get(("zfw", metric))
        m = results.get(("minimal", metric))
        r = results.get(("routing", metric if metric != "conn/textbook" else "conn/none"))
        if metric == "conn/nosyn":
            r = results.get(("routing", "conn/none"))
        line = f"  {metric:14} zfw/minimal {z / m:5.2f}"
        if r:
            line += f"   zfw/routing {z / r:5.2f}   minimal/routing {m / r:5.2f}"
        print(line)
    for name in ("minimal", "zfw"):
        t, n = results[(name, "conn/textbook")], results[(name, "conn/nosyn")]
        print(f"  {name}: new connections/s textbook DIVERT / '! --syn' DIVERT = {t / n:.2f}")


if __name__ == "__main__":
    main()
