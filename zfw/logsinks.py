"""Where zfw's log lines go: a stream, a file reopened on request, or syslog.

Every sink takes a line without its time (``program[pid]: tag(level): text``)
and its syslog priority, and adds what its destination wants: a timestamp for a
file or terminal, a ``<N>`` priority prefix for the journal and syslog.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from typing import IO, Protocol

from zfw.errors import ZfwError

#: syslog facility ``daemon``.
FACILITY_DAEMON = 3


class Sink(Protocol):
    """What :class:`zfw.log.Log` writes to."""

    def write(self, body: str, priority: int) -> None:
        """One line (no newline) of a message whose syslog severity is ``priority``."""

    def write_record(self, record: str, priority: int) -> None:
        """One line that carries its own time (a JSON record)."""

    def flush(self) -> None:
        """Write out what is buffered."""

    def reopen(self) -> None:
        """Open the destination again (a log file renamed by logrotate)."""


class _Clock:
    """``2026-12-01T09:30:00.123``, the seconds part made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
        return f"{self._stamp}.{int(now % 1 * 1000):03d}"


class StreamSink:
    """Lines to a text stream; ``journal``: the stream is systemd's journal, which
    keeps its own time and reads the priority from a ``<N>`` prefix."""

    def __init__(self, out: IO[str], journal: bool = False):
        self.out = out
        self.journal = journal
        self._clock = _Clock()

    def write(self, body: str, priority: int) -> None:
        if self.journal:
            self.out.write(f"<{priority}>{body}\n")
        else:
            self.out.write(f"{self._clock()} {body}\n")

    def write_record(self, record: str, priority: int) -> None:
        self.out.write(f"<{priority}>{record}\n" if self.journal else record + "\n")

    def flush(self) -> None:
        self.out.flush()

    def reopen(self) -> None:
        """A stream has nothing to reopen."""


class FileSink(StreamSink):
    """A log file, appended to; :meth:`reopen` starts a new one at the same path."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(self._open())

    def _open(self) -> IO[str]:
        try:
            return open(self.path, "a", encoding="utf-8", errors="replace")
        except OSError as e:
            raise ZfwError(f"cannot open log file {self.path}: {e.strerror}") from None

    def reopen(self) -> None:
        try:
            new = self._open()
        except ZfwError as e:  # keep writing where we were, and say why
            self.write(f"zfw[{os.getpid()}]: core.error(1): {e}", 3)
            return
        old, self.out = self.out, new
        old.close()


class SyslogSink:
    """Datagrams to the local syslog socket (``/dev/log``; journald listens there too),
    facility ``daemon``. A full socket drops the line rather than wait."""

    def __init__(self, address: str = "/dev/log", ident: str = "zfw"):
        self.address = address
        self.ident = f"{ident}[{os.getpid()}]: "
        self.dropped = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        try:
            self._sock.connect(address)
        except OSError as e:
            self._sock.close()
            raise ZfwError(f"cannot log to syslog at {address}: {e.strerror}") from None

    def write(self, body: str, priority: int) -> None:
        data = f"<{FACILITY_DAEMON * 8 + priority}>{body}".encode("utf-8", "replace")
        try:
            self._sock.send(data)
        except BlockingIOError:
            self.dropped += 1
        except OSError as e:
            if e.errno in (errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT):
                self.reopen()  # syslog restarted
            self.dropped += 1

    def write_record(self, record: str, priority: int) -> None:
        self.write(self.ident + record, priority)

    def flush(self) -> None:
        """Datagrams are sent at once."""

    def reopen(self) -> None:
        try:
            self._sock.connect(self.address)
        except OSError as e:
            print(f"zfw: syslog at {self.address}: {e.strerror}", file=sys.__stderr__)
