"""The supervisor's sums of its workers' counters."""

from __future__ import annotations

from zfw.workers.control import summed


def test_numbers_add_and_dicts_recurse():
    a = {"echo": {"sessions_running": 2, "refused": {"limit": 1}, "rates": {"1m": 0.5}}}
    b = {"echo": {"sessions_running": 3, "refused": {"limit": 4}, "rates": {"1m": 0.25}}}
    assert summed(a, b) == {
        "echo": {"sessions_running": 5, "refused": {"limit": 5}, "rates": {"1m": 0.75}}
    }


def test_what_only_one_worker_has_is_kept():
    assert summed({"a": {"x": 1}}, {"b": {"y": 2}}) == {"a": {"x": 1}, "b": {"y": 2}}


def test_workers_option_is_a_number_or_auto():
    import pytest
    from twisted.python import usage

    from zfw.twistd import Options

    base = ["--policy", "p.py", "--instance", "i"]
    for good in ("1", "4", "auto"):
        o = Options()
        o.parseOptions([*base, "--workers", good])
        assert o["workers"] == good
    for bad in ("0", "many", "-2", "257"):
        with pytest.raises(usage.UsageError, match="--workers takes a number"):
            Options().parseOptions([*base, "--workers", bad])
