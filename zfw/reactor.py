"""The reactor zfw runs on: Twisted's epoll reactor, dispatching without a log context.

Twisted's epoll reactor hands every ready descriptor to ``log.callWithLogger``,
which asks the descriptor for its log prefix and builds a fresh logging
context around the call, for every read and every write. zfw's log lines name
their session themselves and never read that context, and on a small relayed
request the context costs more than the relaying (docs/performance.md,
"Dispatching without a log context"). :class:`EPollReactor` dispatches the
same way but without it; an exception that escapes is still logged and the
loop goes on, as before. What proxies write while it dispatches one batch of
ready sockets is sent when the batch is done (:class:`zfw.net.SendBatch`).

``twistd -n zfw`` installs it unless ``--reactor`` chose another one.
"""

from __future__ import annotations

import errno
import sys

from twisted.internet import epollreactor
from twisted.internet.main import installReactor
from twisted.python import log

from zfw.net import SendBatch


class EPollReactor(epollreactor.EPollReactor):
    """Twisted's epoll reactor without the per-event logging context, whose writes
    during a batch of events go out together when it is done (:class:`zfw.net.SendBatch`)."""

    def __init__(self) -> None:
        self.send_batch = SendBatch()
        super().__init__()

    def doPoll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: no limit) and dispatch what is ready."""
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        dispatch = self._doReadOrWrite  # which catches what doRead/doWrite raise
        batch = self.send_batch
        batch.open = True
        try:
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:  # removed by an earlier event of this batch
                    continue
                try:
                    dispatch(selectable, fd, event)
                except KeyboardInterrupt:
                    raise
                except BaseException:  # e.g. from connectionLost: log it and go on, as Twisted does
                    log.err()
        finally:
            batch.flush()

    doIteration = doPoll


def install() -> None:
    """Make :class:`EPollReactor` the reactor, unless one is installed already."""
    if "twisted.internet.reactor" not in sys.modules:
        installReactor(EPollReactor())
