"""The one place that knows socket options.

- :func:`listen` opens a listening socket (with ``IP_TRANSPARENT`` for TPROXY)
  and adopts it into the reactor;
- :func:`original_destination` tells where an accepted client was going;
- :func:`connect` opens an outgoing connection, optionally from a foreign
  (the client's) address, non-blocking inside the reactor;
  (Twisted's fast path when :mod:`zfw.twisted_compat` allows it, else its public API).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import abstract
from twisted.internet.error import TimeoutError, UserError
from twisted.internet.error import getConnectError as connect_error
from twisted.internet.interfaces import IListeningPort, IReactorSocket, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from zfw import twisted_compat
from zfw.errors import NetError

IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
IPV6_TRANSPARENT = 75
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SO_ORIGINAL_DST = 80
IP6T_SO_ORIGINAL_DST = 80

_NEEDS_ADMIN = (
    "IP_TRANSPARENT needs CAP_NET_ADMIN: run zfw as root or grant the capability "
    "(setcap cap_net_admin+ep, or AmbientCapabilities=CAP_NET_ADMIN in systemd)"
)


def family_of(host: str) -> int:
    """``AF_INET6`` for an IPv6 literal, else ``AF_INET``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def set_transparent(sock: socket.socket, why: str = "") -> None:
    """Allow ``sock`` to bind and accept on addresses that are not local."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        else:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    except PermissionError:
        raise NetError(
            _NEEDS_ADMIN.replace(":", f" ({why}):", 1) if why else _NEEDS_ADMIN
        ) from None


def check_capability(why: str = "") -> None:
    """Raise :class:`NetError` with advice if transparent sockets are denied
    (``why``: what needs them, for the message)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        set_transparent(s, why)
    finally:
        s.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a UNIX socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _listening_socket(
    host: str, port: int, transparent: bool, backlog: int, reuse_port: bool = False
) -> socket.socket:
    """A bound, listening, non-blocking socket; OSError if ``host:port`` is taken."""
    family = family_of(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if transparent:
            set_transparent(sock)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listening_socket(
    host: str, port: int, transparent: bool, backlog: int = 511, reuse_port: bool = False
) -> socket.socket:
    """A listening socket not yet handed to a reactor (a supervisor's, shared by its
    workers); NetError if it cannot be opened."""
    try:
        return _listening_socket(host, port, transparent, backlog, reuse_port)
    except OSError as e:
        raise NetError(f"cannot listen on {fmt_addr(host, port)}: {e.strerror}") from None


def adopt(reactor: IReactorSocket, fd: int, family: int, factory: Any) -> IListeningPort:
    """Serve an inherited listening socket (file descriptor ``fd``, kept open) on
    ``reactor``."""
    return reactor.adoptStreamPort(fd, family, factory)


def _adopt(reactor: IReactorSocket, sock: socket.socket, factory: Any) -> IListeningPort:
    try:
        return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    finally:
        sock.close()  # the reactor has its own duplicate


def listen(
    reactor: IReactorSocket,
    host: str,
    port: int,
    factory: Any,
    transparent: bool,
    backlog: int = 511,
) -> IListeningPort:
    """Listen on ``host:port`` and hand the socket to the reactor.

    A transparent socket also accepts connections that TPROXY diverts to it
    and, bound to a foreign address, connections to that address.
    """
    try:
        sock = _listening_socket(host, port, transparent, backlog)
    except OSError as e:
        raise NetError(f"cannot listen on {fmt_addr(host, port)}: {e.strerror}") from None
    return _adopt(reactor, sock, factory)


def listen_in_range(
    reactor: IReactorSocket,
    host: str,
    ports: tuple[int, int],
    factory: Any,
    backlog: int = 4,
) -> IListeningPort:
    """Listen transparently on ``host`` (foreign or not) at a free port of ``ports``.

    Ports are tried from a random start, so that the next data port cannot
    be guessed from the last one.
    """
    low, high = ports
    count = high - low + 1
    first = random.randrange(count)
    for i in range(min(count, 64)):
        port = low + (first + i * 7919) % count  # a prime stride visits distinct ports
        try:
            sock = _listening_socket(host, port, True, backlog)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                continue
            raise NetError(f"cannot listen on {fmt_addr(host, port)}: {e.strerror}") from None
        return _adopt(reactor, sock, factory)
    raise NetError(f"no free port in {low}-{high} on {host}")


def original_destination(sock: socket.socket, redirected: bool = False) -> tuple[str, int]:
    """Where the client was going.

    Under TPROXY the accepted socket's own address is the original
    destination; after a NAT ``REDIRECT`` it is read from conntrack.
    """
    if not redirected:
        host, port = sock.getsockname()[:2]
        return host, port
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
        port = struct.unpack_from("!H", raw, 2)[0]
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


def _prepare(source: tuple[str, int] | None) -> Callable[[socket.socket], None] | None:
    """What an outgoing socket from ``source`` needs before it is bound.

    With source port 0 the port is chosen at ``connect()`` for the whole 4-tuple
    (``IP_BIND_ADDRESS_NO_PORT``), not at ``bind()`` for the address alone: a
    client address then has the firewall's port range once per server, not once
    in all, and ports in TIME_WAIT toward one server do not block another.
    """
    if source is None:
        return None

    def prepare(sock: socket.socket) -> None:
        try:
            set_transparent(sock)
        except NetError as e:
            raise OSError(errno.EPERM, str(e)) from None
        if not source[1]:
            with contextlib.suppress(OSError):  # before Linux 4.2: chosen at bind()
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        else:  # a fixed source port (FTP's 20) is shared by the connections to many peers
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    return prepare


class Attempt:
    """A connection attempt: ``pending`` until it succeeds or fails; ``cancel()`` gives
    up (the factory hears of it as a failure with ``UserError``)."""

    def __init__(self, connector: Any):
        self._connector = connector

    @property
    def pending(self) -> bool:
        """Still connecting."""
        return self._connector.state == "connecting"

    def cancel(self) -> None:
        """Give up if still connecting; nothing otherwise."""
        if self.pending:
            self._connector.stopConnecting()


@implementer(IWriteDescriptor)
class _PublicConnect:
    """A non-blocking ``connect()`` on a socket of our own, waited for with the reactor's
    public descriptor API and then adopted (``adoptStreamConnection``): the way to a
    foreign source address when zfw keeps off Twisted's internals."""

    def __init__(
        self, reactor: Any, host: str, port: int, factory: Any, source: Any, timeout: float
    ):
        self.reactor = reactor
        self.factory = factory
        self.state = "connecting"
        self._timer: Any = None
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            prepare = _prepare(source)
            if prepare is not None:
                prepare(self.sock)
                self.sock.bind(source)
            err = self.sock.connect_ex((host, port))
        except OSError as e:
            err = e.errno or errno.EINVAL
        if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            reactor.addWriter(self)
            self._timer = reactor.callLater(timeout, self._fail, Failure(TimeoutError()))
        elif err:
            reactor.callLater(0, self._fail_errno, err)
        else:
            reactor.callLater(0, self.doWrite)

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "connect"

    def doRead(self) -> None:
        pass

    def doWrite(self) -> None:
        if self.state != "connecting":
            return
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail_errno(err)
            return
        self._stop()
        self.state = "connected"
        try:
            self.reactor.adoptStreamConnection(self.sock.fileno(), self.sock.family, self.factory)
        finally:
            self.sock.close()  # the reactor has its own duplicate

    def connectionLost(self, reason: Failure) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if self.sock else 0
        self._fail_errno(err or errno.ECONNREFUSED)

    def stopConnecting(self) -> None:
        self._fail(Failure(UserError(string="connection attempt cancelled")))

    def _fail_errno(self, err: int) -> None:
        self._fail(Failure(connect_error((err, os.strerror(err)))))

    def _stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.reactor.removeWriter(self)

    def _fail(self, reason: Failure) -> None:
        if self.state != "connecting":
            return
        self._stop()
        self.state = "disconnected"
        self.sock.close()
        self.factory.clientConnectionFailed(self, reason)


def connect(
    reactor: Any,
    host: str,
    port: int,
    factory: Any,
    source: tuple[str, int] | None = None,
    timeout: float = 30.0,
) -> Attempt:
    """Connect to ``host:port``, from ``source`` if given (a foreign address).

    The connection is made non-blocking by the reactor; the factory hears of
    success or failure as usual. On Twisted's public API
    (:func:`zfw.twisted_compat.fast` is False) a name is connected to without a
    foreign source.
    """
    if twisted_compat.fast():
        connector = twisted_compat.FastConnector(
            host, port, factory, timeout, source, reactor, prepare=_prepare(source)
        )
        connector.connect()
        return Attempt(connector)
    if source is None or not (abstract.isIPAddress(host) or abstract.isIPv6Address(host)):
        return Attempt(reactor.connectTCP(host, port, factory, timeout))
    return Attempt(_PublicConnect(reactor, host, port, factory, source, timeout))


def fmt_addr(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
