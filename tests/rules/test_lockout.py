"""The lock-out guard: an apply must not cut the SSH session it runs in."""

from __future__ import annotations

from zfw.loader import load_policy
from zfw.rules.cli import lockout_reason
from zfw.rules.compiler import compile_policy


def test_admin_session_is_kept(monkeypatch):
    ruleset = compile_policy(load_policy("policies/three_zones.py"))
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.2 50000 192.0.2.1 22")
    assert lockout_reason(ruleset) is None


def test_session_from_a_zone_without_ssh_is_refused(monkeypatch):
    ruleset = compile_policy(load_policy("policies/three_zones.py"))
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.100 50000 192.0.2.1 22")
    reason = lockout_reason(ruleset)
    assert reason and "192.0.2.100" in reason and "--force" in reason


def test_no_ssh_no_guard(monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    assert lockout_reason(compile_policy(load_policy("policies/three_zones.py"))) is None
