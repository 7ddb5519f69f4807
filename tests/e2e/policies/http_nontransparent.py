"""The non-transparent HTTP proxy tests' policy: clients configured to use zfw."""

from zfw.policy import *

InetZone(
    "lan",
    ["192.0.2.0/25", "2001:db8:1::/64"],
    outbound_services=["*"],
    inbound_services=["child", "childtls"],
)  # the child proxies reach their parent on 192.0.2.1
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])
InetZone("dmz", "203.0.113.0/24")  # no service may enter


class SniTunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["allowed.example"]


class WebProxy(HttpProxyNonTransparent):
    pass


class TlsCheckingProxy(HttpProxyNonTransparent):
    def config(self):
        self.connect_proxy = SniTunnel


class ChildProxy(HttpProxyNonTransparent):
    def config(self):
        self.parent_proxy = ("192.0.2.1", 3128)


class ChildTlsProxy(ChildProxy):
    def config(self):
        super().config()
        self.connect_proxy = SniTunnel  # decides by the hello, then asks the parent


def proxy():
    Service("web", WebProxy, router=InbandRouter(forge_addr=True))
    Service("tlsweb", TlsCheckingProxy, router=InbandRouter())
    Service("child", ChildProxy, router=InbandRouter())
    Listener(SockAddrInet("192.0.2.1", 3128), "web", transparent=False)
    Listener(SockAddrInet("", 3129), "tlsweb", transparent=False)
    Service("childtls", ChildTlsProxy, router=InbandRouter())
    Listener(SockAddrInet("192.0.2.1", 3130), "child", transparent=False)
    Listener(SockAddrInet("192.0.2.1", 3131), "childtls", transparent=False)
