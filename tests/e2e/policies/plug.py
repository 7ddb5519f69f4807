"""The end-to-end tests' policy: PlugProxy services between the lab's hosts."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("guest", "192.0.2.128/25")  # may not go anywhere
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class QuickPlug(PlugProxy):
    def config(self):
        self.timeout = 1


def lab():
    InstanceOptions(headroom=0)  # one address may fill a service; at the limit it yields
    Service("whoami", PlugProxy)
    Service("echo", PlugProxy, max_sessions=500)
    Service("sink", PlugProxy)
    Service("quick", QuickPlug)
    Listener(SockAddrInet("", 50022), "whoami", intercept=22)
    Listener(SockAddrInet("", 50007), "echo", intercept=7)
    Listener(SockAddrInet("", 50009), "sink", intercept=9)
    Listener(SockAddrInet("", 50013), "quick", intercept=13)
    # For NAT REDIRECT setups: port 23 redirected here by hand, relayed to port 22.
    Service("redir", PlugProxy, router=TransparentRouter(forced_port=22))
    Listener(SockAddrInet("", 50023), "redir", redirect=True)
