"""Closed at boot: ``zfw rules apply`` with a policy that does not load leaves a firewall
that forwards (``ip_forward`` on) forwarding nothing, with either backend; the last good
ruleset stays in force where there is one. Real programs: curl to nginx, socat."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import stop_all
from zfw.lab import CLIENT4, FW_CLIENT4, SERVER4, SERVER6, Lab
from zfw.lab.servers import start_nginx

HERE = os.path.dirname(__file__)
GOOD = Path(HERE, "policies", "boot.py").read_text()
# A slip of the kind that stops the policy loading: a zone's network is no CIDR.
BROKEN = GOOD.replace('"192.0.2.0/25"', '"192.0.2.0/255"')
BROKEN_LINE = next(i for i, ln in enumerate(BROKEN.splitlines(), 1) if "/255" in ln)
ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")
FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
BACKENDS = ["nft", "iptables"]


def socat_server(lab: Lab, node: str, listen: str, reply: str) -> subprocess.Popen[str]:
    """socat answering ``reply`` on each connection, once it listens."""
    proc = lab.popen(
        node, ["socat", "-d", "-d", listen, f"SYSTEM:echo {reply}"], stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            return proc
    raise AssertionError(f"socat {listen} did not start")


@pytest.fixture(scope="module")
def boot_lab(lab: Lab, tmp_path_factory) -> Iterator[tuple[Lab, Path]]:
    """nginx (port 80) and socat (port 25) in the server; socat on the firewall's own
    address (port 2222), standing in for its SSH."""
    d = tmp_path_factory.mktemp("boot")
    (d / "www").mkdir()
    (d / "www" / "hello.txt").write_text("hello\n")
    log = (
        f"    log_format peer '$remote_addr $request $status';\n    access_log {d}/access.log peer;"
    )
    nginx = start_nginx(
        lab, str(d), f"        listen 80;\n        listen [::]:80;\n        root {d}/www;", log
    )
    smtp = socat_server(lab, "server", "TCP6-LISTEN:25,fork,reuseaddr,ipv6only=0", "smtp")
    ssh = socat_server(lab, "fw", f"TCP-LISTEN:2222,bind={FW_CLIENT4},fork,reuseaddr", "fw")
    lab.tproxy({}, divert="none")
    try:
        yield lab, d
    finally:
        stop_all([nginx, smtp, ssh])
        lab.tproxy({}, divert="none")


def http(lab: Lab, server: str) -> str:
    """The page from the client, or ``failed``."""
    proc = lab.run(
        "client",
        ["curl", "-sS", "-g", "--max-time", "3", f"http://{server}/hello.txt"],
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else "failed"


def tcp(lab: Lab, address: str, port: int) -> str:
    """What socat in the client gets from ``address:port``, or ``failed``."""
    proc = lab.run(
        "client",
        ["socat", "-T", "5", "-", f"TCP:{address}:{port},connect-timeout=3"],
        input="",
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "failed"


def apply(lab: Lab, policy: Path, backend: str, state: Path, *extra: str, **kw):
    return subprocess.run(
        [
            ZFW,
            "rules",
            "apply",
            str(policy),
            "--netns",
            lab.ns["fw"],
            "--backend",
            backend,
            "--state-dir",
            str(state),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def forwarding(lab: Lab) -> list[str]:
    return lab.run("fw", ["sysctl", "-n", *FORWARDING]).stdout.split()


def reset(lab: Lab) -> None:
    """No rules of zfw's in either backend; forwarding on (as the lab makes it)."""
    lab.tproxy({}, divert="none")
    lab.run("fw", ["sysctl", "-q", "-w", *(f"{k}=1" for k in FORWARDING)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_last_good_ruleset_the_closed_one_then_the_mended_policy(boot_lab, backend, tmp_path):
    lab, d = boot_lab
    state, policy = tmp_path / "state", tmp_path / "policy.py"
    reset(lab)
    # The danger: forwarding on and no rules loaded forwards everything.
    assert forwarding(lab) == ["1", "1"]
    assert http(lab, SERVER4) == "hello\n" and tcp(lab, SERVER4, 25) == "smtp"
    policy.write_text(BROKEN)
    try:
        proc = apply(lab, policy, backend, state)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"zfw rules apply: {policy}:{BROKEN_LINE}: ")
        assert "applied the closed ruleset: nothing is forwarded" in proc.stderr
        assert not state.exists()  # nothing good to record
        for server in (SERVER4, f"[{SERVER6}]"):
            assert http(lab, server) == "failed"
        assert tcp(lab, SERVER4, 25) == "failed" and tcp(lab, f"[{SERVER6}]", 25) == "failed"
        assert tcp(lab, FW_CLIENT4, 2222) == "fw"  # the host's own traffic: untouched

        # Booting with forwarding off: --forwarding turns it on once zfw's rules are in.
        lab.run("fw", ["sysctl", "-q", "-w", *(f"{k}=0" for k in FORWARDING)])
        proc = apply(lab, policy, backend, state, "--forwarding")
        assert proc.returncode == 1 and "kept zfw's rules loaded now" in proc.stderr  # closed
        assert forwarding(lab) == ["1", "1"]
        assert http(lab, SERVER4) == "failed" and tcp(lab, SERVER4, 25) == "failed"

        policy.write_text(GOOD)  # mended
        proc = apply(lab, policy, backend, state, "--forwarding")
        assert proc.returncode == 0 and proc.stdout == f"rules applied ({backend})\n"
        assert (state / f"last-good-{lab.ns['fw']}.json").stat().st_mode & 0o777 == 0o600
        z = lab.start_zfw(str(policy), "web")
        try:
            assert http(lab, SERVER4) == "hello\n"
            assert z.wait_for("http.request")  # through zfw ...
            last = (d / "access.log").read_text().splitlines()[-1]
            assert last.startswith(f"{CLIENT4} GET")  # ... from the client's own address
            assert tcp(lab, SERVER4, 25) == "failed"  # still: nothing else forwarded
        finally:
            z.stop()
    finally:
        reset(lab)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_last_good_ruleset_stays_in_force(boot_lab, backend, tmp_path):
    lab, _d = boot_lab
    state, policy = tmp_path / "state", tmp_path / "policy.py"
    reset(lab)
    policy.write_text(GOOD)
    try:
        assert apply(lab, policy, backend, state).returncode == 0
        z = lab.start_zfw(str(policy), "web")
        try:
            assert http(lab, SERVER4) == "hello\n"
            policy.write_text(BROKEN)
            proc = apply(lab, policy, backend, state)
            assert proc.returncode == 1, proc.stderr
            assert proc.stderr.startswith(f"zfw rules apply: {policy}:{BROKEN_LINE}: ")
            assert "kept the last good ruleset of " in proc.stderr
            assert proc.stderr.count("\n") == 1
            assert http(lab, SERVER4) == "hello\n" and http(lab, f"[{SERVER6}]") == "hello\n"
            assert tcp(lab, SERVER4, 25) == "failed"
            # Rules loaded with no record of them (zfw run --apply-rules): they stay.
            proc = apply(lab, policy, backend, tmp_path / "empty")
            assert proc.returncode == 1 and "kept zfw's rules loaded now" in proc.stderr
            assert http(lab, SERVER4) == "hello\n" and tcp(lab, SERVER4, 25) == "failed"
            # As at boot: the rules are gone (flushed), the last good record is not.
            flushed = subprocess.run(
                [ZFW, "rules", "flush", "--netns", lab.ns["fw"], "--backend", backend],
                capture_output=True,
                text=True,
            )
            assert flushed.returncode == 0, flushed.stderr
            assert tcp(lab, SERVER4, 25) == "smtp"  # forwarding on, no rules: open
            proc = apply(lab, policy, backend, state)
            assert proc.returncode == 1 and "kept the last good ruleset" in proc.stderr
            assert http(lab, SERVER4) == "hello\n" and tcp(lab, SERVER4, 25) == "failed"
        finally:
            z.stop()
    finally:
        reset(lab)


def test_with_no_rules_loadable_forwarding_is_switched_off(boot_lab, tmp_path):
    """The backend cannot load even the closed ruleset (here: no nft command)."""
    lab, _d = boot_lab
    bin_dir = tmp_path / "bin"  # ip and sysctl, but no nft
    bin_dir.mkdir()
    for tool in ("ip", "sysctl"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    policy = tmp_path / "policy.py"
    policy.write_text(GOOD)
    reset(lab)
    try:
        env = {**os.environ, "PATH": str(bin_dir)}
        proc = apply(lab, policy, "nft", tmp_path / "state", "--forwarding", env=env)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("zfw rules apply: applying the rules failed: ")
        assert "the closed ruleset failed too" in proc.stderr
        assert proc.stderr.endswith("no rules of zfw's could be loaded: forwarding switched off\n")
        assert forwarding(lab) == ["0", "0"]
        assert http(lab, SERVER4) == "failed" and tcp(lab, SERVER4, 25) == "failed"
    finally:
        reset(lab)
