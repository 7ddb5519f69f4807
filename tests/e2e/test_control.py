"""Runtime control with real traffic: zfw status|sessions|kill|reload|loglevel over the
control socket, the counters, the Prometheus endpoint, and who may use the socket."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import HEADER
from tests.e2e.helpers import big_file, start_ftp_servers, zfw_in_front
from tests.test_check_mistakes import CASES as MISTAKES
from zfw.lab import CLIENT4, SERVER4, Lab
from zfw.lab.servers import start_nginx
from zfw.lab.tools import pattern_block
from zfw.tls.certs import create_ca

HERE = os.path.dirname(__file__)
ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
SIZE = 40 * 2**20
METRICS = "127.0.0.1:9150"  # in the firewall namespace


@pytest.fixture(scope="module")
def ctl(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("control")
    www, root = d / "www", d / "ftp"
    www.mkdir()
    root.mkdir()
    os.chmod(root, 0o777)
    (www / "small.txt").write_text("small\n")
    digest = big_file(www / "big.bin", SIZE, pattern_block())
    shutil.copy(www / "big.bin", root / "big.bin")
    policy = d / "policy.py"
    shutil.copy(os.path.join(HERE, "policies", "control.py"), policy)
    nginx = start_nginx(
        lab, str(d), f"        listen 80;\n        listen 8080;\n        root {www};"
    )
    ftp = start_ftp_servers(lab, root, [21])
    time.sleep(0.5)
    with zfw_in_front(
        lab, [nginx, *ftp], str(policy), "ctl", "core.*:3", "--metrics", METRICS
    ) as z:
        yield lab, z, d, digest, policy


def zfw(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [ZFW, *args, "--socket", lab.control_socket("ctl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def status(lab: Lab) -> dict:
    return json.loads(zfw(lab, "status", "--json").stdout)[lab.control_socket("ctl")]


def sessions(lab: Lab) -> list[dict]:
    return json.loads(zfw(lab, "sessions", "--json").stdout)[lab.control_socket("ctl")]


def curl(lab: Lab, path: str, port: int = 80) -> str:
    return lab.run(
        "client", ["curl", "-sS", "--max-time", "20", f"http://{SERVER4}:{port}{path}"]
    ).stdout


def wait_until(predicate, timeout: float = 20.0, what=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out; last: {what() if what else None}")


def test_sessions_kill_and_counters(ctl):
    lab, _z, d, digest, _policy = ctl
    before = status(lab)["services"]
    for _ in range(3):
        assert curl(lab, "/small.txt") == "small\n"
    # A download through HttpProxy and one through FtpProxy, both slow enough to watch.
    # 40 s at 1 MB/s: the kill comes long before the end, whatever the kernel buffers hold.
    http_out = d / "http-got.bin"
    http = subprocess.Popen(
        lab.cmd(
            "client",
            ["curl", "-sS", "--limit-rate", "1M", "-o", str(http_out), f"http://{SERVER4}/big.bin"],
        )
    )
    ftp_out = d / "ftp-got.bin"
    ftp = subprocess.Popen(
        lab.cmd(
            "client",
            [
                "lftp",
                "-u",
                "zfw,secret",
                "-e",
                f"set net:limit-rate 4000000; set net:max-retries 1; get big.bin -o {ftp_out}; bye",
                SERVER4,
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def both() -> list[dict] | None:
        found = sessions(lab)
        states = " ".join(s["state"] for s in found)
        return found if "GET /big.bin: response" in states and "RETR big.bin" in states else None

    found = {
        s["service"]: s
        for s in wait_until(both, what=lambda: (sessions(lab), ftp.poll() or ftp.stdout.read()))
    }
    web, files = found["ctl_http"], found["ctl_ftp"]
    for s, port in ((web, 80), (files, 21)):
        assert s["client"].startswith(f"{CLIENT4}:") and s["client_zone"] == "lan"
        assert s["server"] == f"{SERVER4}:{port}" and s["server_zone"] == "servers"
        assert s["id"].startswith(f"ctl/{s['service']}:") and s["age"] >= 0
    assert web["bytes_from_server"] > 0
    table = zfw(lab, "sessions").stdout
    assert web["id"] in table and files["id"] in table and "RETR big.bin" in table

    assert zfw(lab, "kill", web["id"]).stdout.strip() == "killed"
    assert http.wait(60) != 0  # curl saw its download cut off
    assert web["id"] not in {s["id"] for s in sessions(lab)}
    assert zfw(lab, "kill", web["id"], check=False).returncode == 1  # gone already
    ftp.communicate(timeout=120)
    assert hashlib.sha256(ftp_out.read_bytes()).hexdigest() == digest  # the other: intact

    after = wait_until(lambda: (st := status(lab)) and not st["sessions"]["running"] and st)
    web_c, ftp_c = after["services"]["ctl_http"], after["services"]["ctl_ftp"]
    old_web, old_ftp = before["ctl_http"], before["ctl_ftp"]
    assert web_c["sessions_total"] - old_web["sessions_total"] == 4  # curl: one each
    # The three small ones answered 200; the killed one never finished.
    assert web_c["proxy"]["http_requests_2xx"] - old_web["proxy"].get("http_requests_2xx", 0) == 3
    got = web_c["bytes_from_server"] - old_web["bytes_from_server"]
    assert web["bytes_from_server"] <= got < SIZE
    assert ftp_c["sessions_total"] - old_ftp["sessions_total"] == 1
    assert ftp_c["proxy"]["ftp_transfers"] - old_ftp["proxy"].get("ftp_transfers", 0) == 1
    ftp_got = ftp_c["bytes_from_server"] - old_ftp["bytes_from_server"]
    assert SIZE <= ftp_got <= SIZE + 65536  # the file, and the control replies
    text = zfw(lab, "status").stdout
    assert "service ctl_http:" in text and "http_requests_2xx" in text


def test_reload_refused_then_done_with_a_new_listener(ctl):
    lab, z, _d, _digest, policy = ctl
    good = policy.read_text()
    try:
        policy.write_text(good + "    Listener(SockAddrInet('', 50081), 'nope')\n")
        line = good.count("\n") + 1
        proc = zfw(lab, "reload", check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            f"{policy}:{line}: listener *:50081 names unknown service 'nope'"
        )
        assert curl(lab, "/small.txt") == "small\n"  # the running policy serves on
        new = good + (
            "    Service('ctl_alt', HttpProxy)\n"
            "    Listener(SockAddrInet('', 50081), 'ctl_alt', intercept=8080)\n"
        )
        policy.write_text(new)
        lab.apply_rules(str(policy))  # the new listener's TPROXY rule
        mark = len(z.lines)
        assert zfw(lab, "reload").stdout.strip() == "ok"
        assert z.wait_for("listening on 0.0.0.0:50081", start=mark)
        assert curl(lab, "/small.txt", port=8080) == "small\n"
        assert status(lab)["policy"]["reloads"] >= 1
    finally:
        policy.write_text(good)
        zfw(lab, "reload")
        lab.apply_rules(str(policy))


TAKER = """
import socket, sys, time
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(600)
"""


def test_a_reload_whose_new_listener_cannot_open_keeps_the_old_policy(ctl):
    lab, z, _d, _digest, policy = ctl
    good = policy.read_text()
    before = status(lab)
    taker = lab.popen("fw", [sys.executable, "-c", TAKER, "50081"])  # another program
    try:
        assert taker.stdout is not None and taker.stdout.readline().strip() == "ready"
        policy.write_text(
            good + "    Service('ctl_alt', HttpProxy)\n"
            "    Listener(SockAddrInet('', 50081), 'ctl_alt', intercept=8080)\n"
        )
        line = good.count("\n") + 2
        lab.apply_rules(str(policy))  # what an administrator would do first
        mark = len(z.lines)
        proc = zfw(lab, "reload", check=False)
        assert (proc.returncode, proc.stdout) == (1, "")
        assert proc.stderr == (
            f"{policy}:{line}: cannot listen on 0.0.0.0:50081: Address already in use\n"
        )
        assert z.wait_for("reload refused, keeping the running policy", start=mark)
        assert curl(lab, "/small.txt") == "small\n"  # the old listener serves
        after = status(lab)
        assert after["listeners"] == before["listeners"]  # the new one is not listed
        assert "50081" not in json.dumps(after["listeners"])
        assert after["policy"] == before["policy"] and "ctl_alt" not in after["services"]
        assert "50081" not in zfw(lab, "status").stdout
        # A policy that does not load is refused the same way; the old one serves on.
        policy.write_text(good + "    Listener(SockAddrInet('', 50082), 'nope')\n")
        proc = zfw(lab, "reload", check=False)
        assert proc.returncode == 1 and proc.stderr.startswith(f"{policy}:{line - 1}: ")
        assert curl(lab, "/small.txt") == "small\n"
        assert status(lab)["policy"] == before["policy"]
    finally:
        taker.kill()
        taker.wait()
        policy.write_text(good)
        zfw(lab, "reload")
        lab.apply_rules(str(policy))


def test_every_mistaken_policy_is_refused_by_reload(ctl, tmp_path):
    """Each mistake ``zfw check`` reports (tests/test_check_mistakes.py) is refused by a
    reload of the running instance as well, with the same line, and the old policy serves
    on."""
    lab, _z, _d, _digest, policy = ctl
    good = policy.read_text()
    ca = str(tmp_path / "ca")
    create_ca(ca, "zfw test CA")
    try:
        for name, body, line, message in MISTAKES:
            policy.write_text(HEADER + textwrap.dedent(body.replace("@CA@", ca)))
            proc = zfw(lab, "reload", check=False)
            err = proc.stderr.strip()
            where = f"{policy}:{line}: " if line else f"{policy}: "
            assert proc.returncode == 1, (name, proc.stdout, err)
            assert "\n" not in err and err.startswith(where) and message in err, (name, err)
            assert curl(lab, "/small.txt") == "small\n", name
    finally:
        policy.write_text(good)
    assert zfw(lab, "reload").stdout.strip() == "ok"


def test_a_slow_policy_load_does_not_stall_traffic(ctl):
    lab, _z, _d, _digest, policy = ctl
    good = policy.read_text()
    try:
        policy.write_text("import time\ntime.sleep(3)\n" + good)
        started = time.monotonic()
        reload = subprocess.Popen(
            [ZFW, "reload", "--socket", lab.control_socket("ctl")],
            stdout=subprocess.PIPE,
            text=True,
        )
        latencies = []
        while reload.poll() is None:
            t = time.monotonic()
            assert curl(lab, "/small.txt") == "small\n"
            latencies.append(time.monotonic() - t)
        assert reload.stdout.read().strip() == "ok" and reload.returncode == 0
        assert time.monotonic() - started >= 3
        # Answered all along: none waited for the load (well below its 3 s).
        assert len(latencies) >= 3 and max(latencies) < 1.5, latencies
    finally:
        policy.write_text(good)
        zfw(lab, "reload")


def test_loglevel_for_a_while(ctl):
    lab, z, *_ = ctl
    spec = "http.*:6,core.*:4"
    # Long enough for the checks below on a loaded machine (a CLI start alone can take
    # two seconds there); the revert is waited for, not timed.
    assert zfw(lab, "loglevel", spec, "--for", "8").stdout.strip() == "ok"
    assert status(lab)["log_spec"] == f"{spec},*:3"
    mark = len(z.lines)
    assert curl(lab, "/small.txt") == "small\n"
    assert z.wait_for("core.session(4)", start=mark)  # shown now
    assert z.wait_for("log spec back to", timeout=30, start=mark)
    mark = len(z.lines)
    assert curl(lab, "/small.txt") == "small\n"
    assert z.wait_for("http.request(3)", start=mark)
    time.sleep(0.5)
    assert not [ln for ln in z.lines[mark:] if "core.session(4)" in ln]  # back to 3
    assert zfw(lab, "loglevel", "http:x", check=False).returncode == 1


def scrape(lab: Lab) -> dict[tuple[str, tuple], float]:
    text = lab.run("fw", ["curl", "-sS", f"http://{METRICS}/metrics"]).stdout
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_prometheus_endpoint_moves_with_traffic(ctl):
    lab, *_ = ctl
    key = ("zfw_sessions_total", (("instance", "ctl"), ("service", "ctl_http")))
    before = scrape(lab)[key]
    for _ in range(2):
        assert curl(lab, "/small.txt") == "small\n"
    samples = scrape(lab)
    assert samples[key] == before + 2
    assert samples[("zfw_sessions_limit", (("instance", "ctl"), ("service", "ctl_http")))] == 1000
    req = (
        "zfw_proxy_events_total",
        (("event", "http_requests_2xx"), ("instance", "ctl"), ("service", "ctl_http")),
    )
    assert samples[req] >= 2


NOBODY_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES")
    sys.exit()
try:
    s.sendall(b'{"command": "status"}\\n')
except BrokenPipeError:  # refused and closed before the command went out
    pass
print(s.recv(1000).decode().strip())  # the refusal, read from the buffer
"""


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(lab: Lab) -> str:
    proc = subprocess.run(
        [
            *NOBODY,
            sys.executable,
            "-c",
            NOBODY_CLIENT,
            lab.control_socket("ctl"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.strip() + proc.stderr.strip()


def test_the_socket_refuses_others_and_garbage(ctl):
    lab, z, *_ = ctl
    path = lab.control_socket("ctl")
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(lab.run_dir, 0o755)
    assert as_nobody(lab) == "EACCES"  # the file's mode
    os.chmod(path, 0o666)  # and if an administrator opened it up: the peer's uid
    try:
        assert as_nobody(lab) == '{"ok":false,"error":"permission denied"}'
        assert z.wait_for("refused a control client of uid 65534")
        # What the zfw command makes of it: one line, not a traceback.
        proc = subprocess.run(
            [*NOBODY, ZFW, "status", "--socket", path],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            1,
            "",
            f"{path}: permission denied\n",
        )
    finally:
        os.chmod(path, 0o600)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        for line, error in (
            (b"\x00\xff garbage\n", "not a JSON object"),
            (b'{"command": "rm -rf /"}\n', "unknown command"),
            (b'{"command": "kill", "session": 5}\n', "kill: session has the wrong type"),
        ):
            s.sendall(line)
            answer = json.loads(s.makefile().readline())
            assert answer["ok"] is False and error in answer["error"]
        s.sendall(b"x" * 100_000 + b"\n")
        assert "longer than" in json.loads(s.makefile().readline())["error"]
    assert status(lab)["instance"] == "ctl"  # undisturbed
    assert curl(lab, "/small.txt") == "small\n"
