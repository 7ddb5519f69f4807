"""The nftables backend: zfw's ``table inet zfw`` loaded with ``nft -f``.

``nft -f`` sends a whole script as one netlink batch, which the kernel
applies as one transaction or not at all: the script that replaces zfw's
table (:func:`zfw.rules.nft.replace_script`) deletes and recreates it in the
same batch, so the packet filter is never half-applied, and a script that
fails leaves the previous table in place. Other tables are never touched.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess

from zfw.errors import ZfwError
from zfw.rules.nft import TABLE, NftTable, replace_script, table_text
from zfw.rules.nftbridge import remove_script


def _prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def available() -> bool:
    """Whether the ``nft`` command is installed."""
    return shutil.which("nft") is not None


def _nft(args: list[str], netns: str | None, script: str | None = None) -> str:
    if not available():
        raise ZfwError("the nft command is not installed (apt-get install nftables)")
    proc = subprocess.run(
        [*_prefix(netns), "nft", *args], input=script, capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise ZfwError(f"nft: {lines[0] if lines else f'exit status {proc.returncode}'}")
    return proc.stdout


def _bridged(netns: str | None) -> bool:
    """Whether zfw's bridge table is loaded."""
    return f"bridge {TABLE}" in tables(netns)


def apply(table: NftTable, netns: str | None = None) -> None:
    """Replace zfw's tables with ``table`` in one transaction."""
    _nft(["-f", "-"], netns, replace_script(table, bridged=_bridged(netns)))


def check(table: NftTable, netns: str | None = None) -> None:
    """Have nft check the script without applying it (``nft -c``)."""
    _nft(["-c", "-f", "-"], netns, replace_script(table, bridged=_bridged(netns)))


def snapshot(netns: str | None = None) -> str | None:
    """zfw's tables as nft lists them now (the bridge part after the inet table), or
    None when there is none."""
    loaded = tables(netns)
    text = "".join(
        _nft(["list", "table", family, TABLE], netns)
        for family in ("inet", "bridge")
        if f"{family} {TABLE}" in loaded
    )
    return text or None


def present(netns: str | None = None) -> bool:
    """Whether zfw's table (or its bridge part) is loaded."""
    loaded = tables(netns)
    return f"inet {TABLE}" in loaded or f"bridge {TABLE}" in loaded


def restore(saved: str | None, netns: str | None = None) -> None:
    """Put back a :func:`snapshot` (None: no table) in one transaction."""
    script = f"table inet {TABLE}\ndelete table inet {TABLE}\n"
    if _bridged(netns) or (saved and f"table bridge {TABLE} " in saved):
        script += remove_script(TABLE)
    _nft(["-f", "-"], netns, script + (saved or ""))


def flush(netns: str | None = None) -> None:
    """Remove zfw's tables (and nothing else)."""
    _nft(["-f", "-"], netns, replace_script(None, bridged=_bridged(netns)))


def tables(netns: str | None = None) -> list[str]:
    """Every table loaded (``inet zfw``, ``ip filter`` ...)."""
    if not available():
        return []
    proc = subprocess.run(
        [*_prefix(netns), "nft", "list", "tables"], capture_output=True, text=True
    )
    return [ln.split(None, 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("table ")]


def canonical(table: NftTable) -> str:
    """``table`` as nft would list it once loaded: loaded into a network namespace of
    its own that exists only for this (nothing reaches the host's)."""
    script = replace_script(table)
    listing = f"nft list table inet {TABLE}"
    if table.bridge is not None:
        listing += f" && nft list table bridge {TABLE}"
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"nft -f - && {listing}"],
        input=script,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ZfwError(f"nft: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def diff_lines(table: NftTable, netns: str | None = None) -> list[str]:
    """Unified diff from the loaded table to what the policy compiles to."""
    now = (snapshot(netns) or "").splitlines()
    new = canonical(table).splitlines()
    return list(difflib.unified_diff(now, new, "loaded (nft)", "policy (nft)", lineterm=""))


__all__ = [
    "apply",
    "available",
    "canonical",
    "check",
    "diff_lines",
    "flush",
    "present",
    "restore",
    "snapshot",
    "table_text",
    "tables",
]
