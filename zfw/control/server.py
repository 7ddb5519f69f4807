"""The control socket of a running instance, served by the reactor."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from zfw import net
from zfw.control.protocol import MAX_LINE, ControlError, Request, encode, error, parse_request
from zfw.errors import NetError
from zfw.log import Log

#: Control connections at once; more are refused at once.
MAX_CLIENTS = 16

Handler = Callable[[Request], Mapping[str, Any] | Any]


class ControlProtocol(LineOnlyReceiver):
    """One client of the control socket: requests in, answers out, in order."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def connectionMade(self) -> None:
        factory: ControlFactory = self.factory  # type: ignore[assignment]
        factory.clients += 1
        self._busy = False
        self._waiting: list[bytes] = []
        _pid, uid, _gid = net.peer_credentials(self.transport.getHandle())
        if uid not in (0, os.geteuid()):
            factory.log("core.control", 1, f"refused a control client of uid {uid}")
            self._refuse("permission denied")
        elif factory.clients > MAX_CLIENTS:
            self._refuse(f"too many control clients (at most {MAX_CLIENTS})")

    def _refuse(self, message: str) -> None:
        self.transport.write(encode(error(message)))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.clients -= 1  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:
        if self.transport.disconnecting:
            return
        if self._busy:  # one request at a time; the next waits for the answer
            if len(self._waiting) >= MAX_CLIENTS:
                self._refuse("too many requests waiting")
                return
            self._waiting.append(line)
            return
        try:
            request = parse_request(line)
        except ControlError as e:
            self.factory.log("core.control", 3, f"refused a control request: {e}")  # type: ignore[attr-defined]
            self.transport.write(encode(error(str(e))))
            return
        self._busy = True
        d = maybeDeferred(self.factory.handler, request)  # type: ignore[attr-defined]
        d.addCallbacks(self._answer, self._failed, errbackArgs=(request,))

    def _answer(self, answer: Mapping[str, Any]) -> None:
        self._busy = False
        if self.transport.disconnecting:
            return
        self.transport.write(encode(answer))
        if self._waiting:
            self.lineReceived(self._waiting.pop(0))

    def _failed(self, reason: Failure, request: Request) -> None:
        if reason.check(ControlError):
            self._answer(error(str(reason.value)))
            return
        self.factory.log(  # type: ignore[attr-defined]
            "core.error", 1, f"control command {request.command} failed: {reason.getErrorMessage()}"
        )
        self._answer(error(f"{request.command} failed: {reason.getErrorMessage()}"))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.factory.log("core.control", 3, f"refused a control request of over {MAX_LINE} bytes")  # type: ignore[attr-defined]
        self._refuse(f"request longer than {MAX_LINE} bytes")


class ControlFactory(Factory):
    """Serves the control socket with ``handler(request) -> answer | Deferred``."""

    protocol = ControlProtocol
    noisy = False

    def __init__(self, handler: Handler, log: Log):
        self.handler = handler
        self.log = log
        self.clients = 0


def listen_control(reactor: Any, path: str, factory: ControlFactory) -> Any:
    """Listen on the UNIX socket ``path`` (mode 0600); a stale socket is replaced,
    one another process answers on is :class:`NetError`."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as e:
        raise NetError(f"cannot make {directory} for the control socket: {e.strerror}") from None
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise NetError(f"control socket {path}: {e.strerror}") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by a process that is gone
        else:
            raise NetError(f"control socket {path} is in use: is this instance running already?")
        finally:
            probe.close()
    old = os.umask(0o177)  # no moment with a mode that lets others connect
    try:
        return reactor.listenUNIX(path, factory, mode=0o600)
    except Exception as e:
        raise NetError(f"cannot listen on the control socket {path}: {e}") from None
    finally:
        os.umask(old)
