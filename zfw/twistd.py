"""``twistd -n zfw --policy FILE --instance NAME``: options and the service."""

from __future__ import annotations

import gc
import os
import re
import resource
import signal
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, formatEvent
from twisted.python import usage
from zope.interface import implementer

from zfw import systemd
from zfw.engine.engine import Engine, listen_keys
from zfw.errors import PolicyError, ZfwError
from zfw.loader import load_policy
from zfw.log import DEFAULT_LEVEL, Log, LogSpec
from zfw.logsinks import FileSink, Sink, StreamSink, SyslogSink
from zfw.reactor import install as reactor_install


class Options(usage.Options):
    """Command line of the twistd plugin."""

    optParameters = [
        ["policy", "p", None, "policy file"],
        ["instance", "i", None, "instance to run (a function in the policy)"],
        ["log-spec", None, "", "per-tag verbosity, e.g. 'core.*:5,plug:3'"],
        ["verbose", "v", str(DEFAULT_LEVEL), "default verbosity (0-9)"],
        ["log-file", None, None, "write the log here (reopened on SIGUSR1)"],
        ["syslog-socket", None, "/dev/log", "the syslog socket --syslog sends to"],
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


#: Twisted's log levels as zfw tags and levels.
_TWISTED_LEVELS = {
    LogLevel.critical: ("twisted.error", 0),
    LogLevel.error: ("twisted.error", 1),
    LogLevel.warn: ("twisted.warning", 2),
    LogLevel.info: ("twisted.info", 3),
    LogLevel.debug: ("twisted.debug", 6),
}


#: What Twisted says of every listening socket it opens and closes (FTP data channels
#: open one per transfer); zfw says it itself where it matters: debug level here.
_PORT_NOISE = re.compile(r"\S+ starting on \d+|\(\S+ Port \d+ Closed\)")


@implementer(ILogObserver)
class TwistedObserver:
    """What Twisted and twistd log (start-up lines, ``Unhandled Error`` tracebacks,
    anything printed), written to zfw's log in zfw's format: one log, not two."""

    def __init__(self, log: Log):
        self.log = log

    def __call__(self, event: dict[str, Any]) -> None:
        tag, level = _TWISTED_LEVELS.get(event.get("log_level"), ("twisted.info", 3))
        if event.get("log_io") is not None and event.get("log_level") == LogLevel.error:
            tag = "twisted.stderr"
        if not self.log.enabled(tag, level):
            return
        text = formatEvent(event) or ""
        if level == 3 and _PORT_NOISE.fullmatch(text):
            tag, level = "twisted.debug", 6
            if not self.log.enabled(tag, level):
                return
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}" if text else failure.getTraceback()
        for line in text.rstrip("\n").splitlines() or [""]:
            self.log(tag, level, line)


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

    def setServiceParent(self, parent: Any) -> None:
        # twistd asks the application for an ILogObserver when it starts logging: be it,
        # so that Twisted's own messages go to zfw's log (public twistd API, as in a .tac).
        if hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, TwistedObserver(self.log))
        super().setServiceParent(parent)

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
        signal.signal(signal.SIGUSR1, self._sigusr1)
        # Everything loaded so far lives as long as the process: keep the cyclic garbage
        # collector from scanning it again and again as sessions come and go.
        gc.freeze()
        self.log(
            "core.info",
            3,
            f"instance {self.instance!r} started from {self.policy_path}",
            pid=os.getpid(),
        )
        systemd.notify(f"READY=1\nSTATUS=instance {self.instance} running\nMAINPID={os.getpid()}")

    def _sighup(self, _signum: int, _frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def _sigusr1(self, _signum: int, _frame: Any) -> None:
        self.reactor.callFromThread(self._reopen_log)

    def _reopen_log(self) -> None:
        self.log.reopen()
        self.log("core.info", 3, "log reopened")

    def reload(self) -> bool:
        """Load the policy again; keep the old one if the new one is broken."""
        systemd.notify(systemd.reloading_state())
        try:
            policy = load_policy(self.policy_path, self.instance)
        except ZfwError as e:
            self.log("core.policy", 1, f"reload refused, keeping the running policy: {e}")
            systemd.notify("READY=1\nSTATUS=reload refused: the running policy stays")
            return False
        systemd.notify(f"READY=1\nSTATUS=instance {self.instance} running")
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
        systemd.notify("STOPPING=1")
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
    """The log the options ask for; :class:`ZfwError` if it cannot be opened."""
    from twisted.internet import reactor

    program = f"zfw/{options['instance']}"
    sink: Sink
    if options["log-file"]:
        sink = FileSink(options["log-file"])
    elif options["syslog"]:
        sink = SyslogSink(options["syslog-socket"], program)
    else:
        # twistd replaces sys.stdout with its own logger once it starts: keep the real one.
        fd = os.dup(sys.__stdout__.fileno())
        sink = StreamSink(os.fdopen(fd, "w", encoding="utf-8"), systemd.under_journal(fd))
    spec = LogSpec.parse(options["log-spec"], int(options["verbose"]))
    return Log(
        spec,
        sink,
        json_lines=bool(options["json-log"]),
        program=program,
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
        raise SystemExit(str(e) if isinstance(e, PolicyError) else f"zfw: {e}") from None
