"""The nftables backend's lab policy (tests/e2e/test_rules_nft.py): HTTP, FTP, TLS and a
plug relay in one instance, and a second instance for the two-instance test."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("guest", "192.0.2.128/25")
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class Sni(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["allowed.example"]


def main():
    Service("web", HttpProxy)
    Service("files", FtpProxy)
    Service("tunnel", Sni)
    Service("whoami", PlugProxy)
    Listener(SockAddrInet("", 50080), "web")
    Listener(SockAddrInet("", 50021), "files")
    Listener(SockAddrInet("", 50443), "tunnel")
    Listener(SockAddrInet("", 50022), "whoami", intercept=22)


def second():
    Service("echo", PlugProxy)
    Listener(SockAddrInet("", 50007), "echo", intercept=7)
