"""FtpProxy's data channel against plain kernel routing and PlugProxy, in the lab.

    sudo .venv/bin/python bench/ftp.py [--gib 2] [--rounds 3]

curl in the client namespace downloads a file from pyftpdlib (sendfile) in
the server namespace, and uploads one, in passive and in active mode: once
routed by the kernel, once through zfw's FtpProxy (data channel on foreign
addresses, TPROXY for the control connection). The same file is downloaded
over HTTP from nginx (sendfile too), routed and through zfw's PlugProxy:
the data channel and PlugProxy share the relay, and the ratio of the two
downloads says what the FTP machinery costs on top of it. The proxy runs
pinned to CPU 0, client and servers to CPU 1. Prints Gbit/s and the ratios;
nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zfw.lab import SERVER4, Lab
from zfw.lab.servers import pinned, start_nginx

HERE = os.path.dirname(os.path.abspath(__file__))
#: nginx's port for the PlugProxy download.
PLUG_PORT = 8080


def transfer(lab: Lab, what: str, mode: str, gib: int) -> float:
    """One transfer of ``gib`` GiB; Gbit/s (0 when it failed)."""
    active = ["--ftp-port", "-"] if mode == "active" else []
    if what == "plug":
        cmd = ["curl", "-sS", "-o", "/dev/null", f"http://{SERVER4}:{PLUG_PORT}/big.bin"]
    elif what == "download":
        cmd = ["curl", "-sS", *active, "-o", "/dev/null", f"ftp://{SERVER4}/big.bin"]
    else:
        cmd = [
            "sh",
            "-c",
            f"head -c {gib}G /dev/zero | curl -sS {' '.join(active)} -u zfw:secret "
            f"-T - ftp://{SERVER4}/up.bin",
        ]
    start = time.monotonic()
    proc = lab.run("client", pinned(1, cmd), check=False, timeout=600)
    took = time.monotonic() - start
    if proc.returncode != 0:
        print(f"      ({what} {mode} failed: {proc.stderr.strip()})", flush=True)
        return 0.0
    return gib * 8 * 2**30 / took / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="zfw-ftp-bench-")
    os.chmod(root, 0o777)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.truncate(a.gib * 2**30)  # sparse: the disk is not what is measured
    lab = Lab("zfwbench").up()
    results: dict[tuple[str, str], list[float]] = {}
    server = lab.popen(
        "server",
        pinned(
            1,
            [
                sys.executable,
                "-m",
                "zfw.lab.ftpserver",
                "--root",
                root,
                "--port",
                "21",
                "--log",
                os.path.join(root, "..", "zfw-ftp-bench.log"),
            ],
        ),
    )
    nginx_dir = tempfile.mkdtemp(prefix="zfw-ftp-bench-nginx-")
    nginx = start_nginx(
        lab,
        nginx_dir,
        f"listen {PLUG_PORT}; root {root}; sendfile on;",
        connections=64,
        cpu=1,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        time.sleep(1)  # nginx is up
        for r in range(a.rounds):
            for name in ("routing", "zfw"):
                proc = None
                if name == "zfw":
                    lab.tproxy({21: 50021, PLUG_PORT: 50080})
                    args = lab.zfw_command(
                        os.path.join(HERE, "ftp_policy.py"), "bench", "--log-file", "/dev/null"
                    )
                    proc = lab.popen("fw", pinned(0, args), stderr=subprocess.DEVNULL)
                    time.sleep(2)
                else:
                    lab.tproxy({}, divert="none")
                try:
                    for what in ("download", "upload"):
                        for mode in ("passive", "active"):
                            gbit = transfer(lab, what, mode, a.gib)
                            results.setdefault((name, f"{what}/{mode}"), []).append(gbit)
                    gbit = transfer(lab, "plug", "http", a.gib)
                    results.setdefault((name, "plug download/http"), []).append(gbit)
                finally:
                    if proc is not None:
                        proc.kill()
                        proc.wait()
                    up = os.path.join(root, "up.bin")
                    if os.path.exists(up):
                        os.unlink(up)
            print(f"round {r + 1} of {a.rounds} done", flush=True)
    finally:
        for p in (server, nginx):
            p.kill()
            p.wait()
        lab.down()
    best = {k: max(v) for k, v in results.items()}
    print("\nbest of each, Gbit/s (all rounds in brackets)")
    for (name, metric), values in sorted(results.items()):
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:8} {metric:18} {best[(name, metric)]:6.2f} [{rounds}]")
    print("\nratios zfw/routing")
    for metric in sorted({m for _n, m in best}):
        r, z = best[("routing", metric)], best[("zfw", metric)]
        print(f"  {metric:18} {z / r if r else 0:5.2f}")
    print("\nratios FtpProxy download / PlugProxy download, same run (target >= 0.90)")
    plug = best[("zfw", "plug download/http")]
    for mode in ("passive", "active"):
        ftp = best[("zfw", f"download/{mode}")]
        print(f"  download/{mode:10} {ftp / plug if plug else 0:5.2f}")


if __name__ == "__main__":
    main()
