"""The control commands of a supervised instance: asked of every worker, answered once."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread

from zfw.control import client
from zfw.control.controller import Controller, _iso
from zfw.control.protocol import ControlError, Request, ok
from zfw.errors import ZfwError

if TYPE_CHECKING:
    from zfw.workers.supervisor import Supervisor


def summed(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``into`` plus ``more``: numbers added, dicts recursed, anything else kept as in
    ``into``."""
    for key, value in more.items():
        have = into.get(key)
        if key not in into:
            into[key] = value
        elif isinstance(value, dict) and isinstance(have, dict):
            summed(have, value)
        elif isinstance(value, int | float) and isinstance(have, int | float):
            into[key] = round(have + value, 3) if isinstance(value, float) else have + value
    return into


def _ask(path: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return client.call(path, request, timeout=30)
    except ZfwError as e:
        return {"ok": False, "error": str(e)}


class SupervisorController(Controller):
    """Answers control requests by asking the current workers and summing."""

    service: Supervisor

    def _all(self, request: dict[str, Any]) -> Deferred[list[tuple[int, dict[str, Any]]]]:
        sup = self.service
        slots = [w.slot for w in sup.current]
        ds = [deferToThread(_ask, sup.worker_socket(w), request) for w in sup.current]
        return gatherResults(ds).addCallback(lambda answers: list(zip(slots, answers, strict=True)))

    def handle(self, request: Request) -> Any:
        return getattr(self, f"do_{request.command}")(**request.args)

    def do_status(self) -> Deferred[dict[str, Any]]:  # type: ignore[override]
        sup = self.service
        pids = {w.slot: w.pid for w in sup.current}

        def total(answers: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
            workers = []
            services: dict[str, dict[str, Any]] = {}
            running = 0
            listeners: list[Any] = []
            for slot, a in answers:
                if not a.get("ok"):
                    workers.append({"worker": slot, "pid": pids.get(slot), "state": a["error"]})
                    continue
                running += a["sessions"]["running"]
                listeners = listeners or a["listeners"]
                workers.append(
                    {
                        "worker": slot,
                        "pid": a["pid"],
                        "state": a["state"],
                        "sessions": a["sessions"]["running"],
                    }
                )
                summed(services, a["services"])
            for name, service in sup.policy.instance.services.items():  # not a worker's share
                if name in services:
                    services[name]["limit"] = service.max_sessions
            return ok(
                instance=sup.instance,
                pid=os.getpid(),
                state="draining" if sup.draining else "running",
                policy={
                    "file": sup.policy_path,
                    "sha256": sup.policy_hash,
                    "loaded": _iso(sup.loaded_at),
                    "reloads": sup.reloads,
                },
                uptime=round(time.monotonic() - sup.started_monotonic, 1),
                log_spec=sup.log.spec_text,
                packet_filter="applied by this instance" if sup.apply_rules else "not managed here",
                sessions={"running": running, "limit": sup.policy.instance.options.max_sessions},
                listeners=listeners,
                services=services,
                workers=workers,
            )

        return self._all({"command": "status"}).addCallback(total)

    def do_sessions(self) -> Deferred[dict[str, Any]]:  # type: ignore[override]
        def joined(answers: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
            out = []
            for slot, a in answers:
                for s in a.get("sessions", []):
                    out.append({**s, "worker": slot})
            return ok(sessions=out)

        return self._all({"command": "sessions"}).addCallback(joined)

    def do_kill(self, session: str) -> Deferred[dict[str, Any]]:  # type: ignore[override]
        def found(answers: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
            for _slot, a in answers:
                if a.get("ok"):
                    return ok(killed=session)
            raise ControlError(f"no session {session!r}")

        return self._all({"command": "kill", "session": session}).addCallback(found)

    def do_loglevel(self, spec: str, seconds: float | None = None) -> Any:
        mine = super().do_loglevel(spec, seconds)  # refuses a bad spec before the workers
        request: dict[str, Any] = {"command": "loglevel", "spec": spec}
        if seconds is not None:
            request["seconds"] = seconds
        return self._all(request).addCallback(lambda _: mine)
