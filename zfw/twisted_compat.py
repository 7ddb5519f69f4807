"""Every Twisted internal zfw relies on, in one place, checked before it is used.

Twisted's public API costs more than zfw can afford in four places, each
measured in ``docs/performance.md``:

- **connecting**: :class:`FastConnector` connects to an IP literal with one
  ``connect()`` and one ``SO_ERROR`` (Twisted's own attempt goes through a
  Deferred, two ``connect()`` and two extra ``epoll_ctl``);
- **sending**: :func:`send_now` sends on a connection whose queue is empty at
  once, :class:`SendBatch` at the end of the reactor's batch of events;
- **closing**: :func:`close_now` and :func:`half_close_now` close or half-close
  a drained connection now instead of on the reactor's next turn;
- **dispatching**: :class:`EPollReactor` dispatches without a logging context.

Each reads or calls underscored members of Twisted's classes. :func:`check`
verifies that they exist and behave as assumed (a real ``tcp.Connection`` on
a socket pair is written to, queued on, half-closed and closed); when any
check fails, or ``ZFW_TWISTED_INTERNALS=public`` is set, :func:`fast` is
False and zfw takes Twisted's public API everywhere: slower, but correct.
Nothing outside this module touches an underscored Twisted member.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import epollreactor, tcp
from twisted.internet.error import getConnectError as connect_error
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python import log
from twisted.python.failure import Failure

#: The environment variable that turns every fast path off.
SWITCH = "ZFW_TWISTED_INTERNALS"

#: (class, member) pairs the fast paths use; instance attributes are checked on a
#: real connection by :func:`_probe`.
REQUIRED: tuple[tuple[type, str], ...] = (
    (tcp.Connector, "_makeTransport"),
    (tcp.BaseClient, "_setRealAddress"),
    (tcp.BaseClient, "_connectDone"),
    (tcp.BaseClient, "resolveAddress"),
    (tcp.BaseClient, "failIfNotConnected"),
    (tcp.BaseClient, "createInternetSocket"),
    (tcp.Connection, "_closeWriteConnection"),
    (tcp.Connection, "_shouldShutdown"),
    (tcp.Connection, "_writeDisconnecting"),
    (tcp.Connection, "_writeDisconnected"),
    (tcp.Connection, "TLS"),
    (epollreactor.EPollReactor, "_doReadOrWrite"),
)
#: Names a method must still assign or read (its code's ``co_names``).
ASSIGNED: tuple[tuple[Callable[..., Any], str], ...] = (
    (tcp.Client.__init__, "_requiresResolution"),
    (tcp.Client.__init__, "connector"),
    (epollreactor.EPollReactor.__init__, "_poller"),
    (epollreactor.EPollReactor.__init__, "_selectables"),
)


class _State:
    """Whether the fast paths are on, and why not."""

    def __init__(self) -> None:
        self.checked = False
        self.fast = True
        self.reason = ""


_state = _State()


def check() -> list[str]:
    """What no longer holds of the internals the fast paths assume (empty: all holds)."""
    problems = [
        f"{cls.__module__}.{cls.__name__}.{name} is gone"
        for cls, name in REQUIRED
        if not hasattr(cls, name)
    ]
    for func, name in ASSIGNED:
        code = getattr(func, "__code__", None)
        if code is None or name not in code.co_names:
            problems.append(f"{func.__qualname__} no longer sets {name}")
    if not problems:
        try:
            problems += _probe()
        except Exception as e:  # any surprise means: do not rely on it
            problems.append(f"a connection behaved unexpectedly: {type(e).__name__}: {e}")
    return problems


class _NoReactor:
    """What a probed connection asks of a reactor: nothing happens."""

    def addReader(self, _d: object) -> None: ...
    def removeReader(self, _d: object) -> None: ...
    def addWriter(self, _d: object) -> None: ...
    def removeWriter(self, _d: object) -> None: ...


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.lost = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True


def _probe() -> list[str]:
    """Drive a real ``tcp.Connection`` on a socket pair through what the fast paths do."""
    ours, theirs = socket.socketpair()
    try:
        theirs.settimeout(1)
        proto = _Recorder()
        t = tcp.Connection(ours, proto, _NoReactor())
        proto.makeConnection(t)
        t.connected = 1
        problems = []
        if not _idle(t):
            problems.append("a fresh connection does not look idle")
        _send(t, b"a")
        if theirs.recv(8) != b"a":
            problems.append("sending at once did not send")
        t.write(b"b")
        if _idle(t):
            problems.append("queued data is not seen (_tempDataLen, dataBuffer, offset)")
        t.doWrite()
        if not _idle(t) or theirs.recv(8) != b"b":
            problems.append("the queue did not drain as expected")
        if not _half_close(t) or theirs.recv(8) != b"" or not t._writeDisconnected:
            problems.append("half-closing did not send a FIN")
        if not _close(t) or not proto.lost:
            problems.append("closing did not tell the protocol")
        return problems
    finally:
        ours.close()
        theirs.close()


def fast() -> bool:
    """Whether the fast paths may be used (checks once, on first use)."""
    if not _state.checked:
        _state.checked = True
        if os.environ.get(SWITCH) == "public":
            _state.fast, _state.reason = False, f"{SWITCH}=public"
        else:
            problems = check()
            if problems:
                _state.fast, _state.reason = False, "; ".join(problems)
    return _state.fast


def status() -> str:
    """One line for the log: which way zfw talks to Twisted."""
    if fast():
        return "Twisted internals checked: fast paths on"
    return f"Twisted's public API only ({_state.reason}): correct, but slower"


def use_public_api(reason: str) -> None:
    """Turn the fast paths off from now on (a test, or a check failed elsewhere)."""
    _state.checked, _state.fast, _state.reason = True, False, reason


def reset() -> None:
    """Check again on next use (tests)."""
    _state.__init__()


# -- sending --------------------------------------------------------------------------


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
    Twisted's. Other transports (test doubles, TLS, the public API) get their own
    ``write``.
    """
    if not isinstance(transport, tcp.Connection) or not fast():
        return transport.write
    batch = getattr(transport.reactor, "send_batch", None)
    hold = batch.hold if isinstance(batch, SendBatch) else None

    def write(data: bytes) -> None:
        if hold is None or not hold(transport, data):
            _send(transport, data)

    return write


# -- closing --------------------------------------------------------------------------


def _drained(transport: Any) -> bool:
    """Whether TCP connection ``transport`` is open, has nothing queued to send and no
    producer; what a :class:`SendBatch` holds for it is sent first."""
    if not isinstance(transport, tcp.Connection) or not fast():
        return False
    batch = getattr(transport.reactor, "send_batch", None)
    if batch is not None:
        batch.release(transport)
    return bool(
        transport.connected
        and not transport.disconnecting
        and not transport.TLS  # Twisted's own TLS must send close_notify first
        and transport.producer is None
        and len(transport.dataBuffer) == transport.offset
        and not transport._tempDataLen
    )


def _close(transport: Any) -> bool:
    transport.stopReading()
    transport.stopWriting()
    transport._shouldShutdown = False  # one syscall less; close() alone is orderly
    transport.connectionLost(connectionDone)  # Twisted's shared Failure: none built per close
    return True


def _half_close(transport: Any) -> bool:
    transport._writeDisconnecting = transport._writeDisconnected = True
    transport._closeWriteConnection()
    return True


def close_now(transport: Any) -> bool:
    """Close a TCP connection at once if nothing is queued to send on it.

    For a connection whose peer has half-closed and whose data went both
    ways: ``loseConnection()`` would wait a reactor turn to send nothing
    before closing (a dispatch, an empty ``send`` and two ``epoll_ctl``).
    This does what that turn would do, now: ``close`` (it sends our FIN if the
    write side is still open; the ``shutdown`` Twisted adds first is skipped,
    as no other process holds the socket) and ``connectionLost`` on the
    protocol before it returns. What a :class:`SendBatch` holds for it is sent first.
    Returns False (and does nothing) when data is queued, a producer is
    registered, the transport is not a Twisted TCP connection or the fast
    paths are off.
    """
    return _drained(transport) and _close(transport)


def half_close_now(transport: Any) -> bool:
    """Send our FIN on a TCP connection at once if nothing is queued to send on it.

    ``loseWriteConnection()`` registers the socket for writing and shuts it down
    on the reactor's next turn, when it finds nothing to send (a dispatch and
    two ``epoll_ctl``). This shuts it down now and tells the protocol
    (``writeConnectionLost``), as that turn would; later writes are dropped, as
    after Twisted's own half-close. Returns False (and does nothing) in the
    cases :func:`close_now` leaves alone, and when the write side is closed
    or closing already.
    """
    return _drained(transport) and not transport._writeDisconnecting and _half_close(transport)


# -- connecting -----------------------------------------------------------------------


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
        sock = socket.socket(self.addressFamily, self.socketType | socket.SOCK_NONBLOCK)
        prepare = self.connector.prepare  # (set before Twisted's __init__ calls this)
        if prepare is not None:
            try:
                prepare(sock)
            except BaseException:
                sock.close()
                raise
        return sock

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


class FastConnector(tcp.Connector):
    """Makes a :class:`_Client` whose new socket ``prepare`` sets up (a foreign binding)."""

    def __init__(
        self, *args: Any, prepare: Callable[[socket.socket], None] | None = None, **kw: Any
    ):
        self.prepare = prepare
        super().__init__(*args, **kw)

    def _makeTransport(self) -> tcp.Client:
        # A plain (host, port) binding: every Twisted release takes it (tcp.makeBinding
        # is new in 26.10); the socket options are set by prepare.
        return _Client(self.host, self.port, self.bindAddress, self, self.reactor)


# -- dispatching ----------------------------------------------------------------------


class EPollReactor(epollreactor.EPollReactor):
    """Twisted's epoll reactor without the per-event logging context, whose writes
    during a batch of events go out together when it is done (:class:`SendBatch`).

    Twisted's epoll reactor hands every ready descriptor to ``log.callWithLogger``,
    which builds a fresh logging context around every read and every write. zfw's
    log lines name their session themselves and never read that context, and on a
    small relayed request it costs more than the relaying. An exception that
    escapes is still logged and the loop goes on, as before.
    """

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
