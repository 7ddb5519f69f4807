"""The generated iptables-restore text and nft script, compared with reviewed golden
files; nft itself checks each script (``nft -c``, in a network namespace of its own).

Regenerate after an intended change with ``ZFW_UPDATE_GOLDEN=1 pytest tests/rules``
and review the diff.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from zfw.loader import load_policy
from zfw.rules import backends, nft
from zfw.rules.compiler import compile_policy
from zfw.rules.text import full_text

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CASES = {
    "example": ROOT / "policies" / "three_zones.py",
    "nested": HERE / "policies" / "nested.py",
    "ipv6_only": HERE / "policies" / "ipv6_only.py",
    "long_name": HERE / "policies" / "long_name.py",
}
#: Bridged mode is for the nft backend only.
NFT_CASES = {**CASES, "bridge": HERE / "policies" / "bridge.py"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    text = full_text(compile_policy(load_policy(str(CASES[case]))))
    golden = HERE / "golden" / f"{case}.rules"
    if os.environ.get("ZFW_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("case", sorted(NFT_CASES))
def test_golden_nft(case):
    text = backends.Nft().text(compile_policy(load_policy(str(NFT_CASES[case]))))
    golden = HERE / "golden" / f"{case}.nft"
    if os.environ.get("ZFW_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("case", sorted(NFT_CASES))
def test_nft_accepts_the_script(case):
    script = nft.replace_script(nft.build(compile_policy(load_policy(str(NFT_CASES[case])))))
    proc = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", "-"], input=script, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_chain_names_fit_iptables():
    ruleset = compile_policy(load_policy(str(CASES["long_name"])))
    names = [c.name for _f, t in ruleset.tables for c in t.chains]
    assert "PR" + "z" * 26 in names and "LO" + "z" * 26 in names
    assert max(len(n) for n in names) == 28


def test_ipv6_only_zone_has_no_ipv4_chains():
    ruleset = compile_policy(load_policy(str(CASES["ipv6_only"])))
    v4 = [c.name for c in ruleset.table(4, "mangle").chains]
    v6 = [c.name for c in ruleset.table(6, "mangle").chains]
    assert "PRlan6" not in v4 and "PRlan6" in v6
    assert ruleset.routing.mark == 0x40000 and ruleset.routing.table == 42


def test_the_example_in_the_docs_is_what_rules_show_prints():
    """docs/rules.md shows ``zfw rules show --backend iptables`` of the example policy:
    the reviewed golden text (after an intended change, copy it into the docs)."""
    docs = (ROOT / "docs" / "rules.md").read_text()
    block = docs.split("## The example", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    assert block == (HERE / "golden" / "example.rules").read_text()
