"""The ``zfw check`` command."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from zfw.cli import main
from zfw.tls.certs import create_ca


def test_check_example_prints_summary(capsys):
    assert main(["check", "policies/three_zones.py"]) == 0
    out = capsys.readouterr().out
    assert "policy " in out and ": OK" in out
    assert "intranet: 192.0.2.0/24, 2001:db8:1::/64" in out
    assert "admin: 192.0.2.0/28, 2001:db8:1::/124  (parent intranet)" in out
    assert "listener *:50080 -> intra_http (transparent, intercepts 80)" in out
    assert "fw_ssh: tcp/22 from admin" in out
    assert "intranet -> internet: intra_ftp, intra_http, intra_proxy, intra_ssh, intra_tls" in out
    assert "internet -> dmz: dmz_ftp, dmz_http" in out


def test_check_one_instance_as_json(capsys):
    assert main(["check", "policies/three_zones.py", "--instance", "dmz", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["instances"]) == ["dmz"]
    assert data["instances"]["dmz"]["listeners"][0] == {
        "address": "*:51080",
        "service": "dmz_http",
        "transparent": True,
        "intercept": ["80"],
    }
    assert data["zones"]["admin"]["admin_parent"] == "intranet"
    assert {"from": "internet", "to": "dmz", "services": ["dmz_ftp", "dmz_http"]} in data[
        "permitted"
    ]


def test_typo_gives_one_line_and_nonzero_exit(write_policy):
    path = write_policy("InetZone('a', '10.0.0.0/8')\n\ndef i():\n    Servce('x', PlugProxy)\n")
    proc = subprocess.run(
        [sys.executable, "-m", "zfw.cli", "check", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"{path}:5: NameError: name 'Servce' is not defined\n"


def test_example_writes_the_default_with_its_zones_and_keeps_what_exists(tmp_path, capsys):
    assert main(["example", str(tmp_path)]) == 0
    written = capsys.readouterr()
    assert "\nWhat to change first: the networks\nin zones/three_zones.py" in written.err
    assert written.out.split() == [
        str(tmp_path / "policy.py"),
        str(tmp_path / "zones" / "three_zones.py"),
    ]
    # The gallery's ../zones/ is zones/ beside the written policy.
    assert 'include_zones("zones/three_zones.py")' in (tmp_path / "policy.py").read_text()
    assert main(["example", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == f"zfw: {tmp_path / 'policy.py'} exists (--force replaces it)\n"
    )
    assert main(["example", "minimal", str(tmp_path), "--force"]) == 0
    assert "intra_HTTP" in (tmp_path / "policy.py").read_text()


def test_example_mistakes_are_one_line(tmp_path, capsys):
    assert main(["example", "nonesuch", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zfw: example: no policy 'nonesuch' in the gallery (dmz, ")
    assert main(["example", "--list", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "zfw: example --list takes no NAME or DIR\n"
    assert main(["example"]) == 2
    assert "give DIR, or NAME DIR" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_check_json_stays_json_when_the_policy_prints(write_policy, capsys):
    path = write_policy(
        """
        print("hello from the policy")
        InetZone('lan', '192.0.2.0/24', outbound_services=['*'], inbound_services=['web'])

        def i():
            Service('web', PlugProxy)
            Service('lost', PlugProxy)
            Listener(SockAddrInet('', 40000), 'web', intercept=80)
            Listener(SockAddrInet('', 40001), 'lost', intercept=81)
        """
    )
    assert main(["check", str(path), "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert out.err == "hello from the policy\n"
    assert data["warnings"] == [
        f"{path}:8: service 'lost' is permitted into no zone (no inbound_services names it): "
        "it refuses every session"
    ]


@pytest.fixture
def etc():
    """A policy directory others may enter (pytest's tmp_path is 0700 root)."""
    root = tempfile.mkdtemp()
    os.chmod(root, 0o755)
    try:
        yield Path(root)
    finally:
        shutil.rmtree(root)


def _inspecting_policy(etc: Path, group: int | None) -> Path:
    create_ca(str(etc / "ca"), "zfw test CA", group=group)
    policy = etc / "policy.py"
    policy.write_text(
        "from zfw.policy import *\n"
        "from zfw.tls.encryption import *\n"
        "InetZone('lan', '192.0.2.0/24', outbound_services=['*'], inbound_services=['*'])\n"
        "def i():\n"
        "    ca = DynamicCertificate(trusted_ca=('ca/ca.pem', 'ca/ca.key'))\n"
        "    Service('s', HttpProxy, encryption=TwoSidedEncryption(ca))\n"
        "    Listener(SockAddrInet('', 50443), 's', intercept=443)\n"
    )
    os.chmod(policy, 0o644)
    return policy


def test_check_as_user_names_each_file_the_user_cannot_read(etc, capsys):
    policy = _inspecting_policy(etc, group=None)  # ca/ 0700, ca.key 0600, both root's
    assert main(["check", str(policy), "--as-user", "root"]) == 0
    capsys.readouterr()
    assert main(["check", str(policy), "--as-user", "nobody"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    owner = f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"
    why = f"({etc}/ca: mode 0700, owner {owner})"
    assert out.err.splitlines() == [
        f"{policy}:5: user nobody cannot read {etc}/ca/ca.pem {why}",
        f"{policy}:5: user nobody cannot read {etc}/ca/ca.key {why}",
    ]


def test_check_as_user_passes_with_the_keys_of_the_users_group(etc, capsys):
    nogroup = grp.getgrnam("nogroup").gr_gid  # nobody's group
    policy = _inspecting_policy(etc, group=nogroup)  # ca/ 0750, ca.key 0640
    assert main(["check", str(policy), "--as-user", "nobody"]) == 0
    os.chmod(etc / "ca" / "ca.key", 0o600)
    assert main(["check", str(policy), "--as-user", "nobody"]) == 2
    owner = f"{pwd.getpwuid(os.getuid()).pw_name}:nogroup"
    assert capsys.readouterr().err.endswith(
        f"{policy}:5: user nobody cannot read {etc}/ca/ca.key (mode 0600, owner {owner})\n"
    )
    os.chmod(policy, 0o600)
    assert main(["check", str(policy), "--as-user", "nobody"]) == 2
    assert f"{policy}: user nobody cannot read {policy} (mode 0600" in capsys.readouterr().err


def test_check_as_an_unknown_user_is_one_line(capsys):
    assert main(["check", "policies/three_zones.py", "--as-user", "zfw-no-such-user"]) == 2
    assert capsys.readouterr().err == "zfw: no user 'zfw-no-such-user'\n"
