"""The benchmark's policy: one PlugProxy service for port 80 of the lab's server."""

from zfw.policy import *

#: The load generator is one client address: the per-client limits would be measured,
#: not the proxy.
ONE_CLIENT = {"max_sessions_per_client": 100000, "max_new_sessions_per_client": 1e6}

InetZone("lan", ["192.0.2.0/24"], outbound_services=["bench"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["bench"])


def bench():
    InstanceOptions(max_sessions=100000)
    Service("bench", PlugProxy, max_sessions=100000, **ONE_CLIENT)
    Listener(SockAddrInet("", 50080), "bench", intercept=[80, 9])
