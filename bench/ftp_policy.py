"""The FTP benchmark's policy: FtpProxy for port 21 of the lab's server."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/24"], outbound_services=["ftp"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["ftp"])


def bench():
    Service("ftp", FtpProxy)
    Listener(SockAddrInet("", 50021), "ftp")
