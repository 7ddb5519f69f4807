"""``zfw rules apply`` when the policy does not load: which ruleset it leaves, what it
says, and forwarding, with a backend that records instead of touching the kernel (the
lab tests, tests/e2e/test_rules_boot.py, do the same with nft and iptables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zfw.cli import main
from zfw.rules import cli, forwarding

ROOT = Path(__file__).parent.parent.parent
GOOD = (ROOT / "tests" / "e2e" / "policies" / "boot.py").read_text()


class Recorder:
    """A backend that keeps what it was given; ``refuse``: closed or policy rulesets."""

    name = "fake"

    def __init__(self) -> None:
        self.loaded: str | None = None
        self.refuse: set[str] = set()

    def apply(self, ruleset, netns) -> None:
        kind = "closed" if not ruleset.table(4, "mangle").chains else "policy"
        if kind in self.refuse:
            raise cli.ZfwError(f"refused the {kind} ruleset")
        self.loaded = kind

    def present(self, netns) -> bool:
        return self.loaded is not None


@pytest.fixture
def env(tmp_path, monkeypatch):
    backend = Recorder()
    switched: list[bool] = []
    monkeypatch.setattr(cli, "_backend", lambda args: backend)
    monkeypatch.setattr(cli, "_leftovers", lambda backend, netns: None)
    monkeypatch.setattr(cli.live, "apply_routing", lambda ruleset, netns, remove=False: False)
    monkeypatch.setattr(cli, "STATE_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(forwarding, "switch", lambda on, netns=None: switched.append(on))
    policy = tmp_path / "policy.py"
    policy.write_text(GOOD)

    def apply(*extra: str) -> int:
        args = ["rules", "apply", str(policy), "--netns", "ns1", "--state-dir"]
        return main([*args, str(tmp_path / "state"), *extra])

    return backend, switched, policy, apply, tmp_path


def broken(policy: Path) -> None:
    policy.write_text(GOOD.replace('"192.0.2.0/25"', '"192.0.2.0/255"'))


def test_nothing_recorded_nothing_loaded_the_closed_ruleset(env, capsys):
    backend, switched, policy, apply, _tmp = env
    broken(policy)
    assert apply("--forwarding") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"zfw rules apply: {policy}:6: bad CIDR '192.0.2.0/255'")
    assert err.endswith("; applied the closed ruleset: nothing is forwarded (fake)\n")
    assert backend.loaded == "closed" and switched == [True]


def test_forwarding_is_left_alone_without_the_option(env, capsys):
    _backend, switched, policy, apply, _tmp = env
    assert apply() == 0 and switched == []
    broken(policy)
    assert apply() == 1 and switched == []


def test_the_last_good_ruleset_is_applied_again(env, capsys):
    backend, switched, policy, apply, _tmp = env
    assert apply("--forwarding") == 0 and backend.loaded == "policy" and switched == [True]
    backend.loaded = None  # as after a reboot
    broken(policy)
    assert apply("--forwarding") == 1
    err = capsys.readouterr().err
    assert "; kept the last good ruleset of " in err and err.count("\n") == 1
    assert backend.loaded == "policy" and switched == [True, True]


def test_unrecorded_rules_of_zfws_stay(env, capsys):
    backend, _switched, policy, apply, _tmp = env
    backend.loaded = "policy"  # applied by zfw run --apply-rules, say
    broken(policy)
    assert apply() == 1
    assert "kept zfw's rules loaded now, none being recorded as good" in capsys.readouterr().err
    assert backend.loaded == "policy"


def test_an_unreadable_record_is_said(env, capsys):
    _backend, _switched, policy, apply, tmp = env
    (tmp / "state").mkdir()
    (tmp / "state" / "last-good-ns1.json").write_text("{")
    broken(policy)
    assert apply() == 1
    err = capsys.readouterr().err
    assert "last-good-ns1.json is unreadable" in err and "applied the closed ruleset" in err


def test_rules_that_cannot_be_applied_fall_back_too(env, capsys):
    backend, switched, _policy, apply, _tmp = env
    backend.refuse = {"policy"}
    assert apply("--forwarding") == 1
    err = capsys.readouterr().err
    assert err.startswith("zfw rules apply: applying the rules failed: refused the policy")
    assert backend.loaded == "closed" and switched == [True]


def test_with_nothing_loadable_forwarding_is_switched_off(env, capsys):
    backend, switched, _policy, apply, _tmp = env
    backend.refuse = {"policy", "closed"}
    assert apply("--forwarding") == 1
    err = capsys.readouterr().err
    assert "the closed ruleset failed too (refused the closed ruleset)" in err
    assert err.endswith("no rules of zfw's could be loaded: forwarding switched off\n")
    assert backend.loaded is None and switched == [False]


def test_a_lock_out_refusal_falls_back_too(env, monkeypatch, capsys):
    backend, switched, policy, _apply, tmp = env
    monkeypatch.setattr(cli, "lockout_reason", lambda ruleset: "it would cut this SSH session")
    args = ["rules", "apply", str(policy), "--state-dir", str(tmp / "state"), "--forwarding"]
    assert main(args) == 1  # on the host: no --netns, no --force
    err = capsys.readouterr().err
    assert err.startswith("zfw rules apply: refusing to apply: it would cut this SSH session")
    assert err.endswith("; applied the closed ruleset: nothing is forwarded (fake)\n")
    assert backend.loaded == "closed" and switched == [True]


def test_a_lock_out_refusal_keeps_the_last_good_ruleset(env, monkeypatch, capsys):
    backend, _switched, policy, _apply, tmp = env
    args = ["rules", "apply", str(policy), "--state-dir", str(tmp / "state")]
    assert main(args) == 0 and backend.loaded == "policy"
    backend.loaded = None
    monkeypatch.setattr(cli, "lockout_reason", lambda ruleset: "it would cut this SSH session")
    assert main(args) == 1
    assert "; kept the last good ruleset of " in capsys.readouterr().err
    assert backend.loaded == "policy"
