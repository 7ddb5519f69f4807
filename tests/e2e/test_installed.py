"""The user's path: a wheel built from this checkout, installed with pip into a fresh
virtualenv outside it, runs the firewall (twistd -n zfw and zfw run) in the lab.

Every command here runs from the virtualenv with the working directory outside the
checkout, so nothing of the checkout can be imported by accident.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import zfw
from tests.gallery import NAMES, make_files
from zfw.lab import CLIENT4, SERVER4, Lab, ZfwProcess

CHECKOUT = Path(__file__).resolve().parents[2]

REACH = """
import socket, sys
s = socket.create_connection((sys.argv[1], 22), timeout=5)
s.sendall(b"hi\\n")
print(s.recv(100).decode().splitlines()[0])
"""


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    """The virtualenv with the built wheel installed (dependencies from the index)."""
    root = Path(tempfile.mkdtemp(prefix="zfw-user-", dir="/tmp"))
    try:
        dist = root / "dist"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "-w",
                str(dist),
                str(CHECKOUT),
            ],
            check=True,
            cwd=root,
            capture_output=True,
        )
        (wheel,) = glob.glob(str(dist / "zfw-*.whl"))
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, cwd=root)
        pip = root / "venv" / "bin" / "pip"
        proc = subprocess.run(
            [str(pip), "install", "-q", wheel], cwd=root, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        # Readable by the unprivileged user the service runs as (mkdtemp makes it 0700).
        for d, _dirs, _files in os.walk(root):
            os.chmod(d, 0o755)
        yield root / "venv"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(venv: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", venv.parent)
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, **kw
    )


def test_the_installed_commands(venv):
    where = run(venv, "python", "-c", "import zfw; print(zfw.__file__)").stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert run(venv, "zfw", "--version").stdout.strip() == f"zfw {zfw.__version__}"
    assert "zfw application-level proxy firewall" in run(venv, "twistd", "--help").stdout
    files = Path(run(venv, "zfw", "files").stdout.strip())
    assert (files / "systemd" / "zfw@.service").is_file()
    assert (files / "systemd" / "zfw-rules.service").is_file()
    etc = venv.parent / "etc"
    assert run(venv, "zfw", "example", str(etc)).returncode == 0
    check = run(venv, "zfw", "check", str(etc / "policy.py"))
    assert check.returncode == 0 and ": OK" in check.stdout, check.stderr
    license_text = run(
        venv,
        "python",
        "-c",
        "from importlib.metadata import distribution as d; "
        "print(d('zfw').read_text('licenses/LICENSE'))",
    ).stdout
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 2" in license_text


def test_the_installed_gallery(venv):
    listed = run(venv, "zfw", "example", "--list").stdout.splitlines()
    assert [line.split()[0] for line in listed] == NAMES  # all of policies/, from the wheel
    for name in NAMES:
        etc = venv.parent / "gallery" / name
        wrote = run(venv, "zfw", "example", name, str(etc))
        assert wrote.returncode == 0, wrote.stderr
        assert not (etc / "policy.py").is_symlink()
        make_files(name, etc)  # the CAs or the certificate its comment asks for
        check = run(venv, "zfw", "check", str(etc / "policy.py"))
        assert check.returncode == 0 and ": OK" in check.stdout, (name, check.stderr)


def test_installed_zfw_serves_in_the_lab(venv, lab: Lab, servers):
    etc = venv.parent / "etc"
    run(venv, "zfw", "example", str(etc), "--force")
    policy = str(etc / "policy.py")
    lab.tproxy({}, divert="none")
    rules = run(venv, "zfw", "rules", "apply", policy, "--netns", lab.ns["fw"])
    assert rules.returncode == 0, rules.stderr
    bin_dir = venv / "bin"
    run_dir = venv.parent / "run"
    run_dir.mkdir(exist_ok=True)
    os.chown(run_dir, 65534, 65534)  # the control socket's folder, as RuntimeDirectory= makes it
    control = ["--control-socket", str(run_dir / "intra.sock")]
    twistd = [str(bin_dir / "twistd"), "--nodaemon", "--pidfile=", "zfw"]
    commands = {
        "twistd -n zfw": [*twistd, "--policy", policy, "--instance", "intra", *control],
        # As the systemd unit runs it: an unprivileged user with only these capabilities.
        "zfw run as nobody": [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+net_admin,+net_raw,+net_bind_service",
            "--ambient-caps=+net_admin,+net_raw,+net_bind_service",
            str(bin_dir / "zfw"),
            "run",
            "--policy",
            policy,
            "--instance",
            "intra",
            *control,
        ],
    }
    try:
        for what, cmd in commands.items():
            z = ZfwProcess(lab.popen("fw", cmd, cwd=str(venv.parent)), 30)
            try:
                assert z.wait_for("listening on 0.0.0.0:50022"), what
                got = lab.run("client", ["python3", "-c", REACH, SERVER4]).stdout
                assert got.startswith(f"you are {CLIENT4} port "), (what, got)
                seen = servers["whoami"].stdout.readline()  # (read, or the next test sees it)
                assert seen.startswith(f"peer {CLIENT4} "), (what, seen)
                assert z.wait_for("plug.info(3)"), what
                assert not z.grep("Traceback"), what
                status = run(venv, "zfw", "status", "--socket", str(run_dir / "intra.sock"))
                assert "service intra_ssh: 0/1000 running, 1 total" in status.stdout, what
            finally:
                z.stop()
    finally:
        lab.tproxy({}, divert="none")
