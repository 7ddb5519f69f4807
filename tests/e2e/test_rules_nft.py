"""The nftables backend in the lab: only zfw's nft table in the firewall namespace (the
legacy tables empty), real programs through it, and the apply path's guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import start_ftp_servers, stop_all
from tests.e2e.test_rules import reach, udp, udp_echo
from zfw.lab import CLIENT4, CLIENT4_OTHER, CLIENT6, SERVER4, SERVER6, Lab
from zfw.lab.servers import s_client, self_signed_cert, start_nginx, tls_server_lines

HERE = os.path.dirname(__file__)
POLICY = os.path.join(HERE, "policies", "nft.py")
ZFW = os.path.join(os.path.dirname(sys.executable), "zfw")


def zfw(lab: Lab, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [ZFW, "rules", *args, "--netns", lab.ns["fw"]],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def nft(lab: Lab, *args: str, check: bool = True) -> str:
    return lab.run("fw", ["nft", *args], check=check).stdout


EMPTY = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    "*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
)


def no_legacy_rules(lab: Lab) -> None:
    """Empty legacy tables (and no zfw nft table left): only what a test applies counts."""
    lab.tproxy({}, divert="none")
    lab.restore(EMPTY, EMPTY)


def legacy_is_empty(lab: Lab) -> bool:
    text = lab.run("fw", ["iptables-legacy-save"]).stdout
    text += lab.run("fw", ["ip6tables-legacy-save"]).stdout
    return not [ln for ln in text.splitlines() if ln.startswith("-A")]


@pytest.fixture(scope="module")
def nft_lab(lab: Lab, servers, tmp_path_factory):
    d = tmp_path_factory.mktemp("nft")
    (d / "www").mkdir()
    (d / "www" / "hello.txt").write_text("hello over nft\n")
    root = d / "ftp"
    root.mkdir()
    (root / "hello.txt").write_text("ftp over nft\n")
    self_signed_cert(str(d), "allowed.example")
    log = (
        f"    log_format peer '$remote_addr $request $status';\n    access_log {d}/access.log peer;"
    )
    plain = f"        listen 80;\n        listen [::]:80;\n        root {d}/www;\n    }}\n    server {{\n"
    nginx = start_nginx(lab, str(d), plain + tls_server_lines(str(d), f"{d}/www"), log)
    ftp = start_ftp_servers(lab, root, [21])
    time.sleep(0.5)
    no_legacy_rules(lab)
    zfw(lab, "apply", POLICY, "--backend", "nft")
    z = lab.start_zfw(POLICY, "main")
    try:
        yield lab, z, d
    finally:
        z.stop()
        stop_all([nginx, *ftp])
        lab.tproxy({}, divert="none")


def curl(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run("client", ["curl", "-sS", "--max-time", "20", *args], check=False)


def test_only_nft_is_loaded(nft_lab):
    lab, _z, _d = nft_lab
    assert legacy_is_empty(lab)
    text = nft(lab, "list", "table", "inet", "zfw")
    assert "type filter hook prerouting priority mangle" in text
    assert "tproxy ip to :50080" in text and "tproxy ip6 to :50080" in text
    assert "lookup 100" in lab.run("fw", ["ip", "rule"]).stdout
    assert zfw(lab, "diff", POLICY, "--backend", "nft").returncode == 0


def test_http_and_the_client_address_v4_and_v6(nft_lab):
    lab, _z, d = nft_lab
    for server, client in ((SERVER4, CLIENT4), (f"[{SERVER6}]", CLIENT6)):
        assert curl(lab, f"http://{server}/hello.txt").stdout == "hello over nft\n"
        assert (d / "access.log").read_text().splitlines()[-1].startswith(f"{client} GET")


@pytest.mark.parametrize("mode", ["passive", "active"])
def test_ftp_data_listeners_through_the_socket_match(nft_lab, mode):
    lab, _z, _d = nft_lab
    active = ["--ftp-port", "-"] if mode == "active" else []
    proc = curl(lab, *active, "-u", "zfw:secret", f"ftp://{SERVER4}/hello.txt")
    assert proc.returncode == 0 and proc.stdout == "ftp over nft\n", proc.stderr


def test_tls_tunnel_by_name(nft_lab):
    lab, _z, _d = nft_lab
    assert "CONNECTION ESTABLISHED" in s_client(lab, f"{SERVER4}:443", "allowed.example")
    assert "CONNECTION ESTABLISHED" not in s_client(lab, f"{SERVER4}:443", "other.example")


def test_ports_and_zones_not_permitted_are_dropped(nft_lab):
    lab, _z, _d = nft_lab
    assert reach(lab, 22).startswith(f"you are {CLIENT4} ")
    assert reach(lab, 7).startswith("blocked")  # only the second instance intercepts 7
    assert reach(lab, 25).startswith("blocked")  # no listener: forwarding is closed
    assert reach(lab, 22, CLIENT4_OTHER).startswith("blocked")  # the guest zone
    echo = [udp_echo(lab, server, 443, 4433) for server in (SERVER4, SERVER6)]
    try:
        for server in (SERVER4, SERVER6):  # QUIC refused at once, other UDP dropped
            assert udp(lab, server, 443) == "refused"
            assert udp(lab, server, 4433) == "silent"
    finally:
        stop_all(echo)


def test_nothing_is_forwarded_with_zfw_stopped(nft_lab):
    lab, z, _d = nft_lab
    z.stop()
    try:
        time.sleep(0.2)
        assert reach(lab, 22).startswith("blocked")
        assert curl(lab, "--max-time", "3", f"http://{SERVER4}/hello.txt").returncode != 0
    finally:
        new = lab.start_zfw(POLICY, "main")
        z.proc, z.lines, z._reader = new.proc, new.lines, new._reader
        z._cond = new._cond


def test_two_instances_keep_each_others_rules(nft_lab):
    lab, _z, _d = nft_lab
    second = lab.start_zfw(POLICY, "second")
    try:
        for backend in ("nft", "iptables"):
            no_legacy_rules(lab)
            for instance in ("main", "second"):  # applying for either keeps both
                zfw(lab, "apply", POLICY, "--instance", instance, "--backend", backend)
                assert reach(lab, 22).startswith(f"you are {CLIENT4} "), backend
                assert reach(lab, 7) == "hi", backend
    finally:
        second.stop()
        no_legacy_rules(lab)
        zfw(lab, "apply", POLICY, "--backend", "nft")


def test_try_without_confirmation_restores_the_table_and_routes(nft_lab, tmp_path):
    lab, _z, _d = nft_lab
    before = nft(lab, "list", "table", "inet", "zfw")
    other = tmp_path / "other.py"
    other.write_text(Path(POLICY).read_text().replace("intercept=22)", "intercept=2222)"))
    proc = zfw(
        lab,
        "try",
        str(other),
        "--backend",
        "nft",
        "--timeout",
        "1",
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3 and "restored" in proc.stderr
    assert nft(lab, "list", "table", "inet", "zfw") == before
    assert "lookup 100" in lab.run("fw", ["ip", "rule"]).stdout


def test_another_tools_table_is_left_alone_and_a_failed_apply_changes_nothing(nft_lab, tmp_path):
    lab, _z, _d = nft_lab
    lab.run(
        "fw",
        ["nft", "-f", "-"],
        input=(
            "table inet other {\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n"
            "\t\tip saddr 203.0.113.9 counter drop\n\t}\n}\n"
        ),
    )
    try:
        zfw(lab, "apply", POLICY, "--backend", "nft")
        assert "203.0.113.9" in nft(lab, "list", "table", "inet", "other")
        before = nft(lab, "list", "table", "inet", "zfw")
        zfw(lab, "flush", "--backend", "nft")  # no policy needed
        assert nft(lab, "list", "table", "inet", "zfw", check=False) == ""
        assert "203.0.113.9" in nft(lab, "list", "table", "inet", "other")
        zfw(lab, "apply", POLICY, "--backend", "nft")
        # A broken policy keeps the last good ruleset (the one applied before) in force.
        broken = tmp_path / "broken.py"
        broken.write_text("from zfw.policy import *\nInetZone('x', 'nonsense')\n")
        proc = zfw(lab, "apply", str(broken), "--backend", "nft", check=False)
        assert proc.returncode == 1 and "kept the last good ruleset" in proc.stderr
        assert nft(lab, "list", "table", "inet", "zfw") == before
        assert "203.0.113.9" in nft(lab, "list", "table", "inet", "other")
    finally:
        lab.run("fw", ["nft", "delete", "table", "inet", "other"], check=False)
        zfw(lab, "apply", POLICY, "--backend", "nft")


def test_flush_with_a_policy_that_no_longer_loads(nft_lab, tmp_path):
    lab, _z, _d = nft_lab
    broken = tmp_path / "broken.py"
    broken.write_text("from zfw.policy import *\nthis is not python\n")
    try:
        proc = zfw(lab, "flush", str(broken))  # auto: whatever zfw owns, in both backends
        assert "does not load" in proc.stderr
        assert nft(lab, "list", "table", "inet", "zfw", check=False) == ""
        assert legacy_is_empty(lab)
        assert "lookup 100" not in lab.run("fw", ["ip", "rule"]).stdout
    finally:
        zfw(lab, "apply", POLICY, "--backend", "nft")


def test_the_other_backends_leftovers_are_reported(nft_lab):
    lab, _z, _d = nft_lab
    zfw(lab, "apply", POLICY, "--backend", "iptables")  # as if left from before a switch
    try:
        proc = zfw(lab, "apply", POLICY, "--backend", "nft")
        assert "also loaded in the iptables backend" in proc.stderr
        proc = zfw(lab, "flush", "--backend", "iptables")
        assert "the routing stays" in proc.stderr  # nft's rules still need it
        assert legacy_is_empty(lab) and "lookup 100" in lab.run("fw", ["ip", "rule"]).stdout
    finally:
        no_legacy_rules(lab)
        zfw(lab, "apply", POLICY, "--backend", "nft")
