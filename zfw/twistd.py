"""``twistd -n zfw --policy FILE --instance NAME``: options and the service."""

from __future__ import annotations

import os
import resource
import signal
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.python import usage

from zfw.engine.engine import Engine
from zfw.errors import ZfwError
from zfw.loader import load_policy
from zfw.log import DEFAULT_LEVEL, Log, LogSpec


class Options(usage.Options):
    """Command line of the twistd plugin."""

    optParameters = [
        ["policy", "p", None, "policy file"],
        ["instance", "i", None, "instance to run (a function in the policy)"],
        ["log-spec", None, "", "per-tag verbosity, e.g. 'core.*:5,plug:3'"],
        ["verbose", "v", str(DEFAULT_LEVEL), "default verbosity (0-9)"],
        ["log-file", None, None, "write zfw's log here instead of standard output"],
    ]
    optFlags = [["json-log", None, "log JSON lines"]]

    def postOptions(self) -> None:
        for name in ("policy", "instance"):
            if not self[name]:
                raise usage.UsageError(f"--{name} is required")
        if not str(self["verbose"]).isdigit():
            raise usage.UsageError("--verbose takes a number")


class ZfwService(Service):
    """Runs one instance; SIGHUP reloads the policy, stop drains the sessions."""

    def __init__(self, policy_path: str, instance: str, log: Log, reactor: Any = None):
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.policy_path = policy_path
        self.instance = instance
        self.log = log
        self.reactor = reactor
        self.policy = load_policy(policy_path, instance)
        self.engine: Engine | None = None

    def startService(self) -> None:
        super().startService()
        self.engine = Engine(self.policy, self.log, self.reactor)
        try:
            self.engine.start()
        except ZfwError as e:
            self.log("core.error", 0, f"cannot start: {e}")
            print(f"zfw: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        signal.signal(signal.SIGHUP, self._sighup)
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
        self.policy = policy
        self.engine.reload(policy)
        self.log("core.policy", 3, "policy reloaded")
        return True

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
    try:
        return ZfwService(options["policy"], options["instance"], open_log(options))
    except ZfwError as e:
        raise SystemExit(str(e)) from None
