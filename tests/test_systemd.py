"""systemd: the notify protocol, the journal stream, and the unit files zfw ships."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from zfw import systemd
from zfw.cli import PACKAGE_DIR

UNITS = os.path.join(PACKAGE_DIR, "data", "systemd")


def test_notify_to_a_path(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path})
        assert s.recv(100) == b"READY=1"


def test_notify_to_the_abstract_namespace():
    name = f"zfw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        assert systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert s.recv(100) == b"STOPPING=1"


def test_notify_without_systemd_does_nothing(tmp_path):
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_reloading_state_has_the_monotonic_time():
    state = systemd.reloading_state()
    assert state.startswith("RELOADING=1\nMONOTONIC_USEC=")


def test_journal_stream_is_recognised(tmp_path):
    with open(tmp_path / "f", "w") as f:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert systemd.under_journal(f.fileno(), env)
        assert not systemd.under_journal(f.fileno(), {"JOURNAL_STREAM": "1:2"})
        assert not systemd.under_journal(f.fileno(), {})


def test_units_verify(tmp_path):
    """``systemd-analyze verify`` has no complaint (it prints them and exits 0)."""
    zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
    names = []
    for unit in os.listdir(UNITS):
        text = Path(UNITS, unit).read_text().replace("/usr/local/bin/zfw", zfw)
        name = "zfw@intra.service" if unit == "zfw@.service" else unit
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *names], capture_output=True, text=True, timeout=60
    )
    complaints = [ln for ln in (proc.stdout + proc.stderr).splitlines() if str(tmp_path) in ln]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


def test_the_instance_unit_asks_for_what_zfw_needs():
    text = Path(UNITS, "zfw@.service").read_text()
    assert "Type=notify" in text
    assert "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE" in text
    assert "User=zfw" in text and "LimitNOFILE=65536" in text
    assert "--instance %i" in text and "ExecReload=/usr/local/bin/zfw reload --instance %i" in text
    assert "RuntimeDirectory=zfw" in text  # /run/zfw, where the control socket is


def test_the_rules_unit_switches_forwarding_on_after_its_rules():
    """Forwarding comes from the unit, after an apply, never from an earlier sysctl file."""
    text = Path(UNITS, "zfw-rules.service").read_text()
    assert "ExecStart=/usr/local/bin/zfw rules apply --forwarding /etc/zfw/policy.py" in text
    assert "Before=network-pre.target" in text and "After=local-fs.target systemd-sysctl" in text
    assert "StateDirectory=zfw" in text  # /var/lib/zfw: the last good ruleset
    deployment = Path(PACKAGE_DIR).parent.joinpath("docs", "deployment.md").read_text()
    sysctl_file = deployment.split("`/etc/sysctl.d/zfw.conf`")[1].split("```ini")[1].split("```")[0]
    settings = [ln for ln in sysctl_file.splitlines() if ln and not ln.startswith("#")]
    assert settings and not [ln for ln in settings if "forward" in ln]
