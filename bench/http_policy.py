"""The HTTP benchmark's policy: port 80 of the lab's server through HttpProxy or PlugProxy."""

from zfw.policy import *

#: The load generator is one client address: the per-client limits would be measured,
#: not the proxy.
ONE_CLIENT = {"max_sessions_per_client": 100000, "max_new_sessions_per_client": 1e6}

InetZone("lan", ["192.0.2.0/24"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["*"])


def http():
    InstanceOptions(max_sessions=100000)
    Service("http", HttpProxy, max_sessions=100000, **ONE_CLIENT)
    Listener(SockAddrInet("", 50080), "http")


def plug():
    InstanceOptions(max_sessions=100000)
    Service("plug", PlugProxy, max_sessions=100000, **ONE_CLIENT)
    # The bench diverts port 80 to this listener by hand (lab.tproxy); in a packet filter
    # compiled from this policy it would take another port, as two may not share 80.
    Listener(SockAddrInet("", 50081), "plug", intercept=8080)
