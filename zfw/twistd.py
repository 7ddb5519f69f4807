"""``twistd -n zfw --policy FILE --instance NAME``: options and the service."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.failure import Failure

from zfw import net, systemd, twisted_compat
from zfw.bridge import kernel_problem
from zfw.control.client import RUN_DIR, socket_path
from zfw.control.controller import Controller
from zfw.control.server import ControlFactory, listen_control
from zfw.engine.engine import Engine, transparency_needed
from zfw.errors import PolicyError, ZfwError
from zfw.loader import load_policy
from zfw.log import DEFAULT_LEVEL, Log
from zfw.model import Policy
from zfw.policyfiles import User, unreadable
from zfw.reactor import install as reactor_install
from zfw.tls import openssl_compat
from zfw.twistd_log import TwistedObserver, open_log


class Options(usage.Options):
    """Command line of the twistd plugin."""

    optParameters = [
        ["policy", "p", None, "policy file"],
        ["instance", "i", None, "instance to run (a function in the policy)"],
        ["log-spec", None, "", "per-tag verbosity, e.g. 'core.*:5,plug:3'"],
        ["verbose", "v", str(DEFAULT_LEVEL), "default verbosity (0-9)"],
        ["log-file", None, None, "write the log here (reopened on SIGUSR1)"],
        ["syslog-socket", None, "/dev/log", "the syslog socket --syslog sends to"],
        [
            "control-socket",
            None,
            None,
            f"the control socket (default {RUN_DIR}/INSTANCE.sock; 'none': no control socket)",
        ],
        ["metrics", None, None, "serve Prometheus metrics on HOST:PORT (off by default)"],
        ["rules-backend", None, "auto", "with --apply-rules: nft, iptables or auto"],
        ["workers", None, None, "worker processes: N or auto (default: the policy's, 1)"],
        ["worker-id", None, None, "(set by the supervisor for its workers)"],
    ]
    optFlags = [
        ["json-log", None, "log JSON lines"],
        ["syslog", None, "log to syslog (facility daemon) instead of standard output"],
        ["apply-rules", None, "apply the policy's packet filter at start and on SIGHUP"],
    ]

    def postOptions(self) -> None:
        for name in ("policy", "instance"):
            if not self[name]:
                raise usage.UsageError(f"--{name} is required")
        if not str(self["verbose"]).isdigit():
            raise usage.UsageError("--verbose takes a number")
        if self["syslog"] and self["log-file"]:
            raise usage.UsageError("--syslog and --log-file exclude each other")
        if self["rules-backend"] not in ("auto", "nft", "iptables"):
            raise usage.UsageError("--rules-backend takes nft, iptables or auto")
        if self["metrics"] is not None:
            self["metrics"] = parse_hostport(self["metrics"], "--metrics")
        workers = self["workers"]
        if workers not in (None, "auto") and not (workers.isdigit() and 1 <= int(workers) <= 256):
            raise usage.UsageError("--workers takes a number from 1 to 256 or auto")
        if self["worker-id"] is not None and not str(self["worker-id"]).isdigit():
            raise usage.UsageError("--worker-id takes a number")


class PolicyOutput:
    """Where a policy's ``print()`` goes (the loader's ``output``), for as long as its
    functions live: held while the policy loads, then each line to the log, on the
    reactor thread; the lines printed at run time (config(), decide() ...) at most once
    per :data:`PRINT_EVERY` seconds per policy line, so that a print per session cannot
    flood the log."""

    def __init__(self, log: Log, reactor: Any):
        self.log = log
        self.reactor = reactor
        self._held: list[tuple[Any, str]] | None = []
        self._thread = threading.get_ident()  # the reactor's (zfw starts on it)

    def __call__(self, where: Any, line: str) -> None:
        if self._held is not None:  # loading, in one thread: logged once it is done
            self._held.append((where, line))
        elif threading.get_ident() == self._thread:
            self._at_run_time(where, line)
        else:
            self.reactor.callFromThread(self._at_run_time, where, line)

    def loaded(self) -> None:
        """The load is over (on the reactor thread): log what it printed, every line."""
        held, self._held = self._held or [], None
        for where, line in held:
            self.log("core.policy", 3, f"{where}: the policy printed: {line}")

    def _at_run_time(self, where: Any, line: str) -> None:
        message = f"{where}: the policy printed: {line}"
        self.log.limited(f"print {where}", "core.policy", 3, message, every=PRINT_EVERY)


#: At run time, a policy line's prints reach the log at most once in this many seconds.
PRINT_EVERY = 10.0


class ZfwService(Service):
    """Runs one instance; SIGHUP reloads the policy, stop drains the sessions."""

    def __init__(
        self,
        policy_path: str,
        instance: str,
        log: Log,
        reactor: Any = None,
        apply_rules: bool = False,
        rules_backend: str = "auto",
        control_socket: str | None = None,
        metrics: tuple[str, int] | None = None,
        worker_id: int | None = None,
    ):
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.policy_path = policy_path
        self.instance = instance
        self.log = log
        self.reactor = reactor
        printed = PolicyOutput(log, reactor)
        self.policy, self.policy_hash = load_digested(policy_path, instance, printed)
        printed.loaded()
        self.loaded_at = time.time()
        self.started_monotonic = time.monotonic()
        self.reloads = 0
        self.engine: Engine | None = None
        self.apply_rules = apply_rules
        self.rules_backend = rules_backend
        self.control_socket = control_socket
        self.metrics = metrics
        self.worker_id = worker_id
        self._ports: list[Any] = []
        self._control_open = False
        self._reloading: Deferred[str | None] | None = None
        self.draining = False

    def setServiceParent(self, parent: Any) -> None:
        # twistd asks the application for an ILogObserver when it starts logging: be it,
        # so that Twisted's own messages go to zfw's log (public twistd API, as in a .tac).
        if hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, TwistedObserver(self.log))
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        self.engine = Engine(self.policy, self.log, self.reactor)
        if self.worker_id is not None:
            from zfw.workers.worker import serve_inherited

            serve_inherited(self)
        try:
            if self.apply_rules:
                from zfw.rules import apply as live
                from zfw.rules import backends
                from zfw.rules.compiler import compile_policy

                backend, why = backends.choose(self.rules_backend)
                self.rules_backend = backend.name  # reloads use the same
                ruleset = compile_policy(self.policy)
                live.apply_routing(ruleset, None)
                backend.apply(ruleset, None)  # before the reactor runs
                self.log(
                    "core.rules",
                    3,
                    f"packet filter applied ({backend.name}{'; ' + why if why else ''})",
                )
            self.engine.start()
            self._open_control()
        except ZfwError as e:
            self.log("core.error", 0, f"cannot start: {e}")
            print(f"zfw: {e}", file=sys.__stderr__)  # twistd has taken over sys.stderr
            raise SystemExit(1) from None
        # A worker's reloads are the supervisor's: a new generation of workers.
        signal.signal(signal.SIGHUP, self._sighup if self.worker_id is None else signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._sigusr1)
        # Everything loaded so far lives as long as the process: keep the cyclic garbage
        # collector from scanning it again and again as sessions come and go.
        gc.freeze()
        self.log(
            "core.info",
            3 if twisted_compat.fast() else 2,
            twisted_compat.status(),
        )
        # Checked now, not by the first TLS session on the reactor (it takes ~20 ms).
        fast_tls = openssl_compat.io().name == "fast"
        self.log("core.info", 3 if fast_tls else 2, openssl_compat.status())
        self.log(
            "core.info",
            3,
            f"instance {self.instance!r} started from {self.policy_path}",
            pid=os.getpid(),
        )
        systemd.notify(f"READY=1\nSTATUS=instance {self.instance} running\nMAINPID={os.getpid()}")
        if self.worker_id is not None:
            from zfw.workers.worker import tell_ready

            tell_ready(self)

    def _open_control(self) -> None:
        if self.control_socket:
            factory = ControlFactory(Controller(self).handle, self.log)
            self._ports.append(listen_control(self.reactor, self.control_socket, factory))
            self._control_open = True
            self.log("core.control", 3, f"control socket {self.control_socket}")
        if self.metrics:
            from zfw.metrics import listen_metrics

            assert self.engine is not None
            self._ports.append(listen_metrics(self.reactor, self.metrics, self))
            self.log("core.control", 3, f"metrics on http://{net.fmt_addr(*self.metrics)}/metrics")

    def _sighup(self, _signum: int, _frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def _sigusr1(self, _signum: int, _frame: Any) -> None:
        self.reactor.callFromThread(self._reopen_log)

    def _reopen_log(self) -> None:
        self.log.reopen()
        self.log("core.info", 3, "log reopened")

    def reload(self) -> Deferred[str | None]:
        """Load the policy again, off the reactor thread (it runs policy code), and switch
        to it in one step; fires with None, or the reason a broken policy was refused
        (the running one stays). A reload asked for during another waits for it."""
        if self._reloading is not None:
            waiting: Deferred[str | None] = Deferred()
            self._reloading.addBoth(lambda r: (self.reload().chainDeferred(waiting), r)[1])
            return waiting
        systemd.notify(systemd.reloading_state())
        printed = PolicyOutput(self.log, self.reactor)
        d = deferToThreadPool(
            self.reactor,
            self.reactor.getThreadPool(),
            load_digested,
            self.policy_path,
            self.instance,
            printed,
        )

        def log_printed(result: Any) -> Any:
            printed.loaded()
            return result

        d.addBoth(log_printed)
        d.addCallbacks(self._loaded, self._refused)
        self._reloading = d

        def done(result: str | None) -> str | None:
            self._reloading = None
            return result

        d.addBoth(done)
        return d

    def _refused(self, reason: Failure) -> str:
        text = str(reason.value) if reason.check(ZfwError) else reason.getErrorMessage()
        self.log("core.policy", 1, f"reload refused, keeping the running policy: {text}")
        systemd.notify("READY=1\nSTATUS=reload refused: the running policy stays")
        return text

    def _loaded(self, loaded: tuple[Policy, str]) -> Deferred[str | None] | str:
        """Open the new policy's listeners, then switch to it; or keep the running one."""
        assert self.engine is not None
        if self.draining:
            return self._refused(Failure(ZfwError("the instance is stopping")))
        policy, digest = loaded
        d = self.engine.reload(policy)
        d.addCallbacks(lambda _: self._switched(policy, digest), self._refused)
        return d

    def _switched(self, policy: Policy, digest: str) -> None:
        self.policy = policy
        self.policy_hash = digest
        self.loaded_at = time.time()
        self.reloads += 1
        systemd.notify(f"READY=1\nSTATUS=instance {self.instance} running")
        self.log("core.policy", 3, "policy reloaded")
        if self.apply_rules:
            # After the switch: added listeners are open before traffic is diverted to
            # them, dropped ones closed before their rules go.
            self._apply_rules()

    def _apply_rules(self) -> Deferred[None]:
        """``zfw rules apply`` in a child process, so the reactor never waits for it."""
        from twisted.internet.utils import getProcessOutputAndValue

        d = getProcessOutputAndValue(
            sys.executable,
            ["-m", "zfw.cli", "rules", "apply", self.policy_path, "--backend", self.rules_backend],
            env=dict(os.environ),
            reactor=self.reactor,
        )

        def done(result: tuple[bytes, bytes, int]) -> None:
            _out, err, code = result
            if code == 0:
                self.log("core.rules", 3, "packet filter applied")
            else:
                self.log(
                    "core.rules",
                    1,
                    "applying the packet filter failed, the previous "
                    f"rules stay: {err.decode(errors='replace').strip()}",
                )

        d.addCallback(done)
        return d

    def stopService(self) -> Deferred[None] | None:
        """Drain: stop accepting; the control socket answers until the sessions are done."""
        super().stopService()
        systemd.notify("STOPPING=1")
        self.draining = True
        if self.engine is None:
            self._close_control()
            return None
        grace = self.policy.instance.options.shutdown_grace
        d = self.engine.drain(grace)

        def stopped(_: object) -> None:
            self._close_control()
            self.log("core.info", 3, "stopped")
            self.log.flush()

        d.addCallback(stopped)
        return d

    def _close_control(self) -> None:
        for port in self._ports:
            port.stopListening()
        self._ports = []
        if self._control_open:  # no stale socket for the next start (maybe as another user)
            self._control_open = False
            with contextlib.suppress(OSError):
                os.unlink(self.control_socket)


def load_readable(path: str, instance: str, output: Any) -> Policy:
    """The policy, loaded (printing to ``output``) and, when zfw runs as a user other
    than root (a unit's ``User=``), checked to name only files that user can read."""
    policy = load_policy(path, instance, output=output)
    if policy.bridge is not None:  # the kernel must be set up for it (one line if not)
        problem = kernel_problem(policy.bridge)
        if problem:
            raise ZfwError(problem)
    if os.geteuid() != 0:
        denied = unreadable(policy, User.current())
        if denied:
            more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
            raise ZfwError(denied[0] + more)
    return policy


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    """``127.0.0.1:9150`` or ``[::1]:9150`` as ``(host, port)``; UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise usage.UsageError(f"{what} takes HOST:PORT, not {text!r}")
    return host, int(port)


def policy_digest(policy: Policy) -> str:
    """sha256 over the policy file and the zones files it included, in order."""
    h = hashlib.sha256()
    for path in policy.files:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def load_digested(path: str, instance: str, output: Any) -> tuple[Policy, str]:
    """The policy (:func:`load_readable`), checked to get the capability it needs, and
    its :func:`policy_digest`: at start, and for a reload (off the reactor: they read files)."""
    policy = load_readable(path, instance, output)
    why = transparency_needed(policy.instance)
    if why:
        net.check_capability(why)  # refused now, not session by session
    try:
        return policy, policy_digest(policy)
    except OSError as e:
        raise PolicyError(f"cannot read {e.filename}: {e.strerror}", path) from None


def raise_fd_limit() -> None:
    """Every session holds two sockets: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_service(options: Options) -> ZfwService:
    """Build the service; a policy or option mistake exits with one line."""
    raise_fd_limit()
    reactor_install()  # before anything imports the default reactor
    control = options["control-socket"]
    if control is None:
        control = socket_path(RUN_DIR, options["instance"])
    kw: dict[str, Any] = {
        "apply_rules": bool(options["apply-rules"]),
        "rules_backend": options["rules-backend"],
        "control_socket": None if control == "none" else control,
        "metrics": options["metrics"],
    }
    try:
        if options["worker-id"] is not None:
            from zfw.workers.limits import worker_policy

            worker = int(options["worker-id"])
            kw.update(apply_rules=False, metrics=None, worker_id=worker)
            service = ZfwService(options["policy"], options["instance"], open_log(options), **kw)
            workers = int(options["workers"] or 1)
            service.policy = worker_policy(service.policy, worker, workers)
            return service
        log = open_log(options)
        service = ZfwService(options["policy"], options["instance"], log, **kw)
        from zfw.workers.supervisor import Supervisor, worker_argv, worker_count

        workers = worker_count(options["workers"], service.policy)
        if workers == 1:
            return service
        from zfw.workers.limits import one_worker_only, one_worker_reason

        if (svc := one_worker_only(service.policy.instance)) is not None:
            raise ZfwError(f"--workers {workers}: {one_worker_reason(svc)}")
        if kw["control_socket"] is None:
            raise ZfwError("several workers need the control socket (not --control-socket none)")
        return Supervisor.taking_over(service, workers, worker_argv(options, workers))
    except ZfwError as e:
        raise SystemExit(str(e) if isinstance(e, PolicyError) else f"zfw: {e}") from None
