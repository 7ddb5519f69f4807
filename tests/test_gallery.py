"""The gallery (policies/ and zones/): each policy is listed, written out by ``zfw
example``, passes ``zfw check``, and compiles to a packet filter for both backends.

What each promises is run in the lab by tests/e2e/test_gallery.py.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess

import pytest

from tests.gallery import NAMES, ROOT, write_example
from zfw.cli import DEFAULT_EXAMPLE, gallery_policies, main
from zfw.loader import load_policy
from zfw.rules import backends, nft
from zfw.rules.compiler import compile_policy
from zfw.rules.text import full_text

DOCUMENTATION = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
EVERYWHERE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
INCLUDE = re.compile(r'include_zones\("([^"]+)"\)')


def test_the_gallery_holds_the_deployments_and_the_cli_lists_them(capsys):
    assert {"minimal", "web_gateway", "dmz", "mail", "two_instances", DEFAULT_EXAMPLE} <= set(NAMES)
    assert list(gallery_policies()) == NAMES  # the package's view is the top-level folder
    assert main(["example", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    assert any(line.endswith("(the default)") and DEFAULT_EXAMPLE in line for line in lines)


@pytest.mark.parametrize("name", NAMES)
def test_each_policy_says_what_it_is_for_and_what_to_change_first(name):
    text = (ROOT / "policies" / f"{name}.py").read_text()
    doc = text.split('"""')[1]
    assert len(doc.splitlines()) > 3 and "What to change first" in doc


def test_every_zone_file_is_included_and_every_include_is_a_zone_file():
    included = set()
    for name in NAMES:
        for path in INCLUDE.findall((ROOT / "policies" / f"{name}.py").read_text()):
            assert path.startswith("../zones/"), (name, path)  # zfw example rewrites this form
            assert (ROOT / "policies" / path).is_file(), (name, path)
            included.add(path.removeprefix("../zones/"))
    assert included == {p.name for p in (ROOT / "zones").glob("*.py")}


@pytest.mark.parametrize("name", NAMES)
def test_written_out_it_passes_check_and_compiles_for_both_backends(name, tmp_path, capsys):
    policy = write_example(name, tmp_path)
    written = capsys.readouterr().out.split()
    assert str(policy) in written and all(str(tmp_path / "zones") in w for w in written[1:])
    assert main(["check", str(policy)]) == 0
    assert ": OK" in capsys.readouterr().out
    ruleset = compile_policy(load_policy(str(policy)))
    assert "TPROXY --on-port" in full_text(ruleset)
    script = nft.replace_script(nft.build(ruleset))
    assert "tproxy" in backends.Nft().text(ruleset)
    proc = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", "-"], input=script, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def _documentation(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return net in EVERYWHERE or any(
        net.version == d.version and net.subnet_of(d)  # type: ignore[arg-type]
        for d in DOCUMENTATION
    )


@pytest.mark.parametrize("name", NAMES)
def test_documentation_addresses_only(name, tmp_path):
    policy = load_policy(str(write_example(name, tmp_path)))
    networks = [n for z in policy.zones.zones.values() for n in z.networks]
    assert networks and all(_documentation(n) for n in networks), name
    # ... and every address the files name (listeners, routers, comments).
    text = "".join(p.read_text() for p in [tmp_path / "policy.py", *tmp_path.glob("zones/*.py")])
    for literal in re.findall(
        r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?|\b[0-9a-f]+:[0-9a-f:]+:[0-9a-f:/]*", text
    ):
        assert _documentation(ipaddress.ip_network(literal, strict=False)), (name, literal)
