"""The one place that knows socket options.

- :func:`listen` opens a listening socket (with ``IP_TRANSPARENT`` for TPROXY)
  and adopts it into the reactor;
- :func:`original_destination` tells where an accepted client was going;
- :func:`connect` opens an outgoing connection, optionally from a foreign
  (the client's) address, non-blocking inside the reactor;
- :func:`writer` sends on a TCP connection at once when nothing is queued, or at
  the end of the reactor's batch of events (:class:`SendBatch`).
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

from twisted.internet import tcp
from twisted.internet.error import getConnectError as connect_error
from twisted.internet.interfaces import IListeningPort, IReactorSocket
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

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


def set_transparent(sock: socket.socket) -> None:
    """Allow ``sock`` to bind and accept on addresses that are not local."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        else:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    except PermissionError:
        raise NetError(_NEEDS_ADMIN) from None


def check_capability() -> None:
    """Raise :class:`NetError` with advice if transparent sockets are denied."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        set_transparent(s)
    finally:
        s.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a UNIX socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _listening_socket(host: str, port: int, transparent: bool, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking socket; OSError if ``host:port`` is taken."""
    family = family_of(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


class _Client(tcp.Client):
    """Twisted's TCP client on a shorter way to the connection.

    Twisted's own attempt goes through a Deferred even for an IP literal, asks
    for ``SO_ERROR`` before it has connected, calls ``connect()`` a second time
    to learn that it has, and registers the socket for reading and writing only
    to unregister both before it registers it for reading again: for a session
    that lives one request, a sizeable share of its cost. This one, for a
    literal, calls ``connect()`` once, waits for the socket to become writable
    (an error is reported then too) and reads ``SO_ERROR`` once; a name is
    resolved the Twisted way. Everything after the connection is Twisted's.
    """

    _connect_sent = False

    def createInternetSocket(self) -> socket.socket:
        # Non-blocking from the start: one ioctl less than setblocking(False).
        return socket.socket(self.addressFamily, self.socketType | socket.SOCK_NONBLOCK)

    def resolveAddress(self) -> None:
        if self._requiresResolution:
            super().resolveAddress()
        else:
            self._setRealAddress(self.addr)

    def doConnect(self) -> None:
        self.doWrite = self.doRead = self.doConnect  # until connected
        if not hasattr(self, "connector"):  # failed (or given up) while a call was due
            return
        if not self._connect_sent:
            self._connect_sent = True
            try:
                result = self.socket.connect_ex(self.realAddress)
            except OSError as e:
                result = e.errno or errno.EINVAL
            if result in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                self.startWriting()  # writable when connected; errors are reported anyway
                return
            if result and result != errno.EISCONN:
                self._fail(result)
                return
        else:
            err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(err)
                return
        del self.doWrite, self.doRead
        self.stopWriting()
        self._connectDone()

    def _fail(self, err: int) -> None:
        self.failIfNotConnected(connect_error((err, os.strerror(err))))

    def connectionLost(self, reason: Failure) -> None:
        # A refused or unreachable attempt shows as a hangup without readable data,
        # which Twisted reports as a lost connection: tell the socket's own error.
        if not self.connected and hasattr(self, "connector"):
            try:
                err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                err = 0
            if err:
                self._fail(err)
                return
        super().connectionLost(reason)


class _TransparentClient(_Client):
    """A client connection whose socket may bind to a foreign address.

    With source port 0 the port is chosen at ``connect()`` for the whole 4-tuple
    (``IP_BIND_ADDRESS_NO_PORT``), not at ``bind()`` for the address alone: a
    client address then has the firewall's port range once per server, not once
    in all, and ports in TIME_WAIT toward one server do not block another.
    """

    def __init__(
        self, host: str, port: int, binding: Any, connector: Any, reactor: Any, any_port: bool
    ):
        self._any_port = any_port  # read by createInternetSocket, which __init__ calls
        super().__init__(host, port, binding, connector, reactor)

    def createInternetSocket(self) -> socket.socket:
        sock = super().createInternetSocket()
        try:
            set_transparent(sock)
        except NetError as e:
            sock.close()
            raise OSError(errno.EPERM, str(e)) from None
        if self._any_port:
            with contextlib.suppress(OSError):  # before Linux 4.2: chosen at bind()
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        else:  # a fixed source port (FTP's 20) is shared by the connections to many peers
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock


class _Connector(tcp.Connector):
    """Makes a :class:`_Client`, or with a source address a :class:`_TransparentClient`."""

    def _makeTransport(self) -> tcp.Client:
        if self.bindAddress is None:
            return _Client(self.host, self.port, None, self, self.reactor)
        # A plain (host, port) binding: every Twisted release takes it (tcp.makeBinding
        # is new in 26.10); the socket options are set in createInternetSocket.
        host, port = self.bindAddress
        return _TransparentClient(self.host, self.port, (host, port), self, self.reactor, not port)


def connect(
    reactor: Any,
    host: str,
    port: int,
    factory: Any,
    source: tuple[str, int] | None = None,
    timeout: float = 30.0,
) -> tcp.Connector:
    """Connect to ``host:port``, from ``source`` if given (a foreign address).

    The connection is made non-blocking by the reactor; the factory hears of
    success or failure as usual.
    """
    connector = _Connector(host, port, factory, timeout, source, reactor)
    connector.connect()
    return connector


def _drained(transport: Any) -> bool:
    """Whether TCP connection ``transport`` is open, has nothing queued to send and no
    producer; what a :class:`SendBatch` holds for it is sent first."""
    if not isinstance(transport, tcp.Connection):
        return False
    batch = getattr(transport.reactor, "send_batch", None)
    if batch is not None:
        batch.release(transport)
    return bool(
        transport.connected
        and not transport.disconnecting
        and transport.producer is None
        and len(transport.dataBuffer) == transport.offset
        and not transport._tempDataLen
    )


def close_drained(transport: Any) -> bool:
    """Close a TCP connection at once if nothing is queued to send on it.

    For a connection whose peer has half-closed and whose data went both
    ways: ``loseConnection()`` would wait a reactor turn to send nothing
    before closing (a dispatch, an empty ``send`` and two ``epoll_ctl``).
    This does what that turn would do, now: ``close`` (it sends our FIN if the
    write side is still open; the ``shutdown`` Twisted adds first is skipped,
    as no other process holds the socket) and ``connectionLost`` on the
    protocol before it returns. What a :class:`SendBatch` holds for it is sent first.
    Returns False (and does nothing) when data is queued, a producer is
    registered or the transport is not a Twisted TCP connection.
    """
    if not _drained(transport):
        return False
    transport.stopReading()
    transport.stopWriting()
    transport._shouldShutdown = False  # one syscall less; close() alone is orderly
    transport.connectionLost(connectionDone)  # Twisted's shared Failure: none built per close
    return True


def half_close_drained(transport: Any) -> bool:
    """Send our FIN on a TCP connection at once if nothing is queued to send on it.

    ``loseWriteConnection()`` registers the socket for writing and shuts it down
    on the reactor's next turn, when it finds nothing to send (a dispatch and
    two ``epoll_ctl``). This shuts it down now and tells the protocol
    (``writeConnectionLost``), as that turn would; later writes are dropped, as
    after Twisted's own half-close. Returns False (and does nothing) in the
    cases :func:`close_drained` leaves alone, and when the write side is closed
    or closing already.
    """
    if not _drained(transport) or transport._writeDisconnecting:
        return False
    transport._writeDisconnecting = transport._writeDisconnected = True
    transport._closeWriteConnection()
    return True


#: What :func:`writer` reads of a Twisted TCP connection to know that nothing is queued.
_QUEUE_STATE = ("_tempDataLen", "dataBuffer", "offset", "_writeDisconnecting", "TLS")


def _idle(t: Any) -> bool:
    """Whether Twisted has nothing queued on TCP connection ``t`` and we may send on it."""
    return (
        not t._tempDataLen
        and t.offset == len(t.dataBuffer)
        and t.connected
        and not (t.disconnecting or t._writeDisconnecting or t.TLS)
    )


def _send(transport: Any, data: bytes) -> None:
    """Send ``data`` now if nothing is queued; what the socket does not take, and any
    error, goes to ``transport.write`` (Twisted's queue, its backpressure and errors)."""
    if _idle(transport):
        try:
            sent = transport.socket.send(data)
        except OSError:  # full, or the connection is gone: the reactor's turn finds out
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


class SendBatch:
    """Writes held while the reactor dispatches one batch of ready sockets, and sent
    (one ``send`` per connection) when the batch is done.

    A ``send`` that reaches a peer asleep on another CPU also pays for waking it,
    which on a small request costs more than the rest of relaying it. Sent one
    by one as each event is handled, a batch of requests wakes the peer (a server
    holding many connections, a load generator) once per request; sent together at
    the end, it wakes once and finds the rest waiting. Nothing is held longer than
    the batch, never more than ``limit`` bytes in all (bulk transfers fill it and
    then send at once, as before), and nothing outside a batch (timers, startup).
    """

    limit = 1 << 20

    def __init__(self) -> None:
        self.open = False
        self._held: dict[Any, list[bytes]] = {}
        self._size = 0

    def hold(self, transport: Any, data: bytes) -> bool:
        """Keep ``data`` for ``transport`` until the batch ends; False: send it now."""
        held = self._held.get(transport)
        if self._size + len(data) > self.limit:
            if held is not None:
                self.release(transport)  # what came first goes first
            return False
        if held is not None:
            held.append(data)
        elif not self.open or not _idle(transport):
            return False  # outside a batch, or behind queued data: as before
        else:
            self._held[transport] = [data]
        self._size += len(data)
        return True

    def release(self, transport: Any) -> None:
        """Send what is held for ``transport`` now (before it is closed)."""
        held = self._held.pop(transport, None)
        if held is not None:
            data = held[0] if len(held) == 1 else b"".join(held)
            self._size -= len(data)
            _send(transport, data)

    def flush(self) -> None:
        """The batch is done: send everything held."""
        self.open = False
        held, self._held = self._held, {}
        self._size = 0
        for transport, pieces in held.items():
            _send(transport, pieces[0] if len(pieces) == 1 else b"".join(pieces))


def writer(transport: Any) -> Callable[[bytes], None]:
    """``transport.write``, except that a TCP connection with nothing queued sends at once,
    or at the end of the reactor's batch (:class:`SendBatch`, on zfw's reactor).

    Twisted queues every write and sends it when the reactor next finds the
    socket writable: two ``epoll_ctl`` and one more dispatch per write, about
    half of what relaying a small message costs. With an empty queue this sends
    itself (as asyncio's transports do); whatever the socket does not take, and
    any error, goes to ``transport.write`` as before, so order, backpressure
    (the producer is paused as the queue fills) and error handling stay
    Twisted's. Other transports (test doubles, TLS, a Twisted whose internals
    differ) get their own ``write``.
    """
    if not isinstance(transport, tcp.Connection) or not all(
        hasattr(transport, name) for name in _QUEUE_STATE
    ):
        return transport.write
    batch = getattr(transport.reactor, "send_batch", None)
    hold = batch.hold if isinstance(batch, SendBatch) else None

    def write(data: bytes) -> None:
        if hold is None or not hold(transport, data):
            _send(transport, data)

    return write


def fmt_addr(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
