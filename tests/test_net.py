"""zfw.net: capability errors, transparent connects and closing drained connections."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from twisted.internet import tcp
from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.error import ConnectionRefusedError as Refused
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from zfw import net, twisted_compat
from zfw.reactor import EPollReactor

# Under CI (root, setpriv installed by contrib/install-deps) these must run: no skip there.
needs_root = pytest.mark.skipif(
    not os.environ.get("CI") and (os.geteuid() != 0 or shutil.which("setpriv") is None),
    reason="drops privileges with setpriv, which needs root",
)
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@needs_root
def test_missing_capability_is_one_clear_line():
    proc = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", "from zfw import net; net.check_capability()"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "IP_TRANSPARENT needs CAP_NET_ADMIN" in proc.stderr


@needs_root
def test_zfw_run_without_capability_exits_with_the_reason():
    tmp = tempfile.mkdtemp()  # pytest's tmp_path is not readable for nobody
    os.chmod(tmp, 0o755)
    policy = os.path.join(tmp, "p.py")
    with open(policy, "w") as f:
        f.write(
            "from zfw.policy import *\n"
            "InetZone('a', '0.0.0.0/0', inbound_services=['*'], outbound_services=['*'])\n"
            "def i():\n    Service('p', PlugProxy)\n"
            "    Listener(SockAddrInet('127.0.0.1', 50999), 'p', intercept=7)\n"
        )
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    try:
        proc = subprocess.run(
            [*AS_NOBODY, zfw, "run", "--policy", policy, "--instance", "i"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
    finally:
        shutil.rmtree(tmp)
    assert proc.returncode != 0
    assert "zfw: IP_TRANSPARENT needs CAP_NET_ADMIN" in proc.stderr
    assert "Traceback" not in proc.stderr


def _nobody_dir() -> str:
    tmp = tempfile.mkdtemp()  # pytest's tmp_path is not readable for nobody
    os.chmod(tmp, 0o755)
    return tmp


PLAIN = (
    "from zfw.policy import *\n"
    "from zfw.tls.encryption import *\n"
    "InetZone('lo', '127.0.0.0/8', inbound_services=['*'], outbound_services=['*'])\n"
    "def i():\n"
    "    Service('p', PlugProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', {target})){extra})\n"
    "    Listener(SockAddrInet('127.0.0.1', {port}), 'p', transparent=False)\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_root
def test_a_plain_listener_runs_without_cap_net_admin():
    tmp = _nobody_dir()
    server = socket.create_server(("127.0.0.1", 0))
    port = _free_port()
    policy = os.path.join(tmp, "p.py")
    with open(policy, "w") as f:
        f.write(PLAIN.format(target=server.getsockname()[1], port=port, extra=""))
    os.chmod(policy, 0o644)
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    proc = subprocess.Popen(
        [*AS_NOBODY, zfw, "run", "--policy", policy, "--instance", "i", "--control-socket", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp,
    )
    try:
        out = ""
        while "started from" not in out:  # (ends if zfw exits: no line blocks forever)
            line = proc.stdout.readline()
            assert line, out
            out += line
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            conn, _ = server.accept()
            c.sendall(b"ping")
            assert conn.recv(10) == b"ping"
            conn.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        server.close()
        shutil.rmtree(tmp)
    assert f"listening on 127.0.0.1:{port} (plain)" in out
    assert "CAP_NET_ADMIN" not in out


@needs_root
def test_a_start_as_a_user_who_cannot_read_a_named_file_is_one_line():
    tmp = _nobody_dir()
    os.mkdir(os.path.join(tmp, "cas"), 0o700)  # root's alone
    policy = os.path.join(tmp, "p.py")
    verify = (
        ",\n        encryption=ServerOnlyEncryption(ServerCertificateVerifier(ca_directory='cas'))"
    )
    with open(policy, "w") as f:
        f.write(PLAIN.format(target=9, port=_free_port(), extra=verify))
    os.chmod(policy, 0o644)
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    try:
        proc = subprocess.run(
            [*AS_NOBODY, zfw, "run", "--policy", policy, "--instance", "i"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
    finally:
        shutil.rmtree(tmp)
    assert proc.returncode != 0
    assert proc.stderr == (
        f"zfw: {policy}:6: user nobody cannot read the directory {tmp}/cas "
        "(mode 0700, owner root:root)\n"
    )


def test_only_transparent_listeners_forged_sources_and_ftp_need_the_capability(write_policy):
    from zfw.engine.engine import transparency_needed
    from zfw.loader import load_policy

    path = write_policy(
        """
        def plain():
            Service('a', PlugProxy, router=DirectedRouter(SockAddrInet('192.0.2.1', 7)))
            Listener(SockAddrInet('127.0.0.1', 40000), 'a', transparent=False)
        def tproxy():
            Service('b', PlugProxy)
            Listener(SockAddrInet('127.0.0.1', 40001), 'b', intercept=7)
        def forging():
            Service('c', HttpProxy, router=InbandRouter(forge_addr=True))
            Listener(SockAddrInet('127.0.0.1', 40002), 'c', transparent=False)
        def ftp():
            Service('d', FtpProxy, router=DirectedRouter(SockAddrInet('192.0.2.1', 21)))
            Listener(SockAddrInet('127.0.0.1', 40003), 'd', transparent=False)
        """
    )
    policy = load_policy(str(path))
    why = {name: transparency_needed(inst) for name, inst in policy.instances.items()}
    assert why == {
        "plain": None,
        "tproxy": "listener 127.0.0.1:40001 is transparent",
        "forging": "service 'c' connects from the client's address (forge_addr)",
        "ftp": "service 'd' is FtpProxy, whose data channels listen transparently",
    }


def test_fmt_addr():
    assert net.fmt_addr("192.0.2.1", 80) == "192.0.2.1:80"
    assert net.fmt_addr("2001:db8::1", 80) == "[2001:db8::1]:80"


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.lost: list[Failure] = []

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.append(reason)


def _tcp_transport() -> tuple[tcp.Connection, _Recorder, socket.socket]:
    """A Twisted TCP transport on one end of a loopback connection, and the other end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        ours, _addr = listener.accept()
    ours.setblocking(False)
    proto = _Recorder()
    transport = tcp.Connection(ours, proto, MemoryReactor())
    transport.connected = 1
    proto.makeConnection(transport)
    return transport, proto, peer


def test_close_drained_closes_at_once_and_tells_the_protocol():
    transport, proto, peer = _tcp_transport()
    with peer:
        assert twisted_compat.close_now(transport)
        assert len(proto.lost) == 1 and proto.lost[0].check(ConnectionDone)
        peer.settimeout(5)
        assert peer.recv(10) == b""  # our FIN arrived


def test_close_drained_leaves_a_connection_with_queued_data_alone():
    transport, proto, peer = _tcp_transport()
    with peer:
        transport.write(b"not sent yet")  # queued until the reactor's write turn
        assert not twisted_compat.close_now(transport)
        assert proto.lost == [] and transport.connected
        transport.connectionLost(Failure(ConnectionDone()))


@implementer(IHalfCloseableProtocol)
class _HalfRecorder(_Recorder):
    write_closed = 0

    def readConnectionLost(self) -> None:
        pass

    def writeConnectionLost(self) -> None:
        self.write_closed += 1


def test_half_close_drained_sends_our_fin_at_once_and_keeps_reading():
    transport, _proto, peer = _tcp_transport()
    proto = transport.protocol = _HalfRecorder()
    proto.makeConnection(transport)
    with peer:
        assert twisted_compat.half_close_now(transport)
        assert proto.write_closed == 1 and transport.connected and not proto.lost
        peer.settimeout(5)
        assert peer.recv(10) == b""  # our FIN arrived
        transport.write(b"dropped, as after Twisted's own half-close")
        peer.sendall(b"still read")
        assert transport.socket.recv(100) == b"still read"
        assert not twisted_compat.half_close_now(transport)  # once is enough
        assert twisted_compat.close_now(transport) and len(proto.lost) == 1
        assert peer.recv(100) == b""


def test_half_close_drained_leaves_a_connection_with_queued_data_alone():
    transport, _proto, peer = _tcp_transport()
    with peer:
        transport.write(b"not sent yet")
        assert not twisted_compat.half_close_now(transport)
        assert not transport._writeDisconnecting
        transport.connectionLost(Failure(ConnectionDone()))
    assert not twisted_compat.half_close_now(StringTransport())


def test_close_drained_only_knows_tcp_transports():
    assert not twisted_compat.close_now(StringTransport())


def _receive(peer: socket.socket, n: int) -> bytes:
    peer.settimeout(5)
    data = b""
    while len(data) < n:
        piece = peer.recv(1 << 20)
        assert piece, "the connection closed early"
        data += piece
    return data


def test_writer_sends_at_once_when_nothing_is_queued():
    transport, _proto, peer = _tcp_transport()
    with peer:
        twisted_compat.writer(transport)(b"hello")
        assert not transport._tempDataLen and transport.dataBuffer == b""  # nothing queued
        assert _receive(peer, 5) == b"hello"  # without a turn of the reactor
        transport.connectionLost(Failure(ConnectionDone()))


class _Producer:
    paused = 0

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def test_writer_queues_what_the_socket_does_not_take_and_keeps_the_order():
    transport, _proto, peer = _tcp_transport()
    with peer:
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        producer = _Producer()
        transport.registerProducer(producer, True)
        write = twisted_compat.writer(transport)
        big = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes
        write(big)
        queued = transport._tempDataLen
        assert 0 < queued < len(big)  # sent what fitted; the rest waits for the reactor
        assert producer.paused  # and the producer was told to stop, as with transport.write
        write(b"after")
        assert transport._tempDataLen == queued + 5  # queued behind it, not sent ahead
        received = []
        reader = threading.Thread(target=lambda: received.append(_receive(peer, len(big) + 5)))
        reader.start()
        deadline = time.monotonic() + 10
        while (transport._tempDataLen or transport.offset < len(transport.dataBuffer)) and (
            time.monotonic() < deadline
        ):
            transport.doWrite()  # what the reactor does when the socket is writable
            time.sleep(0.001)
        reader.join(10)
        assert received == [big + b"after"]
        transport.unregisterProducer()
        transport.connectionLost(Failure(ConnectionDone()))


def test_writer_leaves_a_failed_send_to_the_reactor():
    transport, _proto, peer = _tcp_transport()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # a reset: our next send fails
    twisted_compat.writer(transport)(b"lost")  # no exception here
    assert transport._tempDataLen == 4  # queued: the reactor's write turn finds the error
    assert isinstance(transport.doWrite(), Exception)  # the reactor then drops the connection
    transport.connectionLost(Failure(ConnectionDone()))


@pytest.mark.parametrize("state", ["closing", "half-closing", "tls"])
def test_writer_leaves_a_closing_or_tls_connection_to_twisted(state):
    transport, _proto, peer = _tcp_transport()
    with peer:
        if state == "closing":
            transport.loseConnection()
        elif state == "half-closing":
            transport.loseWriteConnection()
        else:
            transport.TLS = True  # what startTLS sets: bytes must go through TLS
        queued: list[bytes] = []
        transport.write = queued.append  # type: ignore[method-assign]
        twisted_compat.writer(transport)(b"late")
        assert queued == [b"late"]  # Twisted's own path, not the socket
        transport.connectionLost(Failure(ConnectionDone()))


def _batched_transport() -> tuple[
    tcp.Connection, _Recorder, socket.socket, twisted_compat.SendBatch
]:
    transport, proto, peer = _tcp_transport()
    batch = transport.reactor.send_batch = twisted_compat.SendBatch()  # as zfw's reactor has
    return transport, proto, peer, batch


def _nothing_arrived(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(10)
    except BlockingIOError:
        return True
    finally:
        peer.setblocking(True)
    return False


def test_writes_in_a_batch_go_out_together_when_it_ends():
    transport, _proto, peer, batch = _batched_transport()
    with peer:
        write = twisted_compat.writer(transport)
        batch.open = True  # the reactor is dispatching ready sockets
        write(b"head ")
        write(b"body")
        assert _nothing_arrived(peer)
        batch.flush()
        assert not batch.open
        assert _receive(peer, 9) == b"head body"
        write(b"!")  # outside a batch: at once
        assert _receive(peer, 1) == b"!"
        transport.connectionLost(Failure(ConnectionDone()))


def test_a_batch_does_not_hold_writes_behind_queued_data():
    transport, _proto, peer, batch = _batched_transport()
    with peer:
        transport.write(b"queued ")  # in Twisted's queue, waiting for a write turn
        batch.open = True
        twisted_compat.writer(transport)(b"after")
        assert transport._tempDataLen == len(b"queued after")  # behind it, in order
        batch.flush()
        transport.doWrite()
        assert _receive(peer, 12) == b"queued after"
        transport.connectionLost(Failure(ConnectionDone()))


def test_a_batch_holds_at_most_its_limit_and_keeps_the_order():
    transport, _proto, peer, batch = _batched_transport()
    with peer:
        batch.limit = 10
        write = twisted_compat.writer(transport)
        batch.open = True
        write(b"small ")  # held
        write(b"too big for it")  # over the limit: what was held goes first, then this
        assert _receive(peer, 20) == b"small too big for it"
        write(b"again")  # held again: the limit counts only what is held
        assert _nothing_arrived(peer)
        batch.flush()
        assert _receive(peer, 5) == b"again"
        transport.connectionLost(Failure(ConnectionDone()))


def test_close_drained_sends_what_a_batch_holds_first():
    transport, proto, peer, batch = _batched_transport()
    with peer:
        batch.open = True
        twisted_compat.writer(transport)(b"last words")
        assert twisted_compat.close_now(transport)
        assert len(proto.lost) == 1
        assert _receive(peer, 10) == b"last words"
        assert peer.recv(10) == b""  # then our FIN
        batch.flush()  # nothing left for the closed connection


def test_a_batch_holding_for_a_lost_connection_drops_it_quietly():
    transport, _proto, peer, batch = _batched_transport()
    peer.close()
    batch.open = True
    twisted_compat.writer(transport)(b"too late")
    transport.connectionLost(Failure(ConnectionDone()))
    batch.flush()  # no exception: Twisted's write ignores a lost connection


def test_writer_of_other_transports_is_their_write():
    st = StringTransport()
    assert twisted_compat.writer(st) == st.write


# IP_TRANSPARENT needs CAP_NET_ADMIN: root here, and always under CI (no skip there).
needs_net_admin = pytest.mark.skipif(
    not os.environ.get("CI") and os.geteuid() != 0, reason="IP_TRANSPARENT needs CAP_NET_ADMIN"
)


@needs_net_admin
def test_transparent_source_port_zero_is_chosen_at_connect_a_fixed_one_is_shared():
    with socket.socket() as probe:  # a free port for the fixed-port case
        probe.bind(("127.0.0.1", 0))
        fixed = probe.getsockname()[1]
    for port, at_connect in ((0, 1), (fixed, 0)):
        source = ("127.0.0.1", port)
        connector = twisted_compat.FastConnector(
            "127.0.0.1", 9, Protocol, 30, source, MemoryReactorClock(), prepare=net._prepare(source)
        )
        client = connector._makeTransport()
        try:
            sock = client.socket
            assert sock.getsockopt(socket.SOL_IP, net.IP_BIND_ADDRESS_NO_PORT) == at_connect
            # A fixed port (FTP's 20) is shared by the connections to many peers.
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == (not at_connect)
            assert sock.getsockopt(socket.SOL_IP, net.IP_TRANSPARENT) == 1
            assert sock.getsockname()[1] == port  # 0 until connect() picks one
        finally:
            client.socket.close()


class _Outcome(ClientFactory):
    """Records how a connection attempt ended and what the connection read."""

    noisy = False

    def __init__(self) -> None:
        self.made: list[Protocol] = []
        self.failed: list[Failure] = []
        self.data = b""

    def buildProtocol(self, addr: object) -> Protocol:
        factory = self

        class Reader(Protocol):
            def connectionMade(self) -> None:
                factory.made.append(self)

            def dataReceived(self, data: bytes) -> None:
                factory.data += data

        return Reader()

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        self.failed.append(reason)


def _spin(reactor: EPollReactor, done, seconds: float = 5) -> None:
    """Run ``reactor`` by hand until ``done()``."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "nothing happened in time"
        reactor.runUntilCurrent()
        reactor.doPoll(0.05)


@pytest.fixture
def epoll():
    reactor = EPollReactor()
    yield reactor
    reactor._poller.close()


def _read_some(sock: socket.socket, into: bytearray) -> bytearray:
    with contextlib.suppress(BlockingIOError):
        into += sock.recv(100)
    return into


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connect_reaches_the_server_and_relays():
    with socket.create_server(("127.0.0.1", 0)) as server:
        reactor = EPollReactor()
        try:
            outcome = _Outcome()
            net.connect(reactor, "127.0.0.1", server.getsockname()[1], outcome)
            _spin(reactor, lambda: outcome.made)
            peer, _addr = server.accept()
            with peer:
                peer.sendall(b"hello")
                _spin(reactor, lambda: outcome.data == b"hello")
                outcome.made[0].transport.write(b"back")
                peer.setblocking(False)
                got = bytearray()
                _spin(reactor, lambda: _read_some(peer, got) == b"back")
            # Connected, it is registered for reading only.
            fd = outcome.made[0].transport.fileno()
            assert fd in reactor._reads and fd not in reactor._writes
        finally:
            reactor._poller.close()


def test_a_refused_connection_says_so(epoll):
    outcome = _Outcome()
    net.connect(epoll, "127.0.0.1", _free_port(), outcome)
    _spin(epoll, lambda: outcome.failed)
    assert outcome.failed[0].check(Refused)
    assert "Connection refused" in str(outcome.failed[0].value)
    assert not epoll._writes and set(epoll._reads) <= {epoll.waker.fileno()}


def test_giving_up_on_a_pending_connection(epoll):
    outcome = _Outcome()
    # A documentation address nobody answers for: the attempt stays pending.
    attempt = net.connect(epoll, "192.0.2.1", 9, outcome)
    epoll.runUntilCurrent()  # the attempt starts on the reactor's next turn
    attempt.cancel()
    assert len(outcome.failed) == 1 and not attempt.pending
    assert not epoll._writes and set(epoll._reads) <= {epoll.waker.fileno()}


def test_a_name_is_resolved_the_twisted_way(epoll, monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as server:
        asked = []
        monkeypatch.setattr(
            epoll, "resolve", lambda name, timeout=None: asked.append(name) or succeed("127.0.0.1")
        )
        outcome = _Outcome()
        net.connect(epoll, "server.example", server.getsockname()[1], outcome)
        _spin(epoll, lambda: outcome.made)
        assert asked == ["server.example"]
        outcome.made[0].transport.loseConnection()


@needs_net_admin
def test_a_transparent_connection_comes_from_the_source_given():
    with socket.create_server(("127.0.0.1", 0)) as server:
        reactor = EPollReactor()
        try:
            outcome = _Outcome()
            net.connect(reactor, "127.0.0.1", server.getsockname()[1], outcome, ("127.0.0.2", 0))
            _spin(reactor, lambda: outcome.made)
            peer, addr = server.accept()
            peer.close()
            assert addr[0] == "127.0.0.2"
        finally:
            reactor._poller.close()
