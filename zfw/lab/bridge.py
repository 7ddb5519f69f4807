"""The bridged lab: client and server in one subnet, the firewall a bridge between them.

::

    client 192.0.2.10/24            fw: br0 192.0.2.1/24           server 192.0.2.20/24
           2001:db8:1::10/64             2001:db8:1::1/64                 2001:db8:1::20/64
    [eth0] ---------------- [cl0] -- br0 -- [sv0] ---------------- [eth0]

The firewall does not forward (``ip_forward=0``: what no proxy takes goes nowhere)
and has br_netfilter's sysctls off; the bridge's MAC is fixed (:data:`BRIDGE_MAC`), as
a bridged policy names it.
"""

from __future__ import annotations

from zfw.lab import ROUTING, Lab, _run

BRIDGE = "br0"
BRIDGE_MAC = "02:00:00:00:00:01"
CLIENT_PORT, SERVER_PORT = "cl0", "sv0"
CLIENT4, SERVER4, FW4 = "192.0.2.10", "192.0.2.20", "192.0.2.1"
CLIENT6, SERVER6, FW6 = "2001:db8:1::10", "2001:db8:1::20", "2001:db8:1::1"
SYSCTLS = (
    "net.ipv4.ip_forward=0",
    "net.ipv6.conf.all.forwarding=0",
    # zfw's outgoing connections take ephemeral ports on the clients' addresses:
    # keep them below the listener ports (50000 and up) used in the lab.
    "net.ipv4.ip_local_port_range=10000 49999",
)
#: br_netfilter's, where its module is loaded (a namespace starts with them on).
BR_NETFILTER_OFF = (
    "net.bridge.bridge-nf-call-iptables=0",
    "net.bridge.bridge-nf-call-ip6tables=0",
    "net.bridge.bridge-nf-call-arptables=0",
)


class BridgeLab(Lab):
    """Namespaces ``NAME-client``, ``NAME-fw`` (bridging) and ``NAME-server``."""

    bridged = True

    def _create(self) -> None:
        c, f, s = self.ns["client"], self.ns["fw"], self.ns["server"]
        for ns in (c, f, s):
            _run(["ip", "netns", "add", ns])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "netns", "exec", f, "sysctl", "-q", "-w", *SYSCTLS])
        _run(["ip", "netns", "exec", f, "sysctl", "-q", "-e", "-w", *BR_NETFILTER_OFF])
        bridge = ["address", BRIDGE_MAC, "type", "bridge", "stp_state", "0", "forward_delay", "0"]
        _run(["ip", "-n", f, "link", "add", BRIDGE, *bridge])
        for dev, peer in ((CLIENT_PORT, c), (SERVER_PORT, s)):
            _run(["ip", "-n", f, "link", "add", dev, "type", "veth", "peer", "name", "eth0"])
            _run(["ip", "-n", f, "link", "set", "eth0", "netns", peer])
            _run(["ip", "-n", f, "link", "set", dev, "master", BRIDGE, "up"])
        for ns, dev, items in (
            (c, "eth0", (CLIENT4, CLIENT6)),
            (f, BRIDGE, (FW4, FW6)),
            (s, "eth0", (SERVER4, SERVER6)),
        ):
            for a in items:
                if ":" in a:
                    _run(["ip", "-n", ns, "addr", "add", f"{a}/64", "dev", dev, "nodad"])
                else:
                    _run(["ip", "-n", ns, "addr", "add", f"{a}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        self.routing(ROUTING)
