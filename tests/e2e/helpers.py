"""What the end-to-end tests of several proxies share."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zfw.lab import Lab, ZfwProcess


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
    lab: Lab, server: subprocess.Popen[str], policy: str, instance: str, log_spec: str
) -> Iterator[ZfwProcess]:
    """zfw with the rules compiled from ``policy`` in front of ``server``; both stopped after."""
    lab.tproxy({}, divert="none")
    lab.apply_rules(policy)
    z = lab.start_zfw(policy, instance, "--log-spec", log_spec)
    try:
        yield z
    finally:
        z.stop()
        server.kill()
        server.wait()
        lab.tproxy({}, divert="none")
