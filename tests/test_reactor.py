"""zfw.reactor: epoll dispatch without a log context, still logging what escapes."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.python import log

from zfw.reactor import EPollReactor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Reader(FileDescriptor):
    """Reads one socket; records what it read and how it was lost."""

    def __init__(self, reactor, sock: socket.socket, fail_on_lost: bool = False):
        super().__init__(reactor)
        self.sock = sock
        self.read: list[bytes] = []
        self.lost: list[object] = []
        self.fail_on_lost = fail_on_lost

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self):
        data = self.sock.recv(65536)
        if not data:
            from twisted.internet.main import CONNECTION_DONE

            return CONNECTION_DONE
        self.read.append(data)
        return None

    def connectionLost(self, reason) -> None:
        self.lost.append(reason)
        if self.fail_on_lost:
            raise RuntimeError("broken connectionLost")


@pytest.fixture
def reactor():
    r = EPollReactor()
    yield r
    r._poller.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def logged():
    errors: list[dict] = []

    def observer(event: dict) -> None:
        if event.get("isError"):
            errors.append(event)

    log.addObserver(observer)
    yield errors
    log.removeObserver(observer)


def test_a_ready_descriptor_is_read(reactor, pair):
    a, b = pair
    reader = Reader(reactor, a)
    reactor.addReader(reader)
    b.sendall(b"hello")
    reactor.doIteration(1)
    assert reader.read == [b"hello"]
    reactor.removeReader(reader)


def test_doPoll_is_the_iteration(reactor):
    assert EPollReactor.doIteration is EPollReactor.doPoll


def test_a_closed_peer_is_connection_done(reactor, pair):
    a, b = pair
    reader = Reader(reactor, a)
    reactor.addReader(reader)
    b.close()
    reactor.doIteration(1)
    assert len(reader.lost) == 1 and "cleanly" in str(reader.lost[0].value)
    assert reader not in reactor.getReaders()


def test_an_escaping_exception_is_logged_and_the_batch_goes_on(reactor, logged):
    """connectionLost raising escapes Twisted's dispatch: logged, the next event still runs."""
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        broken = Reader(reactor, pairs[0][0], fail_on_lost=True)
        fine = Reader(reactor, pairs[1][0])
        for reader in (broken, fine):
            reader.sock.setblocking(False)
            reactor.addReader(reader)
        pairs[0][1].close()
        pairs[1][1].sendall(b"still served")
        for _ in range(3):
            reactor.doIteration(0.2)
            if fine.read:
                break
        assert fine.read == [b"still served"]
        assert broken.lost
        assert any("broken connectionLost" in str(e.get("failure").value) for e in logged)
        reactor.removeReader(fine)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_keyboard_interrupt_is_not_swallowed(reactor, pair):
    a, b = pair

    class Interrupting(Reader):
        def connectionLost(self, reason) -> None:
            raise KeyboardInterrupt

    reactor.addReader(Interrupting(reactor, a))
    b.close()
    with pytest.raises(KeyboardInterrupt):
        reactor.doIteration(1)


def test_an_interrupted_wait_returns(reactor, monkeypatch):
    class Poller:
        def poll(self, timeout, maxevents):
            raise OSError(errno.EINTR, "interrupted")

        def close(self):
            pass

    monkeypatch.setattr(reactor, "_poller", Poller())
    reactor.doIteration(0)  # no exception


def _reactor_after(code: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nfrom twisted.internet import reactor\nprint(type(reactor))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return out.stdout.strip()


def test_install_makes_it_the_reactor():
    assert "zfw.twisted_compat.EPollReactor" in _reactor_after(
        "import zfw.reactor; zfw.reactor.install()"
    )


def test_install_keeps_a_reactor_already_chosen():
    code = (
        "from twisted.internet import selectreactor; selectreactor.install()\n"
        "import zfw.reactor; zfw.reactor.install()"
    )
    assert "SelectReactor" in _reactor_after(code)


def test_the_twistd_plugin_runs_on_it(tmp_path):
    """make_service installs it before anything imports the default reactor."""
    policy = tmp_path / "policy.py"
    policy.write_text("def lab():\n    pass\n")
    code = (
        "from zfw.twistd import Options, make_service\n"
        "o = Options()\n"
        f"o.parseOptions(['--policy', {str(policy)!r}, '--instance', 'lab',"
        f" '--log-file', {str(tmp_path / 'log')!r}])\n"
        "make_service(o)"
    )
    assert "zfw.twisted_compat.EPollReactor" in _reactor_after(code)


class Echo(Reader):
    """Answers each read with two writes through zfw.net.writer's batch."""

    def __init__(self, reactor, sock: socket.socket, fail: bool = False):
        super().__init__(reactor, sock)
        self.fail = fail
        self.sent: list[bytes] = []
        self.reactor = reactor

    def doRead(self):
        data = self.sock.recv(65536)
        batch = self.reactor.send_batch
        for piece in (b"<", data):
            if not batch.hold(self, piece):  # a stand-in for a TCP transport
                raise AssertionError("not held during the batch")
        if self.fail:
            raise RuntimeError("handler failed after writing")
        return None


def test_writes_during_a_batch_are_sent_when_it_ends(reactor, pair, monkeypatch, logged):
    a, b = pair
    sent: list[tuple[object, bytes]] = []
    monkeypatch.setattr("zfw.twisted_compat._send", lambda t, data: sent.append((t, data)))
    monkeypatch.setattr("zfw.twisted_compat._idle", lambda t: True)
    ok = Echo(reactor, a)
    c, d = socket.socketpair()
    c.setblocking(False)
    failing = Echo(reactor, c, fail=True)
    reactor.addReader(ok)
    reactor.addReader(failing)
    b.send(b"one")
    d.send(b"two")
    reactor.doPoll(1)
    # One send per connection, after the batch, also for the handler that failed.
    assert sorted(sent, key=lambda s: s[1]) == [(ok, b"<one"), (failing, b"<two")]
    assert not reactor.send_batch.open
    assert len(logged) == 1  # the failure was logged, as before
    reactor.removeReader(ok)
    reactor.removeReader(failing)
    c.close()
    d.close()
