"""The supervisor of an instance run by several worker processes.

It opens the instance's listening sockets once and keeps them for its lifetime;
each worker (``twistd -n zfw --worker-id K``) inherits them and serves them
(all workers accept from the same sockets: a queued connection outlives any one
worker). A worker that dies is started again with backoff; a reload starts a new
generation on the same sockets and lets the old one drain; SIGTERM drains all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from zfw import net, systemd
from zfw.engine.engine import ListenKey, listen_keys
from zfw.errors import NetError, ZfwError
from zfw.model import Policy
from zfw.twistd import ZfwService
from zfw.workers.limits import one_worker_only, one_worker_reason

#: Environment variable carrying a worker's inherited listeners (JSON).
FDS_ENV = "ZFW_WORKER_FDS"
#: Environment variable naming a worker's start (``w2``, then ``w2.2`` ...) in session ids.
TAG_ENV = "ZFW_WORKER_TAG"
#: A worker writes ``ready`` to this file descriptor once it serves.
READY_FD = 3
_FIRST_FD = 10
_BACKOFF_MAX = 30.0
_STEADY = 10.0  # a worker that lived this long restarts at once
_READY_TIMEOUT = 60.0


def worker_count(option: str | None, policy: Policy) -> int:
    """``--workers`` (``N`` or ``auto``: one per core) or the policy's ``workers``."""
    if option is None:
        return policy.instance.options.workers
    if option == "auto":
        return len(os.sched_getaffinity(0)) or 1
    return int(option)


def inherited_listeners() -> dict[ListenKey, tuple[int, int]]:
    """In a worker: listen key -> (file descriptor, family) it inherited."""
    raw = json.loads(os.environ.get(FDS_ENV, "[]"))
    return {(h, p, bool(t)): (fd, fam) for h, p, t, fd, fam in raw}


class _Worker(ProcessProtocol):
    """One worker process as the supervisor sees it."""

    def __init__(self, sup: Supervisor, slot: int, generation: int):
        self.sup = sup
        self.slot = slot
        self.generation = generation
        self.started = time.monotonic()
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.retired = False
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == READY_FD and b"ready" in data and not self.ready.called:
            self.ready.callback(None)

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(ZfwError(f"worker {self.slot} exited before it was ready"))
        self.ended.callback(None)
        self.sup._ended(self, reason)

    def signal(self, sig: str | int) -> None:
        if self.transport is not None and self.transport.pid is not None:
            self.transport.signalProcess(sig)


def worker_argv(options: Any, workers: int) -> list[str]:
    """The ``twistd zfw`` options a worker gets from the supervisor's (``--workers``
    tells it its share of the limits)."""
    argv = ["--policy", options["policy"], "--instance", options["instance"]]
    argv += ["--log-spec", options["log-spec"], "--verbose", str(options["verbose"])]
    argv += ["--syslog-socket", options["syslog-socket"], "--workers", str(workers)]
    if options["log-file"]:
        argv += ["--log-file", options["log-file"]]
    for flag in ("json-log", "syslog"):
        if options[flag]:
            argv.append(f"--{flag}")
    return argv


class Supervisor(ZfwService):
    """Owns the listening sockets, the control socket and the workers of an instance."""

    @classmethod
    def taking_over(cls, service: ZfwService, workers: int, argv: list[str]) -> Supervisor:
        """The supervisor of what ``service`` loaded (the policy is loaded once a start)."""
        sup = cls.__new__(cls)
        sup.__dict__.update(service.__dict__)
        sup._init_workers(workers, argv)
        return sup

    def _init_workers(self, workers: int, worker_argv: list[str]) -> None:
        self.workers = workers
        self.worker_argv = worker_argv
        self.sockets: dict[ListenKey, socket.socket] = {}
        self.current: list[_Worker] = []
        self.retiring: list[_Worker] = []
        self.generation = 0
        self._fails: dict[int, int] = {}
        self._starts: dict[int, int] = {}

    # --- sockets -------------------------------------------------------------------------

    def _open_sockets(self, policy: Policy) -> list[ListenKey]:
        """Open the sockets ``policy`` adds; NetError (nothing left open) if one cannot."""
        opened: list[ListenKey] = []
        for lst in policy.instance.listeners:
            for key in listen_keys(lst):
                if key in self.sockets or key in opened:
                    continue
                host, port, transparent = key
                try:
                    sock = net.listening_socket(host, port, transparent, lst.backlog)
                except NetError as e:
                    for k in opened:
                        self.sockets.pop(k).close()
                    raise NetError(f"{lst.location}: {e}" if lst.location else str(e)) from None
                sock.set_inheritable(True)
                self.sockets[key] = sock
                opened.append(key)
                what = "transparent" if transparent else "redirect" if lst.redirect else "plain"
                self.log(
                    "core.listener",
                    3,
                    f"listening on {net.fmt_addr(host, port)} ({what}) for service "
                    f"{lst.service!r}, shared by {self.workers} workers",
                )
        return opened

    def _close_unwanted(self, policy: Policy) -> None:
        wanted = {k for lst in policy.instance.listeners for k in listen_keys(lst)}
        for key in [k for k in self.sockets if k not in wanted]:
            self.sockets.pop(key).close()
            self.log("core.listener", 3, f"stopped listening on {net.fmt_addr(*key[:2])}")

    # --- workers -------------------------------------------------------------------------

    def _spawn(self, slot: int, generation: int) -> _Worker:
        w = _Worker(self, slot, generation)
        fds = {0: "w", 1: 1, 2: 2, READY_FD: "r"}
        listeners = []
        for i, (key, sock) in enumerate(sorted(self.sockets.items())):
            fds[_FIRST_FD + i] = sock.fileno()
            listeners.append([key[0], key[1], key[2], _FIRST_FD + i, sock.family])
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS")}
        env[FDS_ENV] = json.dumps(listeners)
        starts = self._starts[slot] = self._starts.get(slot, 0) + 1
        env[TAG_ENV] = f"w{slot}" if starts == 1 else f"w{slot}.{starts}"
        argv = [sys.executable, "-m", "zfw.workers.worker", *self.worker_argv]
        argv += ["--worker-id", str(slot), "--control-socket", self.worker_socket(w)]
        self.reactor.spawnProcess(w, sys.executable, argv, env=env, childFDs=fds)
        self.log("core.info", 3, f"worker {slot} started (pid {w.pid})")
        return w

    def worker_socket(self, w: _Worker) -> str:
        """The private control socket of worker ``w`` (beside the instance's): one per
        slot and generation, as two generations run side by side during a reload."""
        return os.path.join(self.worker_socket_dir(), f"w{w.slot}.{w.generation}.sock")

    def worker_socket_dir(self) -> str:
        """``INSTANCE.workers/`` beside the control socket (made when first asked)."""
        assert self.control_socket is not None
        base = (
            self.control_socket[: -len(".sock")]
            if self.control_socket.endswith(".sock")
            else self.control_socket
        )
        os.makedirs(base + ".workers", mode=0o700, exist_ok=True)
        return base + ".workers/"

    def _generation(self) -> Deferred[list[_Worker]]:
        """Start a new generation of workers; fires once all are ready."""
        self.generation += 1
        gen = [self._spawn(slot, self.generation) for slot in range(1, self.workers + 1)]
        d = gatherResults([w.ready for w in gen], consumeErrors=True)

        def failed(reason: Failure) -> Failure:
            for w in gen:
                w.retired = True
                w.signal("KILL")
            err = reason.value.subFailure.value if hasattr(reason.value, "subFailure") else reason
            raise ZfwError(f"the new workers did not start: {err}")

        timer = self.reactor.callLater(
            _READY_TIMEOUT,
            lambda: [w.ready.called or w.ready.errback(ZfwError("no ready")) for w in gen],
        )
        d.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
        d.addCallbacks(lambda _: gen, failed)
        return d

    def _ended(self, w: _Worker, reason: Failure) -> None:
        status = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        how = f"signal {sig}" if sig else f"status {status}"
        if w in self.retiring:
            self.retiring.remove(w)
            self.log("core.info", 3, f"worker {w.slot} (generation {w.generation}) ended ({how})")
            return
        if w.retired or self.draining or w not in self.current:
            return
        lived = time.monotonic() - w.started
        fails = 0 if lived >= _STEADY else self._fails.get(w.slot, 0) + 1
        self._fails[w.slot] = fails
        delay = 0.0 if fails == 0 else min(_BACKOFF_MAX, 0.5 * 2 ** (fails - 1))
        self.log("core.error", 1, f"worker {w.slot} died ({how}); restarting in {delay:g} s")
        self.reactor.callLater(delay, self._restart, w)

    def _restart(self, old: _Worker) -> None:
        if self.draining or old not in self.current:
            return
        new = self._spawn(old.slot, old.generation)
        self.current[self.current.index(old)] = new

    # --- the service ---------------------------------------------------------------------

    def startService(self) -> None:
        from twisted.application.service import Service

        Service.startService(self)
        try:
            if self.apply_rules:
                self._apply_rules_now()
            self._open_sockets(self.policy)
            self._open_control()
        except ZfwError as e:
            self.log("core.error", 0, f"cannot start: {e}")
            print(f"zfw: {e}", file=sys.__stderr__)
            raise SystemExit(1) from None
        signal.signal(signal.SIGHUP, self._sighup)
        signal.signal(signal.SIGUSR1, self._sigusr1)
        d = self._generation()

        def ready(gen: list[_Worker]) -> None:
            self.current = gen
            self.log(
                "core.info",
                3,
                f"instance {self.instance!r} started from {self.policy_path} "
                f"with {self.workers} workers",
                pid=os.getpid(),
            )
            systemd.notify(
                f"READY=1\nSTATUS=instance {self.instance} running, {self.workers} workers\n"
                f"MAINPID={os.getpid()}"
            )

        def failed(reason: Failure) -> None:
            self.log("core.error", 0, f"cannot start: {reason.getErrorMessage()}")
            self.reactor.stop()

        d.addCallbacks(ready, failed)

    def _open_control(self) -> None:
        from zfw.control.server import ControlFactory, listen_control
        from zfw.workers.control import SupervisorController

        if self.control_socket:
            factory = ControlFactory(SupervisorController(self).handle, self.log)
            self._ports.append(listen_control(self.reactor, self.control_socket, factory))
            self._control_open = True
            self.log("core.control", 3, f"control socket {self.control_socket}")
        if self.metrics:
            from zfw.metrics import listen_metrics
            from zfw.workers.metrics import SupervisorMetrics

            self._ports.append(
                listen_metrics(self.reactor, self.metrics, self, SupervisorMetrics(self))
            )
            self.log("core.control", 3, f"metrics on http://{net.fmt_addr(*self.metrics)}/metrics")

    def _apply_rules_now(self) -> None:
        from zfw.rules import apply as live
        from zfw.rules import backends
        from zfw.rules.compiler import compile_policy

        backend, why = backends.choose(self.rules_backend)
        self.rules_backend = backend.name
        ruleset = compile_policy(self.policy)
        live.apply_routing(ruleset, None)
        backend.apply(ruleset, None)
        self.log(
            "core.rules", 3, f"packet filter applied ({backend.name}{'; ' + why if why else ''})"
        )

    def _reopen_log(self) -> None:
        super()._reopen_log()
        for w in self.current:
            w.signal(signal.SIGUSR1)

    def _loaded(self, loaded: tuple[Policy, str]) -> Deferred[str | None] | str:
        """Open the new policy's sockets, start a generation on them, retire the old one."""
        if self.draining:
            return self._refused(Failure(ZfwError("the instance is stopping")))
        policy, digest = loaded
        svc = one_worker_only(policy.instance)
        if svc is not None:
            return self._refused(Failure(ZfwError(one_worker_reason(svc))))
        try:
            opened = self._open_sockets(policy)
        except NetError as e:
            return self._refused(Failure(e))
        # The workers load the policy file themselves: the one just checked.
        d = self._generation()

        def switched(gen: list[_Worker]) -> None:
            old, self.current = self.current, gen
            for w in old:
                w.retired = True
                self.retiring.append(w)
                w.signal("TERM")
            self._close_unwanted(policy)
            self._switched(policy, digest)

        def failed(reason: Failure) -> str:
            for k in opened:
                self.sockets.pop(k).close()
            return self._refused(reason)

        d.addCallbacks(switched, failed)
        return d

    def stopService(self) -> Deferred[None] | None:
        """SIGTERM: every worker drains; the sockets close once all have ended."""
        from twisted.application.service import Service

        Service.stopService(self)
        systemd.notify("STOPPING=1")
        self.draining = True
        workers = [*self.current, *self.retiring]
        for w in workers:
            w.signal("TERM")
        d = gatherResults([w.ended for w in workers if not w.ended.called])

        def stopped(_: object) -> None:
            for sock in self.sockets.values():
                sock.close()
            self.sockets.clear()
            if self.control_socket:  # the workers' private sockets (a killed one's stay)
                shutil.rmtree(os.path.dirname(self.worker_socket_dir()), ignore_errors=True)
            self._close_control()
            self.log("core.info", 3, "stopped")
            self.log.flush()

        d.addCallback(stopped)
        return d
