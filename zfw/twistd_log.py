"""zfw's log under twistd: Twisted's own messages in it, and the sink the options ask for."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from twisted.python import usage
from zope.interface import implementer

from zfw import systemd
from zfw.log import Log, LogSpec
from zfw.logsinks import FileSink, Sink, StreamSink, SyslogSink

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
_PORT_NOISE = re.compile(r"\S+ starting on \S+|\(\S+ Port \S+ Closed\)")


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


def open_log(options: usage.Options) -> Log:
    """The log the options ask for; :class:`ZfwError` if it cannot be opened."""
    from twisted.internet import reactor

    program = f"zfw/{options['instance']}"
    if options.get("worker-id") is not None:  # each line says its worker
        program += f"/w{options['worker-id']}"
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
