"""One client must not starve the others, and nobody is refused without contention:
2,000 slowloris connections from one address against a service of 1,000 sessions and
a normal request from another; the same flood and a burst of 200 TLS handshakes through
the tunnel from another address; 500 connections at once from one address; a fixed
per-address cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import zfw_in_front
from zfw.lab import CLIENT4, CLIENT4_OTHER, SERVER4, Lab
from zfw.lab.servers import self_signed_cert, start_nginx, tls_server_lines

POLICY = os.path.join(os.path.dirname(__file__), "policies", "limits.py")
FAIR_POLICY = os.path.join(os.path.dirname(__file__), "policies", "fair.py")
ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
OTHER = "192.0.2.3"  # another address of the client's zone (lan is 192.0.2.0/25)


def test_slowloris_from_one_address_leaves_the_service_to_the_others(lab: Lab, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok.txt").write_text("served\n")
    nginx = start_nginx(lab, str(tmp_path), f"        listen 80;\n        root {tmp_path}/www;")
    lab.run("client", ["ip", "addr", "add", f"{OTHER}/24", "dev", "eth0"])
    time.sleep(0.5)
    slow = None
    try:
        with zfw_in_front(lab, nginx, POLICY, "limits", "core.*:3,http.*:3") as z:
            base = z.rss_kib()
            slow = subprocess.Popen(
                lab.tool("client", "slowloris", SERVER4, "80", "2000", "--source", CLIENT4),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert slow.stdout is not None
            opened = slow.stdout.readline()  # all 2,000 tried: held, or refused at once
            assert opened.startswith("open "), opened
            time.sleep(1.0)  # dribbling now, well inside the 10 s header deadline
            started = time.monotonic()
            proc = lab.run(
                "client",
                [
                    "curl",
                    "-sS",
                    "--max-time",
                    "2",
                    "--interface",
                    OTHER,
                    f"http://{SERVER4}/ok.txt",
                ],
                check=False,
            )
            took = time.monotonic() - started
            assert proc.stdout == "served\n", (proc.stderr, opened)
            assert took < 2.0
            # The slow address holds what the headroom leaves (900 of 1,000) and no more;
            # refusals are logged, one line per address every 10 s, and counted.
            lines = z.grep(f"refused {CLIENT4}:")
            assert lines and (
                f"{CLIENT4} holds the most sessions (900) of service 'web', near its limit "
                "of 1000" in lines[0]
            )
            assert len(lines) <= 2
            assert z.wait_for("closed to make room: service 'web' is near its limit of 1000")
            grown = z.rss_kib() - base
            assert grown < 64 * 1024, f"zfw grew by {grown} KiB"
            status = subprocess.run(
                [
                    os.path.join(os.path.dirname(sys.executable), "zfw"),
                    "status",
                    "--json",
                    "--socket",
                    lab.control_socket("limits"),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            web = next(iter(json.loads(status).values()))["services"]["web"]
            assert web["refused"]["fair"] == 1100 and web["evicted"] == 1
    finally:
        if slow is not None:
            slow.kill()
            slow.wait()
        lab.run("client", ["ip", "addr", "del", f"{OTHER}/24", "dev", "eth0"], check=False)


def _status(lab: Lab, instance: str) -> dict:
    out = subprocess.run(
        [ZFW, "status", "--json", "--socket", lab.control_socket(instance)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(iter(json.loads(out).values()))


def _burst(lab: Lab, port: int, count: int, source: str, *extra: str) -> dict:
    args = [sys.executable, "-m", "zfw.lab.tools", "burst", SERVER4, str(port), str(count)]
    args += ["--source", source, "--path", "/ok.txt", *extra]
    proc = lab.run("client", args, timeout=300)
    return json.loads(proc.stdout)


def _until(lab: Lab, done) -> dict:
    """zfw's status once ``done(status)`` holds (what the kernel accepted for zfw may
    still wait in its queue when the clients are done)."""
    for _ in range(300):
        status = _status(lab, "fair")
        if done(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"not reached: {status['sessions']}, {status['services']}")


def _quiet(lab: Lab) -> None:
    """Wait until the sessions of the test before are gone (closed by their clients)."""
    _until(lab, lambda s: s["sessions"]["running"] == 0)


@pytest.fixture(scope="module")
def fair_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("fair")
    (d / "www").mkdir()
    (d / "www" / "ok.txt").write_text("served\n")
    self_signed_cert(str(d), "allowed.example")
    lines = "        listen 80;\n        listen 8080;\n" + tls_server_lines(str(d), f"{d}/www")
    nginx = start_nginx(lab, str(d), lines, connections=4096)
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, FAIR_POLICY, "fair", "core.*:3") as z:
        yield lab, z


def test_500_connections_at_once_from_one_address_are_all_served(fair_lab):
    lab, _z = fair_lab
    got = _burst(lab, 80, 500, CLIENT4)
    assert got == {"ok": 500, "failed": 0, "errors": {}}
    web = _status(lab, "fair")["services"]["web"]
    assert web["sessions_total"] == 500
    assert web["refused"] == {"zone": 0, "limit": 0, "client": 0, "fair": 0, "proxy": 0}
    assert web["evicted"] == 0
    _quiet(lab)


def test_200_tls_handshakes_at_once_from_one_address_all_complete(fair_lab):
    """What the fixed defaults of before refused (100 new sessions a second a client)."""
    lab, _z = fair_lab
    got = _burst(lab, 443, 200, CLIENT4, "--tls", "allowed.example")
    assert got == {"ok": 200, "failed": 0, "errors": {}}
    tls = _status(lab, "fair")["services"]["tls"]
    assert tls["sessions_total"] == 200 and sum(tls["refused"].values()) == 0
    _quiet(lab)


def test_a_fixed_cap_per_address_is_honoured_exactly(fair_lab):
    lab, z = fair_lab
    got = _burst(lab, 8080, 60, CLIENT4)
    assert (got["ok"], got["failed"]) == (50, 10), got
    capped = _status(lab, "fair")["services"]["capped"]
    assert capped["sessions_total"] == 50 and capped["refused"]["client"] == 10
    assert z.wait_for(
        f"refused {CLIENT4} for service 'capped': 50 sessions of this address running "
        "(max_sessions_per_client)"
    )
    _quiet(lab)


def test_a_flood_from_one_address_leaves_room_for_a_burst_from_another(fair_lab):
    """2,000 slowloris connections from 192.0.2.2 fill the instance up to its headroom
    (900 of 1,000); 200 TLS handshakes at once from 192.0.2.130 all complete, each
    closing one of the flood's unfinished heads."""
    lab, z = fair_lab
    slow = subprocess.Popen(
        lab.tool("client", "slowloris", SERVER4, "80", "2000", "--source", CLIENT4),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert slow.stdout is not None
        opened = slow.stdout.readline()  # all 2,000 tried: held, or refused at once
        assert opened.startswith("open "), opened
        before = _until(lab, lambda s: s["services"]["web"]["refused"]["fair"] == 1100)
        assert before["sessions"]["running"] == 900, before["sessions"]
        got = _burst(lab, 443, 200, CLIENT4_OTHER, "--tls", "allowed.example")
        assert got == {"ok": 200, "failed": 0, "errors": {}}
        after = _status(lab, "fair")["services"]
        assert after["web"]["evicted"] - before["services"]["web"]["evicted"] == 200
        tls_before = before["services"]["tls"]["sessions_total"]  # (the tests before)
        assert after["tls"]["sessions_total"] - tls_before == 200
        assert after["tls"]["refused"]["fair"] == after["tls"]["refused"]["limit"] == 0
        line = z.wait_for("closed to make room: instance 'fair' is near its limit of 1000")
        assert line is not None
        assert f"{CLIENT4_OTHER} needs room" in line and "reading a request" in line
        refused = z.wait_for(f"refused {CLIENT4}:")
        assert (
            refused is not None
            and f"{CLIENT4} holds the most sessions (900) of instance 'fair'" in refused
        )
    finally:
        slow.kill()
        slow.wait()
