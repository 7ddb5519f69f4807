"""IPv4 and IPv6 forwarding, switched by ``zfw rules apply --forwarding`` only once
zfw's rules are loaded (and off when no rules of zfw's could be loaded)."""

from __future__ import annotations

import os
import subprocess

from zfw.errors import ZfwError

KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def _proc(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def switch(on: bool, netns: str | None = None) -> None:
    """Forwarding on or off for both families (IPv6 skipped where it is disabled)."""
    value = "1" if on else "0"
    if netns:
        # /proc/sys/net shows the namespace of whoever opens it: sysctl, run inside.
        args = [f"{k}={value}" for k in KEYS]
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *args],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ZfwError(f"sysctl: {proc.stderr.strip() or proc.returncode}")
        return
    for key in KEYS:
        if not os.path.exists(_proc(key)):
            continue
        try:
            with open(_proc(key), "w") as f:
                f.write(value)
        except OSError as e:
            raise ZfwError(f"cannot set {key}={value}: {e.strerror}") from None


def is_on(netns: str | None = None) -> bool:
    """Whether either family forwards."""
    if netns:
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, "sysctl", "-n", "-e", *KEYS],
            capture_output=True,
            text=True,
        )
        return "1" in proc.stdout.split()
    values = []
    for key in KEYS:
        if os.path.exists(_proc(key)):
            with open(_proc(key)) as f:
                values.append(f.read().strip())
    return "1" in values
