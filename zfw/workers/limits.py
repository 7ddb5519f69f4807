"""A worker's share of the instance's limits.

Each worker counts its own sessions; for a limit to hold across the workers,
each gets a share of it: ``limit // N``, plus one for the first ``limit % N``
workers. The shares add up to the limit, so it is never exceeded (closed by
default); a worker whose share is full refuses even if another has room.
"""

from __future__ import annotations

from types import MappingProxyType

import attrs

from zfw.model import Instance, Policy, Service


def one_worker_only(instance: Instance) -> Service | None:
    """A service of ``instance`` that cannot yet run in several workers, or None: a proxy
    that listens for data channels (FtpProxy) stalls when its instance is shared out."""
    for svc in instance.services.values():
        if getattr(svc.proxy_class, "transparent_data", False):
            return svc
    return None


def one_worker_reason(svc: Service) -> str:
    """Why ``svc`` keeps its instance to one worker."""
    return (
        f"service {svc.name!r} is {svc.proxy_class.__name__}, whose data channels are not "
        "shared across workers yet: run it in an instance of one worker"
    )


def share(limit: int, worker: int, workers: int) -> int:
    """Worker ``worker``'s (1..``workers``) share of ``limit``."""
    return limit // workers + (1 if worker <= limit % workers else 0)


def _service(svc: Service, worker: int, workers: int) -> Service:
    per_client, rate = svc.max_sessions_per_client, svc.max_new_sessions_per_client
    return attrs.evolve(
        svc,
        max_sessions=share(svc.max_sessions, worker, workers),
        # Explicit per-client caps are shared out too; without one, fair admission
        # works on each worker's share of max_sessions.
        max_sessions_per_client=None if per_client is None else share(per_client, worker, workers),
        max_new_sessions_per_client=None if rate is None else rate / workers,
    )


def worker_policy(policy: Policy, worker: int, workers: int) -> Policy:
    """``policy`` with the limits of its chosen instance shared out to ``worker``."""
    if workers == 1:
        return policy
    inst = policy.instance
    services = {name: _service(s, worker, workers) for name, s in inst.services.items()}
    options = attrs.evolve(
        inst.options, max_sessions=share(inst.options.max_sessions, worker, workers)
    )
    instance = attrs.evolve(inst, services=MappingProxyType(services), options=options)
    instances = {**policy.instances, inst.name: instance}
    return attrs.evolve(policy, instances=MappingProxyType(instances))
