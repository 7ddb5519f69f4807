"""The closed ruleset (what ``zfw rules apply`` falls back to) and the record of the last
good one: pure model, its two renderings, and the file on disk."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from zfw.cli import main
from zfw.loader import load_policy
from zfw.routing import TproxyRouting
from zfw.rules import nft, state
from zfw.rules.compiler import closed_ruleset, compile_policy
from zfw.rules.evaluate import Packet, evaluate, evaluate_nft
from zfw.rules.model import ruleset_from_data, ruleset_to_data
from zfw.rules.text import full_text

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXAMPLE = ROOT / "policies" / "three_zones.py"
ROUTING = TproxyRouting(0x1000000, 0x1000000, 100)
CLOSED = closed_ruleset(ROUTING)
FW = frozenset({"192.0.2.1", "2001:db8:1::1"})


@pytest.mark.parametrize(
    "packet",
    [
        Packet("192.0.2.2", "198.51.100.2", 80),
        Packet("192.0.2.2", "198.51.100.2", 25, syn=False, established=True),
        Packet("2001:db8:1::2", "2001:db8:2::2", 80),
        Packet("192.0.2.2", "198.51.100.2", 443, protocol="udp"),
    ],
)
def test_nothing_is_forwarded_or_diverted(packet):
    for verdict in (
        evaluate(CLOSED, packet, FW),
        evaluate_nft(nft.build(CLOSED), ROUTING, packet, FW),
    ):
        assert verdict.action == "drop", verdict


@pytest.mark.parametrize("dst", sorted(FW))
def test_the_hosts_own_traffic_is_left_alone(dst):
    src = "2001:db8:1::2" if ":" in dst else "192.0.2.2"
    packet = Packet(src, dst, 22)
    assert evaluate(CLOSED, packet, FW).action == "accept"
    assert evaluate_nft(nft.build(CLOSED), ROUTING, packet, FW).action == "accept"


def test_the_closed_ruleset_in_both_forms():
    text = full_text(CLOSED)
    assert "-A FORWARD -j ZFWFWD" in text and "-A ZFWDROP -j DROP" in text
    assert "INPUT" not in text and "PREROUTING" not in text and "TPROXY" not in text
    table = nft.build(CLOSED)
    assert [c.name for c in table.chains] == ["FORWARD", "ZFWFWD", "ZFWDROP"]
    assert table.chain("FORWARD").hook == ("forward", "filter")
    script = nft.replace_script(table)
    proc = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", "-"], input=script, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_show_closed_needs_no_policy(capsys):
    assert main(["rules", "show", "--closed", "--backend", "nft"]) == 0
    out = capsys.readouterr().out
    assert "hook forward" in out and 'log prefix "zfw closed: "' in out and "tproxy" not in out
    assert "routing" not in out  # the closed ruleset leaves the routing as it is
    assert main(["rules", "show", "--backend", "nft"]) == 2
    assert capsys.readouterr().err == "zfw: rules show needs a policy file (or --closed)\n"


def test_a_compiled_ruleset_survives_json():
    ruleset = compile_policy(load_policy(str(EXAMPLE)))
    data = json.loads(json.dumps(ruleset_to_data(ruleset)))
    assert ruleset_from_data(data) == ruleset
    assert ruleset_from_data(json.loads(json.dumps(ruleset_to_data(CLOSED)))) == CLOSED
    with pytest.raises(ValueError, match="format"):
        ruleset_from_data({**data, "format": 0})
    with pytest.raises(ValueError, match="not a ruleset"):
        ruleset_from_data({"format": data["format"], "tables": [[4, {}]]})


def test_the_record_is_root_only_and_replaced_whole(tmp_path):
    directory = str(tmp_path / "state")
    assert state.load(directory, None) == (None, None)
    first = state.LastGood(CLOSED, 1_700_000_000.0, "/etc/zfw/policy.py", "nft")
    state.save(directory, "ns1", first)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    path = state.path(directory, "ns1")
    assert path.endswith("last-good-ns1.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert state.load(directory, "ns1") == (first, None)
    assert state.load(directory, None) == (None, None)  # per namespace
    second = state.LastGood(
        compile_policy(load_policy(str(EXAMPLE))), 1_700_000_060.0, "/p.py", "iptables"
    )
    state.save(directory, "ns1", second)
    assert state.load(directory, "ns1") == (second, None)
    assert os.listdir(directory) == ["last-good-ns1.json"]  # no temporary file left
    Path(path).write_text("{ not json")
    last, problem = state.load(directory, "ns1")
    assert last is None and problem.startswith(f"the last good ruleset {path} is unreadable")


def test_the_state_directory_default_and_override(monkeypatch):
    monkeypatch.delenv("ZFW_STATE_DIR", raising=False)
    assert state.state_dir(None) == "/var/lib/zfw"
    monkeypatch.setenv("ZFW_STATE_DIR", "/tmp/elsewhere")
    assert state.state_dir(None) == "/tmp/elsewhere"
    assert state.state_dir("/given") == "/given"
