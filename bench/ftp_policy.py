"""The FTP benchmark's policy: FtpProxy for port 21 of the lab's server, and PlugProxy
for the HTTP download it is compared with."""

from zfw.policy import *

#: The load generator is one client address: the per-client limits would be measured,
#: not the proxy.
ONE_CLIENT = {"max_sessions_per_client": 100000, "max_new_sessions_per_client": 1e6}

InetZone("lan", ["192.0.2.0/24"], outbound_services=["ftp", "plug"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["ftp", "plug"])


def bench():
    Service("ftp", FtpProxy, max_sessions=100000, **ONE_CLIENT)
    Service("plug", PlugProxy, max_sessions=100000, **ONE_CLIENT)
    Listener(SockAddrInet("", 50021), "ftp")
    Listener(SockAddrInet("", 50080), "plug", intercept=8080)
