"""FtpProxy with real programs: lftp and curl in the client, pyftpdlib in the server.

zfw runs under the packet filter that ``zfw rules`` compiles from the
policy (tests/e2e/policies/ftp.py), so the foreign-address data listeners
are reached through the generated rules. pyftpdlib itself refuses data
connections from an address other than the control connection's, and logs
the peer of every data connection.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

import pytest

from tests.e2e.helpers import big_file, curl, start_ftp_servers, zfw_in_front
from zfw.lab import CLIENT4, CLIENT4_OTHER, CLIENT6, FW_SERVER4, SERVER4, SERVER6, Lab
from zfw.lab.tools import pattern_block

HERE = os.path.dirname(__file__)
FTP_POLICY = os.path.join(HERE, "policies", "ftp.py")
FTP_CLIENT = os.path.join(HERE, "ftp_client.py")
SIZE = 100 * 2**20
PORTS = {"keep": 21, "passive": 2121, "active": 2122}
RO, OWN, HOSTILE = 2123, 2124, 2125
LIE = "203.0.113.9"


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def ftp_lab(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("ftp")
    root = d / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    (root / "hello.txt").write_text("hello through zfw\n")
    digest = big_file(root / "big.bin", SIZE, pattern_block())
    upload = d / "upload.bin"
    upload_digest = big_file(upload, SIZE, pattern_block()[::-1])
    servers = start_ftp_servers(lab, root, [*PORTS.values(), RO, OWN])
    hostile = lab.popen("server", [sys.executable, FTP_CLIENT, "hostile-server", "2125", LIE])
    assert hostile.stdout is not None and hostile.stdout.readline().strip() == "ready"
    with zfw_in_front(lab, [*servers, hostile], FTP_POLICY, "ftp", "ftp.*:4,core.*:3") as z:
        yield lab, z, d, digest, upload, upload_digest


def raw(lab: Lab, *args: str) -> str:
    proc = lab.run("client", [sys.executable, FTP_CLIENT, *args], check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("result: ")][-1][8:]


def server_log(d, port: int) -> list[str]:
    return (d / f"ftp{port}.log").read_text().splitlines()


@pytest.mark.parametrize("client_mode", ["passive", "active"])
@pytest.mark.parametrize("data_mode", list(PORTS))
def test_curl_100_mb_both_ways_in_every_mode(ftp_lab, client_mode, data_mode):
    """Download and upload 100 MB, client passive or active, server side per data_mode."""
    lab, z, d, digest, upload, upload_digest = ftp_lab
    port = PORTS[data_mode]
    active = ["--ftp-port", "-"] if client_mode == "active" else []
    out = d / f"down-{client_mode}-{data_mode}.bin"
    name = f"up-{client_mode}-{data_mode}.bin"
    proc = curl(lab, *active, "-o", str(out), f"ftp://{SERVER4}:{port}/big.bin")
    assert proc.returncode == 0, proc.stderr
    assert sha256_of(out) == digest
    out.unlink()
    proc = curl(
        lab, *active, "-u", "zfw:secret", "-T", str(upload), f"ftp://{SERVER4}:{port}/{name}"
    )
    assert proc.returncode == 0, proc.stderr
    assert sha256_of(d / "root" / name) == upload_digest
    (d / "root" / name).unlink()
    # The server saw the client's address on the control and on the data connections.
    log = server_log(d, port)
    data_lines = [ln for ln in log if "data connection from" in ln]
    assert data_lines and all(f"data connection from {CLIENT4}:" in ln for ln in data_lines)
    assert all(ln.split(" ")[2].startswith(f"{CLIENT4}:") for ln in log if "-[" in ln)
    assert z.wait_for("STOR " + name + " -> 226")


def test_lftp_active_and_passive_with_list(ftp_lab):
    lab, _z, d, digest, upload, upload_digest = ftp_lab
    for passive in ("on", "off"):
        out = d / f"lftp-{passive}.bin"
        script = (
            f"set ftp:passive-mode {passive}; set net:max-retries 1; set net:timeout 20; "
            f"ls; get big.bin -o {out}; put {upload} -o lftp-{passive}.bin; bye"
        )
        proc = lab.run(
            "client", ["lftp", "-u", "zfw,secret", "-e", script, SERVER4], check=False, timeout=180
        )
        assert proc.returncode == 0, proc.stderr
        assert "hello.txt" in proc.stdout and "big.bin" in proc.stdout
        assert sha256_of(out) == digest
        assert sha256_of(d / "root" / f"lftp-{passive}.bin") == upload_digest
        out.unlink()
        (d / "root" / f"lftp-{passive}.bin").unlink()


@pytest.mark.parametrize("port", [21, 2121, 2122])
@pytest.mark.parametrize("client_mode", ["passive", "active"])
def test_ipv6_epsv_and_eprt(ftp_lab, port, client_mode):
    lab, _z, d, *_ = ftp_lab
    active = ["--ftp-port", "-"] if client_mode == "active" else []
    proc = curl(lab, *active, "-g", f"ftp://[{SERVER6}]:{port}/hello.txt")
    assert proc.returncode == 0 and proc.stdout == "hello through zfw\n", proc.stderr
    data_lines = [ln for ln in server_log(d, port) if "data connection from" in ln]
    assert f"data connection from {CLIENT6}:" in data_lines[-1]


def test_the_client_sees_only_the_server_address(ftp_lab):
    """PASV names the server; an active data connection comes from the server's port 20."""
    lab, *_ = ftp_lab
    proc = curl(lab, "-v", "--disable-epsv", f"ftp://{SERVER4}/hello.txt")
    assert proc.returncode == 0
    assert "227 Entering Passive Mode (198,51,100,2," in proc.stderr
    result = raw(lab, "active", SERVER4, "21")
    assert result == f"peer={SERVER4}:20 data=b'hello through zfw\\n' final=226"


def test_without_forge_addr_the_server_sees_the_firewall(ftp_lab):
    lab, _z, d, *_ = ftp_lab
    for args in ([], ["--ftp-port", "-"]):
        proc = curl(lab, *args, f"ftp://{SERVER4}:{OWN}/hello.txt")
        assert proc.returncode == 0 and proc.stdout == "hello through zfw\n", proc.stderr
    data_lines = [ln for ln in server_log(d, OWN) if "data connection from" in ln]
    assert len(data_lines) == 2
    assert all(f"data connection from {FW_SERVER4}:" in ln for ln in data_lines)


def test_read_only_preset_rejects_stor(ftp_lab):
    lab, z, d, _digest, upload, _ = ftp_lab
    proc = curl(lab, "-u", "zfw:secret", "-T", str(upload), f"ftp://{SERVER4}:{RO}/ro.bin")
    assert proc.returncode == 25 and "550" in proc.stderr
    assert not (d / "root" / "ro.bin").exists()
    assert z.wait_for("STOR: rejected by policy (550)")
    proc = curl(lab, f"ftp://{SERVER4}:{RO}/hello.txt")
    assert proc.stdout == "hello through zfw\n"


def test_read_only_stays_read_only_for_lftp_without_super(ftp_lab):
    """The ftp_ro service is a subclass of FtpProxyRO whose config() forgets super()."""
    lab, z, d, digest, upload, _ = ftp_lab
    out = d / "lftp-ro-get.bin"
    script = (
        f"set net:max-retries 1; get big.bin -o {out}; "
        f"put {upload} -o lftp-ro.bin; rm hello.txt; mkdir lftp-ro-dir; bye"
    )
    proc = lab.run(
        "client",
        ["lftp", "-u", "zfw,secret", "-p", str(RO), "-e", script, SERVER4],
        check=False,
        timeout=180,
    )
    assert sha256_of(out) == digest  # reading works
    out.unlink()
    assert "550" in proc.stderr
    assert not (d / "root" / "lftp-ro.bin").exists()
    assert not (d / "root" / "lftp-ro-dir").exists()
    assert (d / "root" / "hello.txt").exists()
    assert z.wait_for("DELE: rejected by policy (550)")


def test_bounce_low_port_and_unknown_commands_are_refused(ftp_lab):
    lab, z, *_ = ftp_lab
    start = len(z.lines)
    assert raw(lab, "bounce", SERVER4, "21") == "500 500 500 500 200"
    assert z.wait_for("(FTP bounce): refused", start=start)
    assert z.wait_for("names port 80, below 1024: refused", start=start)
    assert [ln for ln in z.lines[start:] if "ftp.violation(1)" in ln]


def test_a_hostile_227_is_refused(ftp_lab):
    lab, z, *_ = ftp_lab
    start = len(z.lines)
    proc = curl(lab, "--disable-epsv", f"ftp://{SERVER4}:{HOSTILE}/x", timeout=20)
    assert proc.returncode != 0
    line = z.wait_for(f"names {LIE}, not the server's address {SERVER4}: refused", start=start)
    assert line and "ftp.violation(1)" in line


def test_port_theft_is_refused_and_the_client_still_gets_its_data(ftp_lab):
    lab, z, *_ = ftp_lab
    start = len(z.lines)
    result = raw(lab, "theft", SERVER4, "21", CLIENT4_OTHER)
    assert "data=b'hello through zfw\\n' final=226" in result
    assert "thief=connected" not in result and "thief=got data" not in result
    assert f"pasv={SERVER4}" in result
    assert z.wait_for(
        f"from {CLIENT4_OTHER}, expected {CLIENT4}: refused (port theft)", start=start
    )


def test_abor_during_a_download(ftp_lab):
    lab, _z, *_ = ftp_lab
    # 426 for RETR, then 226 (or 225: the data connection was already closed) for ABOR.
    assert raw(lab, "abort", SERVER4, "21") in ("426 226 noop=200", "426 225 noop=200")


def test_feat_is_filtered(ftp_lab):
    lab, *_ = ftp_lab
    features = raw(lab, "feat", SERVER4, "21").split(",")
    assert "MDTM" in features and "SIZE" in features
    assert "MFMT" not in features  # pyftpdlib offers it; not in the default feature list


def test_attacks_do_not_disturb_a_running_transfer(ftp_lab):
    lab, _z, d, digest, *_ = ftp_lab
    out = d / "undisturbed.bin"
    slow = lab.popen(
        "client",
        ["curl", "-sS", "--limit-rate", "50M", "-o", str(out), f"ftp://{SERVER4}/big.bin"],
    )
    time.sleep(0.5)
    raw(lab, "bounce", SERVER4, "21")
    raw(lab, "theft", SERVER4, "21", CLIENT4_OTHER)
    curl(lab, "--disable-epsv", f"ftp://{SERVER4}:{HOSTILE}/x", timeout=20)
    assert slow.wait(timeout=120) == 0
    assert sha256_of(out) == digest
