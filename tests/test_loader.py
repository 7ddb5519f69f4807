"""Loading policy files: the Zorp reference policy, instances, and every error class."""

from __future__ import annotations

import attrs
import pytest

from zfw.addr import SockAddrInet
from zfw.errors import PolicyError
from zfw.loader import load_policy
from zfw.model import DirectedRouter, PortRange, TransparentRouter
from zfw.proxy.http import HttpProxy

ZORP_REFERENCE = """\
InetZone('intranet', '192.168.1.0/24', inbound_services=[], outbound_services=["*"])
InetZone('dmz', '10.0.0.0/24', inbound_services=[], outbound_services=[])
InetZone('internet', '0.0.0.0/0', inbound_services=['*'], outbound_services=[])

def intra():
    Service('intra_HTTP', HttpProxy)
    Listener(SockAddrInet('', 50080), 'intra_HTTP')
"""


def test_zorp_reference_policy(write_policy):
    policy = load_policy(str(write_policy(ZORP_REFERENCE)), "intra")
    assert [z.name for z in policy.zones] == ["intranet", "dmz", "internet"]
    svc = policy.instance.services["intra_HTTP"]
    assert svc.proxy_class is HttpProxy
    assert svc.router == TransparentRouter(forge_addr=True)
    (lst,) = policy.instance.listeners
    assert lst.address.host == "" and lst.address.port == 50080
    assert lst.transparent and lst.intercept == (PortRange(80, 80),)
    zones = policy.zones
    assert policy.permitted("intra_HTTP", zones.lookup("192.168.1.5"), zones.lookup("8.8.8.8"))
    assert not policy.permitted("intra_HTTP", zones.lookup("8.8.8.8"), zones.lookup("192.168.1.5"))


def test_policy_is_immutable_and_loads_are_independent(write_policy):
    path = str(write_policy(ZORP_REFERENCE))
    a = load_policy(path)
    b = load_policy(path)
    assert a is not b and a == b
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.instance_name = "x"
    with pytest.raises(TypeError):
        a.instances["new"] = None
    assert len(a.zones) == 3  # the second load did not add to the first


def test_declarations_outside_a_load_are_refused():
    from zfw.policy import InetZone

    with pytest.raises(PolicyError, match="only valid in a policy file"):
        InetZone("a", "10.0.0.0/8")


def test_instances_routers_and_options(write_policy):
    path = write_policy(
        """
        InetZone('lan', ['192.0.2.0/24', '2001:db8:1::/64'], outbound_services=['*'])
        InetZone('wan', ['0.0.0.0/0', '::/0'], inbound_services=['*'])
        LocalService('ssh', 22, zones=['lan'])
        PacketFilter(tproxy_mark=0x200, tproxy_mask=0xf00, route_table=42)

        def _helper(port):
            Listener(SockAddrInet('', port), 'plug', intercept=[7, (8000, 8080), '9000:9001'])

        def first():
            InstanceOptions(max_sessions=50, shutdown_grace=2, headroom=0.25, yield_idle=3)
            Service('plug', PlugProxy, max_sessions=5)
            Service('fixed', PlugProxy, router=DirectedRouter(SockAddrInet('198.51.100.2', 7)))
            _helper(40000)
            Listener(SockAddrInet('192.0.2.1', 40001), 'fixed', transparent=False)

        def second(unused=None):
            Service('web', HttpProxy, router=TransparentRouter(forced_port=8080))
            Listener(SockAddrInet('::1', 40002), 'web', intercept=80)
        """
    )
    policy = load_policy(str(path), "first")
    assert sorted(policy.instances) == ["first", "second"]
    first = policy.instance
    assert first.options.max_sessions == 50 and first.options.shutdown_grace == 2.0
    assert first.options.headroom == 0.25 and first.options.yield_idle == 3.0
    assert first.services["plug"].max_new_sessions_per_client is None  # no fixed cap
    assert first.services["plug"].max_sessions == 5
    assert first.services["fixed"].router == DirectedRouter(SockAddrInet("198.51.100.2", 7))
    assert first.listeners[0].intercept == (
        PortRange(7, 7),
        PortRange(8000, 8080),
        PortRange(9000, 9001),
    )
    assert first.listeners[1].transparent is False and first.listeners[1].intercept == ()
    assert policy.instances["second"].services["web"].router.forced_port == 8080
    assert policy.local_services[0].zones == ("lan",)
    assert policy.packet_filter.tproxy_mark == 0x200 and policy.packet_filter.route_table == 42
    assert policy.warnings == ()


def test_include_zones_relative_to_the_including_file(write_policy):
    write_policy("InetZone('lan', '192.0.2.0/24', outbound_services=['p'])\n", name="zones/lan.py")
    path = write_policy(
        """
        include_zones('../zones/lan.py')
        InetZone('wan', '0.0.0.0/0', inbound_services=['p'])

        def i():
            Service('p', PlugProxy)
            Listener(SockAddrInet('', 40000), 'p', intercept=7)
        """,
        name="policies/p.py",
    )
    policy = load_policy(str(path))
    assert [z.name for z in policy.zones] == ["lan", "wan"]
    assert str(policy.zones["lan"].location).endswith("zones/lan.py:2")


def test_example_policy_loads():
    policy = load_policy("policies/three_zones.py", "intra")
    assert policy.zones.lookup("192.0.2.2").name == "admin"
    assert policy.zones.lookup("192.0.2.200").name == "intranet"
    assert policy.zones.lookup("198.51.100.2").name == "internet"
    assert policy.permitted("intra_ssh", policy.zones["admin"], policy.zones["internet"])
    assert not policy.permitted("intra_ssh", policy.zones["internet"], policy.zones["admin"])


def test_warning_for_a_transparent_listener_that_intercepts_nothing(write_policy):
    path = write_policy(
        """
        def i():
            Service('p', PlugProxy)
            Listener(SockAddrInet('', 40000), 'p')
        """
    )
    (w,) = load_policy(str(path)).warnings
    assert "intercepts no port" in w and ":5:" in w


# --- every error names the file and the line ----------------------------------------------

ERRORS = [
    ("syntax", "InetZone('a', '10.0.0.0/8'\n", 2, "syntax error"),
    ("typo in a name", "def i():\n    Service('x', HttpProxi)\n", 3, "NameError: name 'HttpProxi'"),
    ("bad CIDR", "InetZone('a', '10.0.0.300/8')\n", 2, "bad CIDR '10.0.0.300/8'"),
    ("host bits", "InetZone('a', '10.0.0.1/8')\n", 2, "has host bits set"),
    ("no address", "InetZone('a', [])\n", 2, "at least one address"),
    (
        "zone twice",
        "InetZone('a', '10.0.0.0/8')\nInetZone('a', '11.0.0.0/8')\n",
        3,
        "zone 'a' is declared twice",
    ),
    (
        "same CIDR",
        "InetZone('a', '10.0.0.0/8')\nInetZone('b', '10.0.0.0/8')\n",
        3,
        "10.0.0.0/8 is in zone 'a' and zone 'b'",
    ),
    (
        "unknown parent",
        "InetZone('a', '10.0.0.0/8', admin_parent='x')\n",
        2,
        "unknown admin_parent 'x'",
    ),
    (
        "cycle",
        "InetZone('a', '10.0.0.0/8', admin_parent='b')\n"
        "InetZone('b', '11.0.0.0/8', admin_parent='a')\n",
        2,
        "admin_parent cycle",
    ),
    ("long zone name", f"InetZone('{'z' * 27}', '10.0.0.0/8')\n", 2, "at most 26 fit"),
    ("bad zone name", "InetZone('has space', '10.0.0.0/8')\n", 2, "becomes an iptables chain"),
    (
        "unknown service in zone",
        "InetZone('a', '10.0.0.0/8', outbound_services=['nope'])\n",
        2,
        "zone 'a' names unknown service 'nope'",
    ),
    (
        "listener to missing service",
        "def i():\n    Service('p', PlugProxy)\n    Listener(SockAddrInet('', 1234), 'q', intercept=7)\n",
        4,
        "names unknown service 'q'",
    ),
    (
        "service twice",
        "def i():\n    Service('p', PlugProxy)\n    Service('p', PlugProxy)\n",
        4,
        "service 'p' is declared twice",
    ),
    (
        "service in two instances",
        "def i():\n    Service('p', PlugProxy)\ndef j():\n    Service('p', PlugProxy)\n",
        5,
        "service 'p' is declared twice",
    ),
    (
        "listener twice",
        "def i():\n    Service('p', PlugProxy)\n    Listener(SockAddrInet('', 1234), 'p', intercept=7)\n"
        "    Listener(SockAddrInet('0.0.0.0', 1234), 'p', intercept=8)\n",
        5,
        "clashes with",
    ),
    ("not a proxy", "def i():\n    Service('p', int)\n", 3, "is not a proxy class"),
    ("bad router", "def i():\n    Service('p', PlugProxy, router=1)\n", 3, "router must be"),
    (
        "bad address",
        "def i():\n    Listener(SockAddrInet('nohost', 1), 'p')\n",
        3,
        "'nohost' is not an IP address",
    ),
    ("bad port", "def i():\n    Listener(SockAddrInet('', 70000), 'p')\n", 3, "port 70000"),
    (
        "bad intercept",
        "def i():\n    Service('p', PlugProxy)\n"
        "    Listener(SockAddrInet('', 1), 'p', intercept='9:1')\n",
        4,
        "not a port range",
    ),
    ("service at module level", "Service('p', PlugProxy)\n", 2, "belongs inside an instance"),
    (
        "zone inside instance",
        "def i():\n    InetZone('a', '10.0.0.0/8')\n",
        3,
        "belongs at module level",
    ),
    ("unknown local zone", "LocalService('ssh', 22, zones=['nope'])\n", 2, "unknown zone 'nope'"),
    ("bad mark", "PacketFilter(tproxy_mark=0x3, tproxy_mask=0x1)\n", 2, "outside tproxy_mask"),
    ("bad quic", "PacketFilter(quic='allow')\n", 2, "quic must be 'reject' or 'drop'"),
    ("exception in policy code", "x = 1 / 0\n", 2, "ZeroDivisionError"),
    (
        "wrong keyword",
        "InetZone('a', '10.0.0.0/8', outbond_services=[])\n",
        2,
        "unexpected keyword argument 'outbond_services'",
    ),
    ("include missing", "include_zones('nope.py')\n", 2, "no such file"),
    (
        "service and local service",
        "LocalService('p', 22, zones=['a'])\nInetZone('a', '10.0.0.0/8')\n"
        "def i():\n    Service('p', PlugProxy)\n",
        2,
        "'p' is both a service and a local service",
    ),
]


@pytest.mark.parametrize(("case", "body", "line", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_file_and_line(write_policy, case, body, line, message):
    path = write_policy(body)
    with pytest.raises(PolicyError) as info:
        load_policy(str(path))
    err = info.value
    assert err.filename == str(path), case
    assert err.lineno == line, str(err)
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: ")
    assert "\n" not in str(err)


def test_error_in_an_included_file_names_that_file(write_policy):
    zones = write_policy("InetZone('a', '10.0.0.0/33')\n", name="zones/bad.py")
    path = write_policy("include_zones('zones/bad.py')\n")
    with pytest.raises(PolicyError) as info:
        load_policy(str(path))
    assert info.value.filename == str(zones) and info.value.lineno == 2


def test_unknown_instance(write_policy):
    path = write_policy("def a():\n    pass\n")
    with pytest.raises(PolicyError, match=r"unknown instance 'b' \(instances: a\)"):
        load_policy(str(path), "b")


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(str(tmp_path / "none.py"))


def test_what_the_policy_prints_goes_to_output_with_its_line(write_policy, capsys):
    path = write_policy(
        """
        print("zones", "loaded")

        def i():
            print("instance", end=" ")
            print("i")
            Service('p', PlugProxy, router=DirectedRouter(SockAddrInet('192.0.2.1', 7)))
            Listener(SockAddrInet('127.0.0.1', 40000), 'p', transparent=False)
        """
    )
    got = []
    load_policy(str(path), output=lambda where, line: got.append((str(where), line)))
    assert got == [(f"{path}:3", "zones loaded"), (f"{path}:7", "instance i")]
    assert capsys.readouterr().out == ""
    load_policy(str(path))  # by default to standard error, never standard output
    out = capsys.readouterr()
    assert out.out == "" and out.err == "zones loaded\ninstance i\n"


def _ca(directory):
    from zfw.tls.certs import create_ca

    return create_ca(str(directory), "zfw test CA")


def test_relative_paths_start_from_the_policy_files_directory(tmp_path, monkeypatch):
    _ca(tmp_path / "etc" / "ca")
    policy = tmp_path / "etc" / "policy.py"
    policy.write_text(
        "from zfw.policy import *\n"
        "from zfw.tls.encryption import *\n"
        "CERTS = DynamicCertificate(trusted_ca=('ca/ca.pem', 'ca/ca.key'),\n"
        "                           cache_directory='leaves')\n"
        "def i():\n"
        "    Service('s', HttpProxy, encryption=TwoSidedEncryption(CERTS))\n"
        "    Listener(SockAddrInet('', 50443), 's', intercept=443)\n"
    )
    monkeypatch.chdir(tmp_path)  # not the policy's directory
    loaded = load_policy(str(policy))
    etc = str(tmp_path / "etc")
    assert [(f.path, f.need, str(f.location)) for f in loaded.named_files] == [
        (f"{etc}/ca/ca.pem", "read", f"{policy}:3"),
        (f"{etc}/ca/ca.key", "read", f"{policy}:3"),
        (f"{etc}/leaves", "write", f"{policy}:3"),
    ]
    assert (tmp_path / "etc" / "leaves" / "leaf.key").exists()
    assert not (tmp_path / "leaves").exists()


def test_a_service_no_zone_permits_is_a_warning_with_its_line(write_policy):
    path = write_policy(
        """
        InetZone('lan', '192.0.2.0/24', outbound_services=['web'])
        InetZone('net', '0.0.0.0/0', inbound_services=['web'])

        def i():
            Service('web', PlugProxy)
            Service('forgotten', PlugProxy)
            Listener(SockAddrInet('', 40000), 'web', intercept=80)
            Listener(SockAddrInet('', 40001), 'forgotten', intercept=81)
        """
    )
    assert load_policy(str(path)).warnings == (
        f"{path}:8: service 'forgotten' is permitted out of no zone (no outbound_services "
        "names it): it refuses every session",
    )
    path.write_text(
        path.read_text().replace("outbound_services=['web']", "outbound_services=['*']")
    )
    (w,) = load_policy(str(path)).warnings
    assert w.startswith(f"{path}:8: service 'forgotten' is permitted into no zone (no inbound_")


def test_the_example_in_docs_policy_md_is_the_shipped_one():
    from pathlib import Path

    root = Path(__file__).parent.parent
    docs = (root / "docs" / "policy.md").read_text()
    block = docs.split("## The gallery", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    shipped = (root / "policies" / "three_zones.py").read_text()
    assert block == shipped[shipped.index("from zfw.policy import *") :]
