"""What each control command does, on the running service."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from zfw import net
from zfw.control.protocol import ControlError, Request, ok
from zfw.engine.engine import listen_keys
from zfw.engine.session import Session
from zfw.errors import ZfwError
from zfw.log import LogSpec

if TYPE_CHECKING:
    from zfw.twistd import ZfwService


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


class Controller:
    """Answers control requests from the service's engine, policy and log."""

    def __init__(self, service: ZfwService):
        self.service = service
        self._revert: Any = None

    def handle(self, request: Request) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """The answer to ``request``; :class:`ControlError` for a refusal."""
        return getattr(self, f"do_{request.command}")(**request.args)

    # --- the commands ----------------------------------------------------------------------

    def do_status(self) -> dict[str, Any]:
        svc = self.service
        engine = svc.engine
        assert engine is not None
        policy = svc.policy
        running: dict[str, list[Session]] = {}
        for s in engine.sessions.active:
            running.setdefault(s.service.name, []).append(s)
        services = {}
        for name, service in policy.instance.services.items():
            counters = engine.stats.service(name).snapshot(running.get(name, ()))
            services[name] = {"limit": service.max_sessions, **counters}
        listeners = [  # the open ones: none while draining
            {
                "address": net.fmt_addr(host, port),
                "service": lst.service,
                "mode": "transparent" if tproxy else "redirect" if lst.redirect else "plain",
            }
            for lst in policy.instance.listeners
            for host, port, tproxy in listen_keys(lst)
            if (host, port, tproxy) in engine.ports
        ]
        return ok(
            instance=svc.instance,
            pid=os.getpid(),
            state="draining" if svc.draining else "running",
            policy={
                "file": svc.policy_path,
                "sha256": svc.policy_hash,
                "loaded": _iso(svc.loaded_at),
                "reloads": svc.reloads,
            },
            uptime=round(time.monotonic() - svc.started_monotonic, 1),
            log_spec=svc.log.spec_text,
            packet_filter="applied by this instance" if svc.apply_rules else "not managed here",
            sessions={
                "running": len(engine.sessions.active),
                "limit": policy.instance.options.max_sessions,
            },
            listeners=listeners,
            services=services,
        )

    def do_sessions(self) -> dict[str, Any]:
        engine = self.service.engine
        assert engine is not None
        now = time.monotonic()
        out = []
        for s in sorted(engine.sessions.active, key=lambda s: s.started):
            from_client, from_server = s.traffic()
            target = s.decision.target
            out.append(
                {
                    "id": s.id,
                    "service": s.service.name,
                    "client": net.fmt_addr(*s.client),
                    "client_zone": s.client_zone,
                    "server": net.fmt_addr(*target) if target is not None else "-",
                    "server_zone": s.server_zone,
                    "state": s.proxy.state() if s.proxy is not None else "",
                    "bytes_from_client": from_client,
                    "bytes_from_server": from_server,
                    "age": round(now - s.started, 1),
                }
            )
        return ok(sessions=out)

    def do_kill(self, session: str) -> dict[str, Any]:
        engine = self.service.engine
        assert engine is not None
        found = engine.find(session)
        if found is None:
            raise ControlError(f"no session {session!r}")
        found.log("core.session", 3, "killed by zfw kill")
        found.abort()
        found.close()
        return ok(killed=session)

    def do_reload(self) -> Deferred[dict[str, Any]]:
        d = self.service.reload()

        def answered(refused: str | None) -> dict[str, Any]:
            if refused is not None:
                raise ControlError(refused)
            return ok(loaded=_iso(self.service.loaded_at), sha256=self.service.policy_hash)

        return d.addCallback(answered)

    def do_loglevel(self, spec: str, seconds: float | None = None) -> dict[str, Any]:
        log = self.service.log
        try:
            new = LogSpec.parse(spec, log.spec.default)
        except ZfwError as e:
            raise ControlError(str(e)) from None
        if seconds is not None and not 0 < seconds <= 86400:
            raise ControlError("seconds must be from 0 to 86400")
        if self._revert is not None and self._revert.active():
            self._revert.cancel()
            log.set_spec(self._saved)  # a second change counts from the original
        self._saved = log.spec
        log.set_spec(new)
        log("core.info", 3, f"log spec now {spec!r}" + (f" for {seconds:g} s" if seconds else ""))
        if seconds:

            def revert() -> None:
                self._revert = None
                log.set_spec(self._saved)
                log("core.info", 3, f"log spec back to {log.spec_text!r}")

            self._revert = self.service.reactor.callLater(seconds, revert)
        return ok(spec=log.spec_text, seconds=seconds)
