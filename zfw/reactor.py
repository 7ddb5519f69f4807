"""The reactor zfw runs on: Twisted's epoll reactor, dispatching without a log context.

:class:`zfw.twisted_compat.EPollReactor` dispatches every ready descriptor as
Twisted's does but without building a logging context per event (zfw's log
lines name their session themselves; docs/performance.md, "Dispatching without
a log context"), and sends what proxies write during one batch of events when
the batch is done. It relies on Twisted internals: when
:func:`zfw.twisted_compat.fast` says they changed, Twisted's own epoll reactor
is installed instead.

``twistd -n zfw`` installs it unless ``--reactor`` chose another one.
"""

from __future__ import annotations

import sys

from twisted.internet import epollreactor
from twisted.internet.main import installReactor

from zfw.twisted_compat import EPollReactor, fast

__all__ = ["EPollReactor", "install"]


def install() -> None:
    """Make :class:`EPollReactor` the reactor (Twisted's own epoll reactor on the
    public API), unless one is installed already."""
    if "twisted.internet.reactor" not in sys.modules:
        installReactor(EPollReactor() if fast() else epollreactor.EPollReactor())
