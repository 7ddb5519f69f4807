"""Zorp-style tagged logging.

Every message has a tag (``core.session``, ``plug.info`` ...) and a verbosity
level; a log spec such as ``core.*:5,plug:3`` sets the highest level shown
per tag pattern (the last matching pattern wins; a bare ``plug`` also covers
``plug.*``). Lines are human-readable by default, JSON on request, and go to
one :mod:`sink <zfw.logsinks>`: a stream, a file or syslog. What Twisted itself
logs reaches the same sink through :class:`zfw.twistd.TwistedObserver`.

Levels map to syslog severities: 0 err, 1 warning, 2 notice, 3 info, 4 and
above debug; a tag ending in ``.error`` is at least err.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO

import attrs

from zfw.errors import ZfwError
from zfw.logsinks import Sink, StreamSink

DEFAULT_LEVEL = 3

_SEVERITY = (3, 4, 5, 6)  # err, warning, notice, info; then debug (7)


def syslog_severity(tag: str, level: int) -> int:
    """The syslog severity of a message of ``tag`` at ``level``."""
    severity = _SEVERITY[level] if 0 <= level < len(_SEVERITY) else 7
    if tag.endswith(".error"):
        severity = min(severity, 3)
    return severity


@attrs.frozen
class LogSpec:
    """Per-tag verbosity: ``(pattern, level)`` pairs and a default."""

    rules: tuple[tuple[str, int], ...] = ()
    default: int = DEFAULT_LEVEL

    @classmethod
    def parse(cls, spec: str | None, default: int = DEFAULT_LEVEL) -> LogSpec:
        """Parse ``'core.*:5,plug:3'``; raise :class:`ZfwError` when malformed."""
        rules = []
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            pattern, sep, level = item.rpartition(":")
            if not sep or not pattern or not level.isdigit():
                raise ZfwError(f"bad log spec item {item!r}: expected TAG:LEVEL")
            rules.append((pattern, int(level)))
        return cls(tuple(rules), default)

    def __str__(self) -> str:
        """The spec as ``--log-spec`` takes it, the default last (``core.*:5,*:3``)."""
        return ",".join([*(f"{p}:{lv}" for p, lv in self.rules), f"*:{self.default}"])

    def level(self, tag: str) -> int:
        """The highest level shown for ``tag``."""
        found = self.default
        for pattern, level in self.rules:
            if fnmatch.fnmatchcase(tag, pattern) or tag.startswith(pattern + "."):
                found = level
        return found


class Log:
    """Writes tagged lines to a sink; cheap to ask whether a level is on.

    ``out`` is a :class:`~zfw.logsinks.Sink` or a text stream (written with
    timestamps)."""

    def __init__(
        self,
        spec: LogSpec | None = None,
        out: IO[str] | Sink | None = None,
        json_lines: bool = False,
        program: str = "zfw",
        flush_later: Callable[[Callable[[], None]], object] | None = None,
    ):
        self.spec = spec or LogSpec()
        if out is None:
            out = sys.stdout
        self.sink: Sink = out if hasattr(out, "write_record") else StreamSink(out)  # type: ignore[arg-type]
        self.json_lines = json_lines
        self.program = program
        self._levels: dict[str, int] = {}
        self._pid = os.getpid()
        self._flush_later = flush_later
        self._flush_pending = False
        self._limited: dict[str, tuple[float, int]] = {}

    def flush(self) -> None:
        """Write out what is buffered."""
        self._flush_pending = False
        self.sink.flush()

    def set_spec(self, spec: LogSpec) -> None:
        """Change the levels at run time (``zfw loglevel``). Lines already bound by
        :meth:`writer` (a running session's per-request line) keep theirs."""
        self.spec = spec
        self._levels = {}

    @property
    def spec_text(self) -> str:
        """The levels in force, as ``--log-spec`` writes them."""
        return str(self.spec)

    def reopen(self) -> None:
        """Reopen the log file (SIGUSR1, after logrotate renamed it)."""
        self.flush()
        self.sink.reopen()

    def enabled(self, tag: str, level: int) -> bool:
        """Whether a message of ``tag`` at ``level`` would be written."""
        limit = self._levels.get(tag)
        if limit is None:
            limit = self._levels[tag] = self.spec.level(tag)
        return level <= limit

    def __call__(
        self, tag: str, level: int, message: str, session: str | None = None, **fields: object
    ) -> None:
        """Write one message if its level is on for its tag."""
        if not self.enabled(tag, level):
            return
        priority = syslog_severity(tag, level)
        if self.json_lines:
            record = {"time": round(time.time(), 6), "tag": tag, "level": level, "msg": message}
            if session:
                record["session"] = session
            record.update(fields)
            self.sink.write_record(json.dumps(record, default=str), priority)
        else:
            self.sink.write(
                f"{self._prefix(tag, level, session)}{message}{_extra(fields)}", priority
            )
        self._written()

    def limited(
        self,
        key: str,
        tag: str,
        level: int,
        message: str,
        session: str | None = None,
        every: float = 10.0,
    ) -> None:
        """Like calling the log, but at most once per ``every`` seconds for ``key``;
        the next line that is written says how many were left out."""
        now = time.monotonic()
        last, skipped = self._limited.get(key, (-every, 0))
        if now - last < every:
            self._limited[key] = (last, skipped + 1)
            return
        if len(self._limited) > 1000:  # keys are policy locations: few, but keep it bounded
            self._limited.clear()
        self._limited[key] = (now, 0)
        if skipped:
            message += f" ({skipped} more like this in the last {now - last:.0f} s)"
        self(tag, level, message, session)

    def writer(self, tag: str, level: int, session: str | None = None) -> LineWriter | None:
        """A function that writes messages of ``tag`` at ``level`` (about ``session``),
        with the fixed part of each line made once; None when that level is off.

        For lines written many times a second, such as one per HTTP request."""
        if not self.enabled(tag, level):
            return None
        if self.json_lines:

            def write_json(message: str, **fields: object) -> None:
                self(tag, level, message, session, **fields)

            return write_json
        prefix = self._prefix(tag, level, session)
        priority = syslog_severity(tag, level)
        sink_write = self.sink.write
        written = self._written

        def write(message: str, **fields: object) -> None:
            extra = ""
            for k, v in fields.items():
                extra = f"{extra}; {k}={v}"
            sink_write(f"{prefix}{message}{extra}", priority)
            written()

        return write

    def _prefix(self, tag: str, level: int, session: str | None) -> str:
        sid = f"({session}): " if session else ""
        return f"{self.program}[{self._pid}]: {tag}({level}): {sid}"

    def _written(self) -> None:
        if self._flush_later is None:
            self.sink.flush()
        elif not self._flush_pending:
            # Many sessions a second: one write per batch, not per line.
            self._flush_pending = True
            self._flush_later(self.flush)


#: What :meth:`Log.writer` returns: ``write(message, **fields)``.
LineWriter = Callable[..., None]


def _extra(fields: dict[str, object]) -> str:
    extra = ""
    for k, v in fields.items():
        extra += f"; {k}={v}"
    return extra
