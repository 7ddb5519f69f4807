"""The ``zfw check`` command."""

from __future__ import annotations

import json
import subprocess
import sys

from zfw.cli import main


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
