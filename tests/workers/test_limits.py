"""A worker's share of the limits: the shares add up to the policy's limit."""

from __future__ import annotations

import os

import pytest

from zfw.loader import load_policy
from zfw.workers.limits import share, worker_policy

POLICY = os.path.join(os.path.dirname(__file__), "..", "e2e", "policies", "plug.py")


@pytest.mark.parametrize("limit", [1, 2, 7, 10, 1000])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_the_shares_add_up_to_the_limit(limit, workers):
    shares = [share(limit, k, workers) for k in range(1, workers + 1)]
    assert sum(shares) == limit
    assert max(shares) - min(shares) <= 1


def test_a_worker_policy_holds_its_share_of_every_limit():
    policy = load_policy(POLICY, "lab")
    first, second = (worker_policy(policy, k, 2) for k in (1, 2))
    for name, svc in policy.instance.services.items():
        a, b = first.instance.services[name], second.instance.services[name]
        assert a.max_sessions + b.max_sessions == svc.max_sessions
        if svc.max_sessions_per_client is not None:
            total = a.max_sessions_per_client + b.max_sessions_per_client
            assert total == svc.max_sessions_per_client
        rate = svc.max_new_sessions_per_client
        assert a.max_new_sessions_per_client == (None if rate is None else rate / 2)
    options = policy.instance.options
    assert (
        first.instance.options.max_sessions + second.instance.options.max_sessions
        == options.max_sessions
    )
    assert worker_policy(policy, 1, 1) is policy


def test_a_fixed_per_client_rate_is_shared_out_and_none_stays_none():
    import attrs

    from zfw.workers.limits import _service

    svc = load_policy(POLICY, "lab").instance.services["echo"]
    capped = attrs.evolve(svc, max_new_sessions_per_client=100.0, max_sessions_per_client=7)
    assert _service(capped, 1, 2).max_new_sessions_per_client == 50.0
    assert _service(capped, 1, 2).max_sessions_per_client == 4
    assert _service(capped, 2, 2).max_sessions_per_client == 3
    free = attrs.evolve(svc, max_new_sessions_per_client=None, max_sessions_per_client=None)
    assert _service(free, 1, 2).max_new_sessions_per_client is None
