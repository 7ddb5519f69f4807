"""The two ways zfw loads its packet filter, behind one interface, and the choice.

- ``iptables``: the legacy xtables tables, through python-iptables
  (:mod:`zfw.rules.apply`);
- ``nft``: one ``table inet zfw`` through ``nft -f`` (:mod:`zfw.rules.nftables`).

Both render the same compiled :class:`~zfw.rules.model.Ruleset`; the policy
routing is the same for both and is applied beside them.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Protocol

from zfw.errors import ZfwError
from zfw.rules import apply as legacy
from zfw.rules import nft, nftables
from zfw.rules.model import Ruleset
from zfw.rules.text import full_text, routing_text

BACKENDS = ("auto", "nft", "iptables")


class Backend(Protocol):
    """What ``zfw rules`` does with one backend."""

    name: str

    def text(self, ruleset: Ruleset, routing: bool = True) -> str: ...
    def apply(self, ruleset: Ruleset, netns: str | None) -> None: ...
    def snapshot(self, netns: str | None) -> Any: ...
    def restore(self, saved: Any, netns: str | None) -> None: ...
    def flush(self, netns: str | None) -> None: ...
    def present(self, netns: str | None) -> bool: ...
    def diff(self, ruleset: Ruleset, netns: str | None) -> list[str]: ...


def _no_bridge(ruleset: Ruleset) -> None:
    """The iptables backend cannot divert bridged frames here (no ebtables broute)."""
    if ruleset.bridge is not None:
        raise ZfwError(
            f"bridge {ruleset.bridge.device}: bridged mode needs the nft backend "
            "(--backend nft); the iptables backend cannot divert bridged traffic"
        )


class Iptables:
    """The legacy xtables backend (routed mode only)."""

    name = "iptables"

    def text(self, ruleset: Ruleset, routing: bool = True) -> str:
        _no_bridge(ruleset)
        return full_text(ruleset, routing)

    def apply(self, ruleset: Ruleset, netns: str | None) -> None:
        _no_bridge(ruleset)
        legacy.run_workers("apply", ruleset, netns)

    def snapshot(self, netns: str | None) -> dict[int, str]:
        return legacy.snapshot(netns)

    def restore(self, saved: dict[int, str], netns: str | None) -> None:
        legacy.restore(saved, netns)

    def flush(self, netns: str | None) -> None:
        legacy.run_workers("flush", None, netns)

    def present(self, netns: str | None) -> bool:
        if shutil.which(legacy.SAVE[4]) is None:
            return False
        try:
            saved = legacy.snapshot(netns)
        except ZfwError:
            return False
        return any(
            ln.startswith((":ZFWIN ", ":ZFWPRE ", ":ZFWFWD "))
            for t in saved.values()
            for ln in t.splitlines()
        )

    def diff(self, ruleset: Ruleset, netns: str | None) -> list[str]:
        _no_bridge(ruleset)
        return legacy.diff_lines(ruleset, netns)


class Nft:
    """The nftables backend."""

    name = "nft"

    def text(self, ruleset: Ruleset, routing: bool = True) -> str:
        return (
            "# nftables (nft -f): both families, one table of zfw's own\n"
            + nft.table_text(nft.build(ruleset))
            + ("\n# policy routing\n" + routing_text(ruleset) if routing else "")
        )

    def apply(self, ruleset: Ruleset, netns: str | None) -> None:
        nftables.apply(nft.build(ruleset), netns)

    def snapshot(self, netns: str | None) -> str | None:
        return nftables.snapshot(netns)

    def restore(self, saved: str | None, netns: str | None) -> None:
        nftables.restore(saved, netns)

    def flush(self, netns: str | None) -> None:
        nftables.flush(netns)

    def present(self, netns: str | None) -> bool:
        return nftables.present(netns)

    def diff(self, ruleset: Ruleset, netns: str | None) -> list[str]:
        return nftables.diff_lines(nft.build(ruleset), netns)


def get(name: str) -> Backend:
    """A backend by name (not ``auto``)."""
    return Nft() if name == "nft" else Iptables()


def choose(
    requested: str, netns: str | None = None, ruleset: Ruleset | None = None
) -> tuple[Backend, str]:
    """The backend to use and, for ``auto``, why: nft for a bridged ``ruleset`` (only
    nft can load it) or when the host's ``iptables`` is the nf_tables variant or nft
    tables are loaded, else iptables."""
    if requested != "auto":
        return get(requested), ""
    if ruleset is not None and ruleset.bridge is not None and nftables.available():
        return Nft(), "auto: the policy is bridged"
    if not nftables.available():
        return Iptables(), "auto: no nft command"
    if nftables.tables(netns):
        return Nft(), "auto: nftables tables are loaded"
    exe = shutil.which("iptables")
    if exe is not None:
        out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
        if "nf_tables" in out:
            return Nft(), "auto: this host's iptables is iptables-nft"
    return Iptables(), "auto: this host's iptables is the legacy one"


def other(backend: Backend) -> Backend:
    """The other backend."""
    return Iptables() if backend.name == "nft" else Nft()
