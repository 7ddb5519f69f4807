"""TLS inspection: zfw (HttpProxy inside TwoSidedEncryption) against mitmproxy in
transparent mode, Squid with ssl_bump (peek, then bump) and plain routing, in the lab.

    sudo .venv/bin/python bench/tls_inspect.py [--seconds 10] [--rounds 3]
    sudo .venv/bin/python bench/tls_inspect.py --ab REV --setups zfw [--rounds 5]
    sudo .venv/bin/python bench/tls_inspect.py --setups zfw,squid --head-to-head 9

``contrib/install-deps --bench`` installs what it needs: Debian's ``squid-openssl``,
gcc, and mitmproxy from PyPI in ``.venv-mitmproxy`` (it needs Python 3.12; a setup
that is missing is left out and said so).

- keep-alive HTTPS requests/s: wrk, 32 connections, small responses from nginx;
- new connections/s: wrk with ``Connection: close``, every connection a full
  handshake on both sides. wrk would resume its TLS sessions: the LD_PRELOAD shim
  ``bench/no_tls_resume.c`` stops that (checked first against a server that offers
  resumption), and nginx toward the proxies offers no resumption either.

Every proxy terminates the client's TLS with a leaf it makes from the same CA (EC
P-256) and verifies the server against the test CA made for this run; a curl that
trusts only that CA shows that each one inspects before it is measured. Each proxy
runs pinned to CPU 0, wrk and nginx to CPU 1. Medians of the rounds count, and
(steadier on a noisy machine: the setups of a round meet it in the same state)
the median of the ratios within each round. With ``--ab REV``, zfw of the commit
REV (a git worktree, first on the module path) runs in every round too, as
``base``: what a change gains or costs, in one run.

Then, steadiest of all (``--head-to-head N`` rounds, 5 unless told): zfw and Squid
(and ``base``) run at once, sharing CPU 0, each under its own wrk at the same time,
and each round compares their requests per CPU-second: whatever state the machine
is in, both meet it together.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from plug import (  # noqa: E402
    BASE,
    base_worktree,
    cpu_seconds,
    many_connections,
    paired,
    remove_worktree,
    wrk_rate,
)

from tests.e2e.pki import server_certificate  # noqa: E402
from zfw.lab import SERVER4, Lab  # noqa: E402
from zfw.lab.servers import pinned, start_nginx  # noqa: E402
from zfw.tls.certs import CertificateAuthority, create_ca  # noqa: E402

NAME = "www.example.com"
MITMDUMP = os.path.join(HERE, "..", ".venv-mitmproxy", "bin", "mitmdump")
#: Targets of the issue: zfw's rate over each other setup's.
TARGETS = {
    ("keepalive", "mitmproxy"): 10.0,
    ("keepalive", "squid"): 1.0,
    ("conn", "squid"): 1.0,
    ("conn", "mitmproxy"): 3.0,
}

POLICY = """
from zfw.policy import *

PKI = {pki!r}
InetZone("lan", ["192.0.2.0/24"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["*"])

INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=(PKI + "/inspect/ca.pem", PKI + "/inspect/ca.key")),
    server_verify=ServerCertificateVerifier(ca_file=PKI + "/origin/ca.pem"),
)


class Web(HttpProxy):
    def config(self):
        # Squid puts no limit on the requests of one connection, and nginx here none
        # that the bench reaches; zfw's default (1000) would reconnect, and measure that.
        self.max_keepalive_requests = 10**9


def {instance}():
    InstanceOptions(max_sessions=100000)
    # One load generator is one client address: lift the per-client limits.
    Service("https", Web, encryption=INSPECT, max_sessions=100000,
            max_sessions_per_client=100000, max_new_sessions_per_client=1e6)
    Listener(SockAddrInet("", {port}), "https", intercept=443)
"""
#: Where each proxy listens; diverted there from the port wrk connects to. zfw's
#: instance is named after its setup (``zfw``, ``base``), so that both can run at once.
LISTEN = {"zfw": 50443, "base": 50444, "squid": 3130, "mitmproxy": 50443}

NGINX_HTTP = """    access_log off;
    keepalive_requests 1000000;
    log_format reuse '$ssl_session_reused';"""
# Toward the proxies (443; 9443 for the second proxy of a head-to-head): no resumption
# (full handshakes on the server side too). On 8443, resumption offered and logged, to
# check that the shim stops wrk from using it.
NGINX_SERVER = """        listen 443 ssl reuseport backlog=4096;
        listen 9443 ssl reuseport backlog=4096;
        ssl_certificate {d}/origin/server.pem; ssl_certificate_key {d}/origin/server.key;
        ssl_session_cache off; ssl_session_tickets off;
        location / {{ return 200 "hello\\n"; }}
    }}
    server {{
        listen 8443 ssl;
        ssl_certificate {d}/origin/server.pem; ssl_certificate_key {d}/origin/server.key;
        ssl_session_cache shared:check:1m; ssl_session_tickets on;
        access_log {d}/reuse.log reuse;
        location / {{ return 200 "hello\\n"; }}"""

SQUID_CONF = """\
http_port 3128
https_port 3130 tproxy ssl-bump tls-cert={d}/squid/ca.pem tls-key={d}/squid/ca.key \
generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s {d}/squid/ssl_db -M 16MB
sslcrtd_children 4
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={d}/origin/ca.pem
hosts_file {d}/hosts
dns_nameservers 127.0.0.1
http_access allow all
cache deny all
access_log none
pinger_enable off
cache_log {d}/squid/cache.log
pid_filename {d}/squid/squid.pid
coredump_dir {d}/squid
shutdown_lifetime 0 seconds
max_filedescriptors 8192
"""


def make_pki(d: str) -> None:
    """The origin CA and nginx's certificate; the CA all three proxies sign leaves with."""
    origin = CertificateAuthority.load(*create_ca(f"{d}/origin", "bench origin CA"))
    server_certificate(f"{d}/origin", "server", [NAME], origin)
    cert, key = create_ca(f"{d}/inspect", "bench inspection CA")
    os.chmod(f"{d}/origin", 0o755)
    os.chmod(f"{d}/origin/server.key", 0o644)  # nginx's worker reads it
    for name in ("mitm", "squid"):
        os.makedirs(f"{d}/{name}", mode=0o755)
    with open(key, "rb") as k, open(cert, "rb") as c:
        key_pem, cert_pem = k.read(), c.read()
    with open(f"{d}/mitm/mitmproxy-ca.pem", "wb") as f:  # mitmproxy: key and certificate
        f.write(key_pem + cert_pem)
    for src, name in ((key_pem, "ca.key"), (cert_pem, "ca.pem")):
        with open(f"{d}/squid/{name}", "wb") as f:  # Squid runs as the proxy user
            f.write(src)
        os.chmod(f"{d}/squid/{name}", 0o644)
    with open(f"{d}/hosts", "w") as f:
        f.write(f"{SERVER4} {NAME}\n")


def client(d: str, args: list[str], shim: str | None = None) -> list[str]:
    """``args`` on CPU 1 with ``www.example.com`` in /etc/hosts, in a mount namespace of
    its own (nothing of the host's changes), with the no-resumption shim if given."""
    preload = ["env", f"LD_PRELOAD={shim}"] if shim else []
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"',
        f"{d}/hosts",
        *pinned(1, [*preload, *args]),
    ]


def wrk(lab: Lab, d: str, seconds: int, close: bool, shim: str, port: int = 443) -> float:
    args = [
        "timeout",
        "-s",
        "KILL",
        str(seconds + 30),
        "wrk",
        "-t1",
        "-c32",
        f"-d{seconds}s",
        "--timeout",
        "5s",
    ]
    if close:
        args += ["-H", "Connection: close"]
    url = f"https://{NAME}{'' if port == 443 else f':{port}'}/"
    proc = lab.run(
        "client",
        client(d, [*args, url], shim if close else None),
        check=False,
        timeout=seconds + 60,
    )
    return wrk_rate(proc)


def measured(
    lab: Lab, d: str, seconds: int, close: bool, shim: str, proc, port: int = 443
) -> tuple[float, float]:
    """wrk's rate, and the share of a CPU the proxy used meanwhile (0 for routing)."""
    start, wall = (cpu_seconds(proc.pid) if proc else 0.0), time.monotonic()
    rate = wrk(lab, d, seconds, close, shim, port)
    used = (cpu_seconds(proc.pid) - start) / (time.monotonic() - wall) if proc else 0.0
    return rate, used


def head_to_head(
    lab: Lab, d: str, seconds: int, shim: str, other: str, rounds: int
) -> dict[str, list[float]]:
    """zfw and ``other`` up at once, sharing CPU 0, each under its own wrk at the same
    time: zfw's requests per CPU-second over ``other``'s, per round.

    Run one after the other, two proxies meet this VM in different states, and their
    rates scatter by a third; sharing one core at the same moment, both meet the same.
    The two swap nginx's ports (443, 9443) every other round.
    """
    setups = ("zfw", other)
    procs: dict[str, subprocess.Popen[str] | None] = {}
    ratios: dict[str, list[float]] = {"keepalive": [], "conn": []}
    try:
        for setup, port in zip(setups, (443, 9443), strict=True):
            procs[setup] = start(lab, d, setup, port)
        for r in range(rounds):
            ports = dict(zip(setups, (443, 9443) if r % 2 == 0 else (9443, 443), strict=True))
            lab.tproxy({port: LISTEN[setup] for setup, port in ports.items()})
            line = f"    round {r + 1}:"
            for metric, close in (("keepalive", False), ("conn", True)):
                with ThreadPoolExecutor(2) as pool:  # both wrk at once
                    runs = {
                        s: pool.submit(measured, lab, d, seconds, close, shim, procs[s], port)
                        for s, port in ports.items()
                    }
                got = {s: run.result() for s, run in runs.items()}
                per_cpu = {s: rate / used if used else 0.0 for s, (rate, used) in got.items()}
                ratios[metric].append(paired([per_cpu["zfw"]], [per_cpu[other]])[0])
                line += f"  {metric} " + " ".join(
                    f"{s} {got[s][0]:.0f}/s ({got[s][1]:.0%} CPU)" for s in setups
                )
                line += f" -> {ratios[metric][-1]:.2f}"
            print(line, flush=True)
    finally:
        for setup, proc in procs.items():
            stop(lab, proc, setup)
    return ratios


def check_shim(lab: Lab, d: str, shim: str) -> None:
    """wrk resumes sessions on its own; with the shim, none (or the figures mean nothing)."""
    for with_shim in (False, True):
        open(f"{d}/reuse.log", "w").close()
        lab.run(
            "client",
            client(
                d,
                ["wrk", "-t1", "-c4", "-d2s", "-H", "Connection: close", f"https://{NAME}:8443/"],
                shim if with_shim else None,
            ),
        )
        time.sleep(0.5)  # nginx writes its log at the end of each request
        with open(f"{d}/reuse.log") as f:
            marks = f.read().split()
        reused = marks.count("r")
        print(
            f"    wrk {'with' if with_shim else 'without'} the shim: {reused} of "
            f"{len(marks)} connections resumed a session"
        )
        if with_shim and (reused or not marks):
            raise SystemExit("the no-resumption shim did not work: the figures would mislead")


def listening(lab: Lab, port: int, proc: subprocess.Popen[str], what: str) -> None:
    for _ in range(200):
        if lab.run("fw", ["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on {port}")


def nat_redirect(lab: Lab, port: int | None) -> None:
    """mitmproxy's transparent mode reads the original destination that NAT keeps."""
    lab.run("fw", ["iptables-legacy", "-t", "nat", "-F", "PREROUTING"])
    if port is not None:
        lab.run(
            "fw",
            [
                "iptables-legacy",
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-i",
                "cl0",
                "-p",
                "tcp",
                "--dport",
                "443",
                "-j",
                "REDIRECT",
                "--to-ports",
                str(port),
            ],
        )


def start(lab: Lab, d: str, setup: str, dport: int = 443) -> subprocess.Popen[str] | None:
    """Start one setup pinned to CPU 0 (None: plain routing), for connections to ``dport``."""
    out = open(f"{d}/{setup}.out", "a")  # noqa: SIM115 (the process keeps it)
    if setup == "routing":
        lab.tproxy({}, divert="none")
        return None
    if setup != "mitmproxy":
        lab.tproxy({dport: LISTEN[setup]})
    if setup in ("zfw", "base"):
        # No access lines, as Squid (access_log none) and mitmproxy (-q) write none.
        args = lab.zfw_command(
            f"{d}/policy-{setup}.py",
            setup,  # the instance: each its own control socket
            "--log-file",
            "/dev/null",
            "--log-spec",
            "http.request:2",
        )
        env = {**os.environ, "PYTHONPATH": BASE[0]} if setup == "base" else None
        proc = lab.popen("fw", pinned(0, args), stdout=out, env=env)
        listening(lab, LISTEN[setup], proc, setup)
    elif setup == "squid":
        db = f"{d}/squid/ssl_db"
        if not os.path.exists(db):
            subprocess.run(
                ["/usr/lib/squid/security_file_certgen", "-c", "-s", db, "-M", "16MB"],
                check=True,
                capture_output=True,
            )
            subprocess.run(["chown", "-R", "proxy:proxy", f"{d}/squid"], check=True)
        with open(f"{d}/squid/squid.conf", "w") as f:
            f.write(SQUID_CONF.format(d=d))
        proc = lab.popen(
            "fw", pinned(0, ["squid", "-N", "-f", f"{d}/squid/squid.conf"]), stdout=out
        )
        listening(lab, LISTEN[setup], proc, setup)
    else:  # mitmproxy: on 443 only, never beside zfw
        lab.tproxy({}, divert="none")
        nat_redirect(lab, LISTEN[setup])
        args = [
            MITMDUMP,
            "--mode",
            "transparent",
            "--listen-port",
            str(LISTEN[setup]),
            "-q",
            "--set",
            f"confdir={d}/mitm",
            "--set",
            f"ssl_verify_upstream_trusted_ca={d}/origin/ca.pem",
        ]
        proc = lab.popen("fw", pinned(0, args), stdout=out)
        listening(lab, LISTEN[setup], proc, setup)
    # Inspected, not tunnelled: the client is shown a leaf of the inspection CA.
    ca = f"{d}/inspect/ca.pem"
    got = lab.run(
        "client",
        client(d, ["curl", "-sS", "--max-time", "20", "--cacert", ca, f"https://{NAME}:{dport}/"]),
        check=False,
    )
    if got.stdout != "hello\n":
        raise RuntimeError(f"{setup} does not inspect: {got.stderr.strip()}")
    return proc


def stop(lab: Lab, proc: subprocess.Popen[str] | None, setup: str) -> None:
    if proc is not None:
        proc.terminate()  # Squid removes its pid file and shared memory
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if setup == "mitmproxy":
        nat_redirect(lab, None)
    time.sleep(1)


def available(wanted: list[str]) -> list[str]:
    setups = ["zfw"]
    if shutil.which("squid") and os.path.exists("/usr/lib/squid/security_file_certgen"):
        setups.append("squid")
    else:
        print("    squid-openssl is not installed (contrib/install-deps --bench): left out")
    if os.path.exists(MITMDUMP):
        setups.append("mitmproxy")
    else:
        print("    mitmproxy is not installed (contrib/install-deps --bench): left out")
    return [s for s in setups if s == "zfw" or s in wanted]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--setups", default="zfw,squid,mitmproxy", help="which of these to run")
    ap.add_argument("--ab", metavar="REV", help="also zfw of commit REV, and the ratios")
    ap.add_argument(
        "--head-to-head",
        type=int,
        default=5,
        metavar="N",
        help="then N rounds of zfw and Squid (and REV) sharing CPU 0 at once; 0: none",
    )
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="zfw-tlsbench-")
    os.chmod(d, 0o755)
    make_pki(d)
    for setup in ("zfw", "base"):
        with open(f"{d}/policy-{setup}.py", "w") as f:
            f.write(POLICY.format(pki=d, port=LISTEN[setup], instance=setup))
    shim = f"{d}/no_tls_resume.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", shim, os.path.join(HERE, "no_tls_resume.c"), "-ldl"],
        check=True,
    )
    setups = available(a.setups.split(","))
    if a.ab:
        BASE.append(base_worktree(a.ab))
        setups.append("base")
    lab = Lab("zfwbenchtls").up()
    results: dict[tuple[str, str], list[float]] = {}
    used_cpu: dict[tuple[str, str], float] = {}
    shared: dict[str, dict[str, list[float]]] = {}
    try:
        many_connections(lab)
        nginx = start_nginx(lab, d, NGINX_SERVER.format(d=d), NGINX_HTTP, 4096, cpu=1)
        time.sleep(1)
        lab.tproxy({}, divert="none")
        check_shim(lab, d, shim)
        # Routing first: stale conntrack entries of diverted connections stall routed ones.
        # Then the setups in turn, in the opposite order every other round.
        order = ["routing"] * a.rounds
        for r in range(a.rounds):
            order += setups if r % 2 == 0 else setups[::-1]
        for setup in order:
            proc = start(lab, d, setup)
            try:
                for metric, close in (("keepalive", False), ("conn", True)):
                    rate, used = measured(lab, d, a.seconds, close, shim, proc)
                    results.setdefault((setup, metric), []).append(rate)
                    used_cpu[(setup, metric)] = used
            finally:
                stop(lab, proc, setup)
            line = f"    {setup:9}"
            for metric in ("keepalive", "conn"):
                line += f"  {metric} {results[(setup, metric)][-1]:6.0f}/s"
                if proc is not None:  # a proxy that does not use all its core is not the limit
                    line += f" ({used_cpu[(setup, metric)]:4.0%} CPU)"
            print(line, flush=True)
        for other in (s for s in setups if s in ("squid", "base")):
            if a.head_to_head:
                print(f"    zfw and {other} at once on CPU 0: zfw's rate per CPU-second over its")
                shared[other] = head_to_head(lab, d, a.seconds, shim, other, a.head_to_head)
        nginx.terminate()
        nginx.wait()
    finally:
        lab.down()
        remove_worktree()
    report(results, setups, shared)


def report(
    results: dict[tuple[str, str], list[float]],
    setups: list[str],
    shared: dict[str, dict[str, list[float]]],
) -> None:
    median = {k: statistics.median(v) for k, v in results.items()}
    print("\nmedians (rounds in brackets), per second")
    for setup in ["routing", *setups]:
        for metric, what in (("keepalive", "keep-alive requests"), ("conn", "new connections")):
            rounds = ", ".join(f"{v:.0f}" for v in results[(setup, metric)])
            print(f"  {setup:9} {what:20} {median[(setup, metric)]:8.0f} [{rounds}]")
    print("\nratios of the medians")
    for metric in ("keepalive", "conn"):
        zfw = median[("zfw", metric)]
        for other in ["routing", *setups[1:]]:
            ratio = zfw / median[(other, metric)] if median[(other, metric)] else float("inf")
            print(f"  {metric:9} zfw/{other:9} {ratio:6.2f}{verdict(metric, other, ratio)}")
    print("\nmedians of the ratios within each round (each round's in brackets)")
    for metric in ("keepalive", "conn"):
        for other in setups[1:]:
            ratio_line(metric, other, paired(results[("zfw", metric)], results[(other, metric)]))
    if shared:
        print("\nat once on CPU 0: medians of zfw's rate per CPU-second over the other's")
    for other, ratios in shared.items():
        for metric in ("keepalive", "conn"):
            ratio_line(metric, other, ratios[metric])


def ratio_line(metric: str, other: str, ratios: list[float]) -> None:
    """The median of ``ratios`` (zfw's over ``other``'s), each in brackets, and the target."""
    ratio = statistics.median(ratios)
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"  {metric:9} zfw/{other:9} {ratio:6.2f} [{rounds}]{verdict(metric, other, ratio)}")


def verdict(metric: str, other: str, ratio: float) -> str:
    """The issue's target for zfw's rate over ``other``'s, and whether it is met."""
    target = TARGETS.get((metric, other))
    if target is None:
        return ""
    return f"   target >= {target:g}: " + ("met" if ratio >= target else "NOT met")


if __name__ == "__main__":
    main()
