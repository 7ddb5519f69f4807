"""Zorp-style tagged logging.

Every message has a tag (``core.session``, ``plug.info`` ...) and a verbosity
level; a log spec such as ``core.*:5,plug:3`` sets the highest level shown
per tag pattern (the last matching pattern wins; a bare ``plug`` also covers
``plug.*``). Lines are human-readable by default, JSON on request.
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

DEFAULT_LEVEL = 3


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

    def level(self, tag: str) -> int:
        """The highest level shown for ``tag``."""
        found = self.default
        for pattern, level in self.rules:
            if fnmatch.fnmatchcase(tag, pattern) or tag.startswith(pattern + "."):
                found = level
        return found


class Log:
    """Writes tagged lines to a stream; cheap to ask whether a level is on."""

    def __init__(
        self,
        spec: LogSpec | None = None,
        out: IO[str] | None = None,
        json_lines: bool = False,
        program: str = "zfw",
        flush_later: Callable[[Callable[[], None]], object] | None = None,
    ):
        self.spec = spec or LogSpec()
        self.out = out or sys.stdout
        self.json_lines = json_lines
        self.program = program
        self._levels: dict[str, int] = {}
        self._pid = os.getpid()
        self._flush_later = flush_later
        self._flush_pending = False
        self._stamp_second = -1
        self._stamp = ""

    def flush(self) -> None:
        """Write out what is buffered."""
        self._flush_pending = False
        self.out.flush()

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
        now = time.time()
        if self.json_lines:
            record = {"time": round(now, 6), "tag": tag, "level": level, "msg": message}
            if session:
                record["session"] = session
            record.update(fields)
            self._write(json.dumps(record, default=str) + "\n")
            return
        self._write(
            f"{self._time(now)}{self._prefix(tag, level, session)}{message}{_extra(fields)}\n"
        )

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
        clock = time.time

        def write(message: str, **fields: object) -> None:
            now = clock()
            if int(now) != self._stamp_second:
                self._time(now)
            extra = ""
            for k, v in fields.items():
                extra = f"{extra}; {k}={v}"
            self._write(f"{self._stamp}.{int(now % 1 * 1000):03d}{prefix}{message}{extra}\n")

        return write

    def _prefix(self, tag: str, level: int, session: str | None) -> str:
        sid = f"({session}): " if session else ""
        return f" {self.program}[{self._pid}]: {tag}({level}): {sid}"

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
        return f"{self._stamp}.{int(now % 1 * 1000):03d}"

    def _write(self, line: str) -> None:
        self.out.write(line)
        if self._flush_later is None:
            self.out.flush()
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
