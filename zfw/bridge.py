"""The bridged topology: what a ``Bridge()`` declaration's values must be, and what
the kernel must be like for it (checked at start).

The packet filter side is in :mod:`zfw.rules.compiler` (the compiled part) and
:mod:`zfw.rules.nftbridge` (``table bridge zfw``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable

from zfw.model import Bridge, BridgeTraffic, PortRange
from zfw.options import Kind

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
#: sysctls that hand bridged frames to iptables/ip6tables/arptables (br_netfilter).
BR_NETFILTER = (
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
)


def _ifname(v: object) -> bool:
    return isinstance(v, str) and bool(_IFNAME.match(v))


def ifname() -> Kind:
    """A network device name (up to 15 letters, digits, ``_.-``)."""
    return Kind("a device name (up to 15 characters)", _ifname)


def ifnames() -> Kind:
    """A non-empty list of device names."""

    def test(v: object) -> bool | str:
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
            return False
        bad = [x for x in v if not _ifname(x)]
        return f"not {bad[0]!r}" if bad else True

    return Kind("a non-empty list of device names", test)


def mac() -> Kind:
    """A unicast Ethernet address, ``02:00:00:00:00:01``."""
    return Kind(
        "a unicast MAC address such as '02:00:00:00:00:01'",
        lambda v: isinstance(v, str) and bool(_MAC.match(v.lower())) and not int(v[:2], 16) & 1,
    )


def _interface(v: object) -> bool | str:
    if not isinstance(v, str) or "/" not in v:
        return False
    try:
        iface = ipaddress.ip_interface(v)
    except ValueError:
        return False
    net = iface.network
    if net.num_addresses > 2 and iface.ip in (net.network_address, net.broadcast_address):
        return f"{v!r} is not a host's address in its network"
    return True


def interfaces() -> Kind:
    """A non-empty list of ``address/prefix`` (the bridge's own)."""

    def test(v: object) -> bool | str:
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
            return False
        for x in v:
            found = _interface(x)
            if found is not True:
                return found if isinstance(found, str) else f"not {x!r}"
        return True

    return Kind("a non-empty list of 'address/prefix'", test)


def parse_traffic(text: str) -> BridgeTraffic:
    """``ping``, ``icmp``, ``tcp/22``, ``udp/5000-5010``; ValueError if not one of them."""
    if text in ("ping", "icmp"):
        return BridgeTraffic(text)
    proto, sep, ports = text.partition("/")
    if proto not in ("tcp", "udp") or not sep:
        raise ValueError(text)
    low, _, high = ports.partition("-")
    if not (low.isdigit() and (high.isdigit() or not high)):
        raise ValueError(text)
    a, b = int(low), int(high or low)
    if not 1 <= a <= b <= 65535:
        raise ValueError(text)
    return BridgeTraffic(proto, (PortRange(a, b),))


def traffic() -> Kind:
    """A list of named traffic (:func:`parse_traffic`)."""

    def test(v: object) -> bool | str:
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            return False
        for x in v:
            try:
                parse_traffic(x)
            except (ValueError, TypeError, AttributeError):
                return f"not {x!r}"
        return True

    return Kind("a list of 'ping', 'icmp', 'tcp/PORT' or 'udp/PORT-PORT'", test)


# --- the kernel, at start ------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _addresses(dev: str) -> set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=dev)
        if not index:
            return set()
        return {
            ipaddress.ip_interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=index[0])
        }


def kernel_problem(
    bridge: Bridge,
    root: str = "/",
    addresses: Callable[[str], set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]
    | None = None,
) -> str | None:
    """What keeps this namespace from running ``bridge``, as one line, or None.

    Reads ``/sys/class/net`` and ``/proc/sys`` (of the namespace zfw runs in) and, with
    ``root`` ``/``, the device's addresses by netlink (or by ``addresses``, given)."""
    net = os.path.join(root, "sys/class/net")
    dev = bridge.device
    if not os.path.isdir(os.path.join(net, dev, "bridge")):
        return f"bridge {dev}: there is no bridge device {dev} (ip link add {dev} type bridge)"
    for port in bridge.ports:
        master = os.path.join(net, port, "master")
        if not os.path.islink(master) or os.path.basename(os.readlink(master)) != dev:
            return f"bridge {dev}: {port} is not a port of it (ip link set {port} master {dev})"
    have = (_read(os.path.join(net, dev, "address")) or "").lower()
    if have != bridge.mac.lower():
        return (
            f"bridge {dev}: its MAC address is {have or 'unknown'}, the policy says "
            f"{bridge.mac} (ip link set {dev} address {bridge.mac})"
        )
    if addresses is None and root == "/":
        addresses = _addresses
    if addresses is not None:
        try:
            have_addrs = addresses(dev)
        except Exception as e:  # pyroute2's NetlinkError, or OSError: one line, no traceback
            return f"bridge {dev}: cannot read its addresses: {e}"
        for want in bridge.addresses:
            if ipaddress.ip_interface(want) not in have_addrs:
                return (
                    f"bridge {dev}: it does not have its address {want} "
                    f"(ip addr add {want} dev {dev})"
                )
    proc = os.path.join(root, "proc/sys")
    for key in BR_NETFILTER:
        if _read(os.path.join(proc, key.replace(".", "/"))) == "1":
            return (
                f"bridge {dev}: {key} is 1: br_netfilter would hand bridged frames to "
                f"iptables and break interception (sysctl -w {key}=0)"
            )
    return None
