"""Bridge(): its values checked at load (``file:line: ...`` at ``zfw check``), the
compiled bridge part, the iptables backend's refusal and the kernel check at start."""

from __future__ import annotations

import ipaddress
import os

import pytest

from zfw.bridge import kernel_problem
from zfw.cli import main
from zfw.errors import ZfwError
from zfw.loader import load_policy
from zfw.model import Bridge as BridgeValue
from zfw.rules import backends, nftables
from zfw.rules.compiler import compile_policy
from zfw.rules.model import ruleset_from_data, ruleset_to_data

GOOD = """\
Bridge("br0", client_ports=["eth0"], server_ports=["eth1"], mac="02:00:00:00:00:01",
       addresses=["192.0.2.1/24"], bridge_traffic=["ping", "tcp/22", "udp/5000-5010"])
InetZone("lan", "192.0.2.0/25", outbound_services=["*"])
InetZone("srv", "192.0.2.128/25", inbound_services=["*"])

def i():
    Service("web", HttpProxy)
    Listener(SockAddrInet("", 50080), "web", intercept=80)
"""


def write(tmp_path, body: str) -> str:
    path = tmp_path / "policy.py"
    path.write_text("from zfw.policy import *\n" + body)
    return str(path)


def test_a_bridged_policy_compiles_to_a_bridge_part(tmp_path):
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.bridge is not None and str(policy.bridge.location).endswith(":2")
    ruleset = compile_policy(policy)
    assert ruleset.bridge is not None
    assert ruleset.bridge.allowed == (("ping", ""), ("tcp", "22"), ("udp", "5000:5010"))
    assert ruleset_from_data(ruleset_to_data(ruleset)) == ruleset
    text = backends.Nft().text(ruleset)
    assert "table bridge zfw {" in text and "udp dport 5000-5010 accept" in text
    with pytest.raises(ZfwError, match="bridged mode needs the nft backend"):
        backends.Iptables().apply(ruleset, None)
    if nftables.available():  # auto: only nft can load a bridged policy
        backend, why = backends.choose("auto", None, ruleset)
        assert (backend.name, why) == ("nft", "auto: the policy is bridged")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('mac="02:00:00:00:00:01"', 'mac="01:00:5e:00:00:01"'), "mac must be a unicast MAC"),
        (('["192.0.2.1/24"]', '["192.0.2.0/24"]'), "is not a host's address"),
        (('["192.0.2.1/24"]', '["192.0.2.1"]'), "addresses must be"),
        (('"udp/5000-5010"', '"udp/0"'), "not 'udp/0'"),
        (('server_ports=["eth1"]', 'server_ports=["eth0"]'), "eth0 is both a client and"),
        (('server_ports=["eth1"]', 'server_ports="eth1"'), "server_ports must be"),
        (('"br0"', '"a-very-long-bridge-name"'), "device must be a device name"),
    ],
)
def test_mistakes_are_one_line_at_check(tmp_path, capsys, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    assert main(["check", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{path}:2: ") and message in err, err
    assert "Traceback" not in err


def test_twice_is_refused(tmp_path, capsys):
    path = write(tmp_path, GOOD + GOOD.split("\n", 2)[0] + "\n" + GOOD.split("\n")[1] + "\n")
    assert main(["check", path]) == 2
    assert "Bridge() is given twice" in capsys.readouterr().err


def _sysfs(root, master="br0", mac="02:00:00:00:00:01", nf="0"):
    net = root / "sys" / "class" / "net"
    (net / "br0" / "bridge").mkdir(parents=True)
    (net / "br0" / "address").write_text(mac + "\n")
    for port in ("eth0", "eth1"):
        (net / port).mkdir()
        os.symlink(f"../{master}", net / port / "master")
    sysctl = root / "proc" / "sys" / "net" / "bridge"
    sysctl.mkdir(parents=True)
    for key in ("iptables", "ip6tables", "arptables"):
        (sysctl / f"bridge-nf-call-{key}").write_text(nf + "\n")


BRIDGE = BridgeValue("br0", ("eth0",), ("eth1",), "02:00:00:00:00:01", ("192.0.2.1/24",))


def test_the_kernel_check(tmp_path):
    assert "there is no bridge device br0" in kernel_problem(BRIDGE, str(tmp_path))
    _sysfs(tmp_path / "good")
    assert kernel_problem(BRIDGE, str(tmp_path / "good")) is None
    _sysfs(tmp_path / "nf", nf="1")
    assert "bridge-nf-call-iptables is 1" in kernel_problem(BRIDGE, str(tmp_path / "nf"))
    _sysfs(tmp_path / "mac", mac="02:00:00:00:00:02")
    assert "ip link set br0 address" in kernel_problem(BRIDGE, str(tmp_path / "mac"))
    _sysfs(tmp_path / "port", master="br9")
    assert "eth0 is not a port of it" in kernel_problem(BRIDGE, str(tmp_path / "port"))


def test_a_netlink_error_reading_the_addresses_is_one_line(tmp_path):
    from pyroute2 import NetlinkError

    def denied(dev: str) -> set:
        raise NetlinkError(1, "Operation not permitted")

    _sysfs(tmp_path)
    problem = kernel_problem(BRIDGE, str(tmp_path), addresses=denied)
    assert problem == "bridge br0: cannot read its addresses: (1, 'Operation not permitted')"
    got = {ipaddress.ip_interface("192.0.2.1/24")}
    assert kernel_problem(BRIDGE, str(tmp_path), addresses=lambda dev: got) is None
    assert "does not have its address 192.0.2.1/24" in kernel_problem(
        BRIDGE, str(tmp_path), addresses=lambda dev: set()
    )
