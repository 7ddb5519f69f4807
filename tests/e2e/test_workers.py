"""An instance of two workers in the lab: both serve, one instance to operate.

``twistd -n zfw --workers 2`` with the plug policy; the client connects through
TPROXY as to any zfw. Which worker served a session is read from the log (each
line names its worker) and from ``zfw sessions``.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections import Counter

import pytest

from tests.e2e.conftest import PLUG_POLICY
from zfw.control import client
from zfw.lab import SERVER4, Lab

# Connects COUNT times to the echo service (through zfw), one line each: ok or the error.
ECHOES = """
import socket, sys
host, count, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
held = []
for i in range(count):
    try:
        s = socket.create_connection((host, 7), timeout=10)
        s.sendall(b"ping\\n")
        data = b""
        while not data.endswith(b"\\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        print("ok" if data == b"ping\\n" else "short", flush=True)
        if hold:
            held.append(s)
        else:
            s.close()
    except OSError as e:
        print("error", type(e).__name__, flush=True)
if hold:
    print("holding", flush=True)
    import time
    time.sleep(hold)
"""


def echoes(lab: Lab, count: int) -> Counter[str]:
    out = lab.run("client", [sys.executable, "-c", ECHOES, SERVER4, str(count), "0"]).stdout
    return Counter(line.split()[0] for line in out.splitlines())


@pytest.fixture
def zfw2(plug_lab: Lab):
    z = plug_lab.start_zfw(PLUG_POLICY, "lab", "--workers", "2", "--log-spec", "core.*:4")
    assert z.wait_for("with 2 workers", 30), "\n".join(z.lines[-20:])
    yield z
    code = z.stop()
    assert code == -signal.SIGTERM, "\n".join(z.lines[-30:])


def ask(lab: Lab, command: str, **args: object) -> dict:
    return client.call(lab.control_socket("lab"), {"command": command, **args})


def served_by(z, start: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in z.lines[start:]:
        m = re.search(r"zfw/lab/(w\d)\[\d+\]: core\.session\(4\): .*start:", line)
        if m:
            found[m.group(1)] += 1
    return found


def test_both_workers_serve(plug_lab, zfw2):
    """Both workers accept from the shared sockets. How the connections split follows
    which worker is free first (on this loaded 2-core machine anything from 50/50 to
    90/10 was seen), so the test asks only that both serve."""
    start = len(zfw2.lines)
    assert echoes(plug_lab, 200) == {"ok": 200}
    deadline = time.monotonic() + 10
    while sum(served_by(zfw2, start).values()) < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    split = served_by(zfw2, start)
    assert sum(split.values()) == 200, split
    assert split["w1"] > 0 and split["w2"] > 0, split


def test_status_sessions_and_kill_cover_both_workers(plug_lab, zfw2):
    holder = plug_lab.popen("client", [sys.executable, "-c", ECHOES, SERVER4, "40", "60"])
    try:
        assert holder.stdout is not None
        lines = [holder.stdout.readline().strip() for _ in range(41)]
        assert lines == ["ok"] * 40 + ["holding"], lines
        status = ask(plug_lab, "status")
        assert status["ok"] and len(status["workers"]) == 2
        assert status["sessions"]["running"] == 40
        assert sum(w["sessions"] for w in status["workers"]) == 40
        assert status["services"]["echo"]["sessions_running"] == 40
        sessions = ask(plug_lab, "sessions")["sessions"]
        assert len(sessions) == 40
        assert {s["worker"] for s in sessions} == {1, 2}
        assert len({s["id"] for s in sessions}) == 40  # ids unique across workers
        victim = sessions[0]["id"]
        assert ask(plug_lab, "kill", session=victim) == {"ok": True, "killed": victim}
        assert not ask(plug_lab, "kill", session=victim)["ok"]
        assert len(ask(plug_lab, "sessions")["sessions"]) == 39
        assert ask(plug_lab, "loglevel", spec="core.*:5")["ok"]
        assert zfw2.wait_for("/w2[", 5) and zfw2.wait_for("log spec now 'core.*:5'", 5)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_worker_loses_only_its_sessions_and_comes_back(plug_lab, zfw2):
    holder = plug_lab.popen("client", [sys.executable, "-c", ECHOES, SERVER4, "20", "60"])
    try:
        assert holder.stdout is not None
        assert [holder.stdout.readline().strip() for _ in range(21)][-1] == "holding"
        before = ask(plug_lab, "status")["workers"]
        victim = before[0]
        survivors = {s["id"] for s in ask(plug_lab, "sessions")["sessions"] if s["worker"] == 2}
        start = len(zfw2.lines)
        os.kill(victim["pid"], signal.SIGKILL)
        # The listeners keep accepting while worker 1 is away and once it is back.
        assert echoes(plug_lab, 50) == {"ok": 50}
        assert zfw2.wait_for("worker 1 started", 15, start)
        assert zfw2.wait_for("worker 1 died (signal 9)", 1, start)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            after = ask(plug_lab, "status")["workers"]
            if all(isinstance(w.get("sessions"), int) for w in after):
                break
            time.sleep(0.2)
        assert after[0]["pid"] != victim["pid"] and after[1]["pid"] == before[1]["pid"]
        left = {s["id"] for s in ask(plug_lab, "sessions")["sessions"]}
        assert left == survivors  # worker 2's sessions go on
        assert echoes(plug_lab, 50) == {"ok": 50}
    finally:
        holder.kill()
        holder.wait()


def test_reloads_under_load_lose_no_connection(plug_lab, zfw2):
    results: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            results.update(echoes(plug_lab, 50))

    t = threading.Thread(target=load)
    t.start()
    try:
        for _ in range(5):
            answer = ask(plug_lab, "reload")
            assert answer["ok"], answer
    finally:
        stop.set()
        t.join()
    assert set(results) == {"ok"} and results["ok"] >= 50, results
    status = ask(plug_lab, "status")
    assert status["policy"]["reloads"] == 5 and len(status["workers"]) == 2


LIMITED = """
from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


def lab():
    InstanceOptions(workers=2)
    Service("echo", PlugProxy, max_sessions=10, max_sessions_per_client=10)
    Listener(SockAddrInet("", 50007), "echo", intercept=7)
"""


@pytest.fixture
def limited(plug_lab: Lab, tmp_path):
    policy = tmp_path / "limited.py"
    policy.write_text(LIMITED)
    z = plug_lab.start_zfw(str(policy), "lab", "--log-spec", "core.*:4")
    assert z.wait_for("with 2 workers", 30), "\n".join(z.lines[-20:])
    yield z, policy
    z.stop()


def test_max_sessions_of_a_service_holds_across_workers(plug_lab, limited):
    """InstanceOptions(workers=2) in the policy; each worker holds half of the 10."""
    z, _policy = limited
    start = len(z.lines)
    holder = plug_lab.popen("client", [sys.executable, "-c", ECHOES, SERVER4, "30", "60"])
    try:
        assert holder.stdout is not None
        lines = [holder.stdout.readline().strip() for _ in range(31)]
        assert lines[-1] == "holding"
        served = lines.count("ok")
        status = ask(plug_lab, "status")
        echo = status["services"]["echo"]
        assert echo["limit"] == 10 and echo["sessions_running"] == served
        assert 0 < served <= 10, lines
        assert sum(echo["refused"].values()) == 30 - served, echo["refused"]
        assert [w["sessions"] for w in status["workers"]] == [5, 5] or served < 10
        assert z.wait_for("refused 192.0.2.2", 5, start)
    finally:
        holder.kill()
        holder.wait()


def test_a_reload_whose_listener_cannot_open_is_refused(plug_lab, limited):
    _z, policy = limited
    taken = plug_lab.popen("fw", [sys.executable, "-m", "zfw.lab.tools", "echo", "50099"])
    try:
        assert taken.stdout is not None and taken.stdout.readline().strip() == "ready"
        policy.write_text(LIMITED + '    Listener(SockAddrInet("0.0.0.0", 50099), "echo")\n')
        answer = ask(plug_lab, "reload")
        assert not answer["ok"]
        assert answer["error"].startswith(f"{policy}:") and "50099" in answer["error"]
        assert "Address already in use" in answer["error"]
        assert echoes(plug_lab, 10) == {"ok": 10}  # the running generation serves on
        assert ask(plug_lab, "status")["policy"]["reloads"] == 0
    finally:
        taken.kill()
        taken.wait()
