"""The TLS tunnel tests' policy: SNI allow and deny lists."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("guest", "192.0.2.128/25")
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class SniTunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["allowed.example", "*.allowed.example"]
        self.denied_names = ["bad.allowed.example"]


def tls():
    Service("tls", SniTunnel)
    Listener(SockAddrInet("", 50443), "tls")  # intercepts port 443, TlsTunnelProxy's default
