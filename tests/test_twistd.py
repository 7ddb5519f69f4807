"""A real ``zfw run`` on loopback: one log for zfw and Twisted, SIGUSR1, syslog and
systemd's readiness notification."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twisted.logger import LogLevel
from twisted.python.failure import Failure

from zfw.log import Log, LogSpec
from zfw.twistd_log import TwistedObserver

ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} zfw/plain\[\d+\]: [a-z.]+\(\d\): ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def echo_server() -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port
    finally:
        srv.close()


def policy(tmp_path: Path, listen: int, target: int) -> list[str]:
    path = tmp_path / "policy.py"
    path.write_text(
        "from zfw.policy import *\n"
        "InetZone('local', '127.0.0.0/8', inbound_services=['*'], outbound_services=['*'])\n"
        "def plain():\n"
        f"    Service('echo', PlugProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', {target})))\n"
        f"    Listener(SockAddrInet('127.0.0.1', {listen}), 'echo', transparent=False)\n"
    )
    return ["--policy", str(path), "--control-socket", str(tmp_path / "control.sock")]


@contextmanager
def zfw_run(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [ZFW, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(path: Path, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if text in line:
                    return line
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text() if path.exists() else ''}")


def echo_through(port: int, data: bytes = b"ping\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(data)
        return c.recv(100)


def test_one_log_file_and_sigusr1(tmp_path):
    listen = free_port()
    log = tmp_path / "zfw.log"
    with echo_server() as target:
        args = [*policy(tmp_path, listen, target), "--instance", "plain"]
        with zfw_run([*args, "--log-file", str(log)]) as proc:
            wait_for(log, "started from")
            assert echo_through(listen) == b"ping\n"
            wait_for(log, "plug.info(3)")
            log.rename(tmp_path / "zfw.log.1")
            proc.send_signal(signal.SIGUSR1)
            wait_for(log, "core.info(3): log reopened")
            assert echo_through(listen) == b"ping\n"
            end = wait_for(log, "plug.info(3)")
        assert proc.returncode in (0, -signal.SIGTERM)  # twistd ends by the signal it got
    old = (tmp_path / "zfw.log.1").read_text().splitlines()
    # Twisted's own lines, in zfw's format, in the same file.
    starting = [ln for ln in old if "twistd" in ln and "starting up" in ln]
    assert starting and LINE.match(starting[0]) and "twisted.info(3): " in starting[0]
    assert all(LINE.match(ln) for ln in old), old
    assert not any("starting on" in ln for ln in old)  # Twisted's per-port noise
    assert "client=127.0.0.1:" in end and f"server=127.0.0.1:{target}" in end
    assert "Received SIGTERM" in log.read_text()


def test_syslog_priorities(tmp_path):
    listen = free_port()
    address = str(tmp_path / "syslog.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(address)
        syslog.settimeout(20)
        closed = free_port()  # nothing listens there: the plug proxy's connect fails
        args = [*policy(tmp_path, listen, closed), "--instance", "plain"]
        with zfw_run([*args, "--syslog", "--syslog-socket", address]):
            got = []
            while not any("started from" in g for g in got):
                got.append(syslog.recv(4096).decode())
            with socket.create_connection(("127.0.0.1", listen), timeout=10) as c:
                assert c.recv(100) == b""  # closed: the server cannot be reached
            while not any("plug.error" in g for g in got):
                got.append(syslog.recv(4096).decode())
    starting = next(g for g in got if "starting up" in g)
    assert re.match(r"<30>zfw/plain\[\d+\]: twisted\.info\(3\): twistd", starting)
    error = next(g for g in got if "plug.error" in g)
    assert re.match(r"<27>zfw/plain\[\d+\]: plug\.error\(3\): \(plain/echo:1\): connecting", error)


def test_ready_is_notified_once_listening(tmp_path):
    listen = free_port()
    notify = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd, echo_server() as target:
        sd.bind(notify)
        sd.settimeout(20)
        args = [*policy(tmp_path, listen, target), "--instance", "plain"]
        with zfw_run(args, {"NOTIFY_SOCKET": notify}) as proc:
            state = sd.recv(4096).decode()
            assert state.startswith("READY=1\n") and f"MAINPID={proc.pid}" in state
            assert echo_through(listen) == b"ping\n"  # listening when READY=1 came
            proc.send_signal(signal.SIGHUP)
            assert sd.recv(4096).decode().startswith("RELOADING=1\nMONOTONIC_USEC=")
            assert sd.recv(4096).decode().startswith("READY=1")
            proc.send_signal(signal.SIGTERM)
            assert sd.recv(4096).decode() == "STOPPING=1"


def test_twisted_failures_become_zfw_lines():
    import io

    out = io.StringIO()
    observer = TwistedObserver(Log(LogSpec(), out, program="zfw/plain"))
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        failure = Failure()
    observer(
        {
            "log_level": LogLevel.critical,
            "log_format": "Unhandled Error",
            "log_failure": failure,
            "log_namespace": "test",
        }
    )
    lines = out.getvalue().splitlines()
    assert all(LINE.match(ln) and "twisted.error(0): " in ln for ln in lines)
    assert lines[0].endswith("Unhandled Error") and "ZeroDivisionError" in lines[-1]


def test_the_policy_runs_once_per_start_and_prints_to_the_log(tmp_path):
    listen = free_port()
    log = tmp_path / "zfw.log"
    runs = tmp_path / "runs"
    with echo_server() as target:
        args = [*policy(tmp_path, listen, target), "--instance", "plain"]
        path = tmp_path / "policy.py"
        path.write_text(
            path.read_text().replace("PlugProxy,", "Echo,")
            + f"open({str(runs)!r}, 'a').write('run\\n')\nprint('loaded', 42)\n"
            "class Echo(PlugProxy):\n"
            "    def config(self):\n"
            "        print('session', 7)\n"
        )
        with zfw_run([*args, "--log-file", str(log)]) as proc:
            wait_for(log, "started from")
            assert runs.read_text() == "run\n"
            proc.send_signal(signal.SIGHUP)
            wait_for(log, "policy reloaded")
            assert runs.read_text() == "run\nrun\n"
            # At run time, after a reload: a print in config() reaches the log too.
            assert echo_through(listen) == b"ping\n"
            line = wait_for(log, "the policy printed: session 7")
            assert line.endswith(f"core.policy(3): {path}:10: the policy printed: session 7")
        out = proc.stdout.read()
    printed = [ln for ln in log.read_text().splitlines() if "the policy printed: loaded" in ln]
    assert len(printed) == 2
    assert all(
        ln.endswith(f"core.policy(3): {path}:7: the policy printed: loaded 42") for ln in printed
    )
    assert "loaded 42" not in out and "session 7" not in out


class FakeReactor:
    def __init__(self) -> None:
        self.called: list[tuple[object, ...]] = []

    def callFromThread(self, f, *args) -> None:
        self.called.append((f, *args))


def test_policy_output_holds_while_loading_then_logs_from_any_thread_rate_limited(monkeypatch):
    import io

    from zfw import log as zfw_log
    from zfw.twistd import PolicyOutput

    out = io.StringIO()
    reactor = FakeReactor()
    printed = PolicyOutput(Log(LogSpec(), out, program="t"), reactor)
    printed("p.py:3", "one")
    printed("p.py:3", "two")
    assert out.getvalue() == ""  # held while the policy loads
    printed.loaded()
    assert out.getvalue().count("p.py:3: the policy printed:") == 2  # all of the load's
    monkeypatch.setattr(zfw_log.time, "monotonic", lambda: 1000.0)  # no clock in the test
    printed("p.py:9", "session")  # at run time, on the reactor thread: logged now
    printed("p.py:9", "session")  # the same line again at once: left out
    assert out.getvalue().count("p.py:9: the policy printed: session") == 1
    worker = threading.Thread(target=printed, args=("p.py:12", "decided"))
    worker.start()
    worker.join()
    assert "decided" not in out.getvalue() and len(reactor.called) == 1
    f, *args = reactor.called[0]
    f(*args)  # the reactor runs it on its own thread
    assert "p.py:12: the policy printed: decided" in out.getvalue()


def as_nobody(call: Callable[[], object]) -> str:
    """``call()`` in a forked child that has become user nobody (no capabilities left):
    ``ok``, or the exception it raised as ``Name: text``. (A fork, not a new Python: the
    interpreter may live where nobody cannot read it.)"""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                call()
                result = "ok"
            except Exception as e:
                result = f"{type(e).__name__}: {e}"
            os.write(write, result.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        result = f.read().decode()
    os.waitpid(pid, 0)
    return result


def grant(path: Path, uid: int, perm: int) -> None:
    """A POSIX ACL giving ``uid`` ``perm`` (rwx bits) on ``path``: the xattr ``setfacl``
    writes (no package needed), the owner, group and others keeping their mode bits."""
    mode = os.stat(path).st_mode
    entries = [  # (tag, perm, id), in the order the kernel wants
        (0x01, (mode >> 6) & 7, 0xFFFFFFFF),  # the owner
        (0x02, perm, uid),  # the named user
        (0x04, (mode >> 3) & 7, 0xFFFFFFFF),  # the owning group
        (0x10, ((mode >> 3) & 7) | perm, 0xFFFFFFFF),  # the mask
        (0x20, mode & 7, 0xFFFFFFFF),  # others
    ]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", acl)


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A directory others may enter (pytest's tmp_path is 0700), removed after."""
    import shutil
    import tempfile

    etc = Path(tempfile.mkdtemp())
    try:
        os.chmod(etc, 0o755)
        yield etc
    finally:
        shutil.rmtree(etc)


def test_a_policy_naming_a_file_the_user_cannot_read_is_refused_as_that_user():
    from zfw.policyfiles import User, unreadable
    from zfw.tls.certs import create_ca
    from zfw.twistd import load_readable

    with shared_dir() as etc:
        create_ca(str(etc / "ca"), "zfw test CA")  # ca/ 0700, ca.key 0600: root's alone
        path = etc / "policy.py"
        path.write_text(
            "from zfw.policy import *\n"
            "from zfw.tls.encryption import *\n"
            "def i():\n"
            "    c = DynamicCertificate(trusted_ca=('ca/ca.pem', 'ca/ca.key'))\n"
            "    Service('s', HttpProxy, encryption=TwoSidedEncryption(c))\n"
            "    Listener(SockAddrInet('', 50443), 's', intercept=443)\n"
        )
        os.chmod(path, 0o644)
        policy = load_readable(str(path), "i", print)  # as root
        assert policy.instance_name == "i"

        def load() -> object:
            return load_readable(str(path), "i", print)

        # A start or a reload as nobody: refused in one line (the loader reads the CA).
        assert as_nobody(load) == f"PolicyError: {path}:4: {etc}/ca/ca.pem: Permission denied"
        # POSIX ACLs that let nobody in: the kernel says so, and zfw believes it.
        grant(etc / "ca", 65534, 1)
        for name in ("ca.pem", "ca.key"):
            grant(etc / "ca" / name, 65534, 4)
        assert as_nobody(load) == "ok"
        # zfw check --as-user judges another user by the mode bits alone.
        assert len(unreadable(policy, User.named("nobody"))) == 2


def test_a_policy_needing_a_capability_it_lacks_is_refused_at_start_and_reload():
    from zfw.twistd import load_digested

    with shared_dir() as etc:
        path = etc / "policy.py"
        path.write_text(
            "from zfw.policy import *\n"
            "def i():\n"
            "    Service('f', FtpProxy, router=DirectedRouter(SockAddrInet('127.0.0.1', 21)))\n"
            "    Listener(SockAddrInet('127.0.0.1', 50021), 'f', transparent=False)\n"
        )
        os.chmod(path, 0o644)
        # load_digested is what a start and a reload (off the reactor) load with.
        refused = as_nobody(lambda: load_digested(str(path), "i", print))
        assert refused.startswith("NetError: ") and "service 'f' is FtpProxy" in refused


def test_a_policy_file_unreadable_for_the_digest_is_one_line(tmp_path, monkeypatch):
    import io

    import pytest

    from zfw import twistd
    from zfw.errors import PolicyError

    args = policy(tmp_path, free_port(), free_port())

    def denied(_policy: object) -> str:
        raise PermissionError(13, "Permission denied", args[1])

    monkeypatch.setattr(twistd, "policy_digest", denied)
    with pytest.raises(PolicyError) as e:
        twistd.ZfwService(args[1], "plain", Log(LogSpec(), io.StringIO()), reactor=FakeReactor())
    assert str(e.value) == f"{args[1]}: cannot read {args[1]}: Permission denied"
