"""What the end-to-end tests of several proxies share."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zfw.lab import Lab, ZfwProcess


def curl(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """curl in the client, failing quietly (the caller checks what it got)."""
    return lab.run(
        "client",
        ["curl", "-sS", "--max-time", str(timeout), *args],
        check=False,
        timeout=timeout + 30,
    )


def big_file(path: Path, size: int, block: bytes) -> str:
    """Write ``size`` bytes of repeated ``block`` to ``path``; their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
            h.update(block)
    return h.hexdigest()


def passive_opens(lab: Lab) -> int:
    """TCP connections the server namespace has accepted so far."""
    lines = lab.run("server", ["cat", "/proc/net/snmp"]).stdout.splitlines()
    tcp = [ln.split() for ln in lines if ln.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("PassiveOpens")])


@contextmanager
def zfw_in_front(
    lab: Lab,
    server: subprocess.Popen[str] | list[subprocess.Popen[str]],
    policy: str,
    instance: str,
    log_spec: str,
    *extra: str,
) -> Iterator[ZfwProcess]:
    """zfw with the rules compiled from ``policy`` in front of ``server`` (one or a list);
    all stopped after. ``extra``: more options of ``twistd zfw``."""
    lab.tproxy({}, divert="none")
    lab.apply_rules(policy)
    z = lab.start_zfw(policy, instance, "--log-spec", log_spec, *extra)
    try:
        yield z
    finally:
        z.stop()
        stop_all(server if isinstance(server, list) else [server])
        lab.tproxy({}, divert="none")


def start_ftp_servers(lab: Lab, root: Path, ports: list[int]) -> list[subprocess.Popen[str]]:
    """pyftpdlib serving ``root`` on each port in the server; logs in ``root/../ftpPORT.log``."""
    procs = []
    for port in ports:
        log = root.parent / f"ftp{port}.log"
        p = lab.popen(
            "server",
            [
                sys.executable,
                "-m",
                "zfw.lab.ftpserver",
                "--root",
                str(root),
                "--port",
                str(port),
                "--log",
                str(log),
            ],
        )
        procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":
            for q in procs:
                q.kill()
            raise AssertionError(f"FTP server on {port}: {line!r}")
    return procs


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    """Stop and reap ``procs``: SIGTERM first, so that an nginx master takes its workers
    (which hold the listening sockets) with it; SIGKILL after 5 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
