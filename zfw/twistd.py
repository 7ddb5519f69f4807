"""``twistd -n zfw --policy FILE --instance NAME``: options and the service."""

from __future__ import annotations

import gc
import os
import resource
import signal
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.python import usage

from zfw.engine.engine import Engine, listen_keys
from zfw.errors import ZfwError
from zfw.loader import load_policy
from zfw.log import DEFAULT_LEVEL, Log, LogSpec
from zfw.reactor import install as reactor_install


class Options(usage.Options):
    """Command line of the twistd plugin."""

    optParameters = [
        ["policy", "p", None, "policy file"],
        ["instance", "i", None, "instance to run (a function in the policy)"],
        ["log-spec", None, "", "per-tag verbosity, e.g. 'core.*:5,plug:3'"],
        ["verbose", "v", str(DEFAULT_LEVEL), "default verbosity (0-9)"],
        ["log-file", None, None, "write zfw's log here instead of standard output"],
    ]
    optFlags = [
        ["json-log", None, "log JSON lines"],
        ["apply-rules", None, "apply the policy's packet filter at start and on SIGHUP"],
    ]

    def postOptions(self) -> None:
        for name in ("policy", "instance"):
            if not self[name]:
                raise usage.UsageError(f"--{name} is required")
        if not str(self["verbose"]).isdigit():
            raise usage.UsageError("--verbose takes a number")


class ZfwService(Service):
    """Runs one instance; SIGHUP reloads the policy, stop drains the sessions."""

    def __init__(
        self,
        policy_path: str,
        instance: str,
        log: Log,
        reactor: Any = None,
        apply_rules: bool = False,
    ):
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.policy_path = policy_path
        self.instance = instance
        self.log = log
        self.reactor = reactor
        self.policy = load_policy(policy_path, instance)
        self.engine: Engine | None = None
        self.apply_rules = apply_rules

    def startService(self) -> None:
        super().startService()
        self.engine = Engine(self.policy, self.log, self.reactor)
        try:
            if self.apply_rules:
                from zfw.rules import apply as live
                from zfw.rules.compiler import compile_policy

                live.apply(compile_policy(self.policy))  # before the reactor runs
                self.log("core.rules", 3, "packet filter applied")
            self.engine.start()
        except ZfwError as e:
            self.log("core.error", 0, f"cannot start: {e}")
            print(f"zfw: {e}", file=sys.__stderr__)  # twistd has taken over sys.stderr
            raise SystemExit(1) from None
        signal.signal(signal.SIGHUP, self._sighup)
        # Everything loaded so far lives as long as the process: keep the cyclic garbage
        # collector from scanning it again and again as sessions come and go.
        gc.freeze()
        self.log(
            "core.info",
            3,
            f"instance {self.instance!r} started from {self.policy_path}",
            pid=os.getpid(),
        )

    def _sighup(self, _signum: int, _frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> bool:
        """Load the policy again; keep the old one if the new one is broken."""
        try:
            policy = load_policy(self.policy_path, self.instance)
        except ZfwError as e:
            self.log("core.policy", 1, f"reload refused, keeping the running policy: {e}")
            return False
        assert self.engine is not None
        old = {k for lst in self.policy.instance.listeners for k in listen_keys(lst)}
        new = {k for lst in policy.instance.listeners for k in listen_keys(lst)}
        self.policy = policy
        if not self.apply_rules:
            self.engine.reload(policy)
            self.log("core.policy", 3, "policy reloaded")
            return True
        if new - old:
            # Rules first for added services, so that they are reachable once listening ...
            d = self._apply_rules()
            d.addBoth(lambda _: self._reloaded(policy))
        else:
            # ... and last for removed ones: the listeners close before the rules go.
            self._reloaded(policy)
            self._apply_rules()
        return True

    def _reloaded(self, policy: Any) -> None:
        assert self.engine is not None
        self.engine.reload(policy)
        self.log("core.policy", 3, "policy reloaded")

    def _apply_rules(self) -> Deferred[None]:
        """``zfw rules apply`` in a child process, so the reactor never waits for it."""
        from twisted.internet.utils import getProcessOutputAndValue

        d = getProcessOutputAndValue(
            sys.executable,
            ["-m", "zfw.cli", "rules", "apply", self.policy_path],
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
        super().stopService()
        if self.engine is None:
            return None
        grace = self.policy.instance.options.shutdown_grace
        d = self.engine.drain(grace)

        def stopped(_: object) -> None:
            self.log("core.info", 3, "stopped")
            self.log.flush()

        d.addCallback(stopped)
        return d


def open_log(options: Options) -> Log:
    """The log the options ask for."""
    path = options["log-file"]
    from twisted.internet import reactor

    if path:
        out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as zfw
    else:
        # twistd replaces sys.stdout with its own logger once it starts: keep the real one.
        out = os.fdopen(os.dup(sys.__stdout__.fileno()), "w", encoding="utf-8")
    spec = LogSpec.parse(options["log-spec"], int(options["verbose"]))
    return Log(
        spec,
        out,
        json_lines=bool(options["json-log"]),
        program=f"zfw/{options['instance']}",
        flush_later=lambda flush: reactor.callLater(0.1, flush),
    )


def raise_fd_limit() -> None:
    """Every session holds two sockets: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_service(options: Options) -> ZfwService:
    """Build the service; a policy or option mistake exits with one line."""
    raise_fd_limit()
    reactor_install()  # before anything imports the default reactor
    try:
        return ZfwService(
            options["policy"],
            options["instance"],
            open_log(options),
            apply_rules=bool(options["apply-rules"]),
        )
    except ZfwError as e:
        raise SystemExit(str(e)) from None
