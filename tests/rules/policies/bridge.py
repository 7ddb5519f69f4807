"""A bridged firewall ("bump in the wire"): clients and servers stay in one subnet,
192.0.2.0/24 and 2001:db8:1::/64; the firewall bridges its two ports (eth0 towards
the clients, eth1 towards the servers) as br0, and its proxies still see every
connection and forge the clients' addresses. Use it with the nft backend
(``zfw rules apply --backend nft``); see docs/deployment.md, "Bridged mode".
"""

from zfw.policy import *

Bridge(
    "br0",
    client_ports=["eth0"],
    server_ports=["eth1"],
    mac="02:00:00:00:00:01",
    addresses=["192.0.2.1/24", "2001:db8:1::1/64"],
    bridge_traffic=["ping", "udp/53"],
)

InetZone("clients", ["192.0.2.0/25", "2001:db8:1::/112"], outbound_services=["*"])
InetZone("servers", ["192.0.2.128/25", "2001:db8:1::1:0/112"], inbound_services=["*"])

LocalService("fw_ssh", 22, zones=["clients"])


class Sni(TlsTunnelProxy):
    """TLS by server name; no name, no tunnel."""


def bridge():
    Service("web", HttpProxy)
    Service("files", FtpProxy)
    Service("tls", Sni)
    Listener(SockAddrInet("", 50080), "web", intercept=80)
    Listener(SockAddrInet("", 50021), "files", intercept=21)
    Listener(SockAddrInet("", 50443), "tls", intercept=443)
