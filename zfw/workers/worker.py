"""``python -m zfw.workers.worker ARGS``: one worker of a supervised instance.

The supervisor starts it with the ``twistd zfw`` options of the instance and
``--worker-id K``; it serves the listening sockets it inherited.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zfw.twistd import ZfwService


def main() -> None:
    """Run ``twistd --nodaemon zfw ARGS`` in this process."""
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "zfw", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()


def serve_inherited(service: ZfwService) -> None:
    """In a worker: serve the supervisor's sockets; stop when the supervisor is gone."""
    from zfw.workers.supervisor import TAG_ENV, inherited_listeners

    assert service.engine is not None
    service.engine.inherited = inherited_listeners()
    # Session ids unique across the workers and their restarts: ``instance/wK/service:N``
    # (``wK.2/`` from the second start of worker K on: after a reload or a crash).
    tag = os.environ.get(TAG_ENV, f"w{service.worker_id}")
    service.engine.sessions.instance = f"{service.instance}/{tag}"
    reactor = service.reactor

    def watch() -> None:  # standard input is the supervisor's pipe: EOF when it is gone
        with contextlib.suppress(OSError):
            while os.read(0, 512):
                pass
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def tell_ready(service: ZfwService) -> None:
    """Tell the supervisor this worker serves."""
    from zfw.workers.supervisor import READY_FD

    with contextlib.suppress(OSError):
        os.write(READY_FD, b"ready\n")
        os.close(READY_FD)
