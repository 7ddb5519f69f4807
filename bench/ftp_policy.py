"""The FTP benchmark's policy: FtpProxy for port 21 of the lab's server, and PlugProxy
for the HTTP download it is compared with."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/24"], outbound_services=["ftp", "plug"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["ftp", "plug"])


def bench():
    Service("ftp", FtpProxy)
    Service("plug", PlugProxy)
    Listener(SockAddrInet("", 50021), "ftp")
    Listener(SockAddrInet("", 50080), "plug", intercept=8080)
