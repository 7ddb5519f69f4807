"""The control tests' policy (tests/e2e/test_control.py): HTTP and FTP in one instance."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


def ctl():
    Service("ctl_http", HttpProxy)
    Service("ctl_ftp", FtpProxy)
    Listener(SockAddrInet("", 50080), "ctl_http")
    Listener(SockAddrInet("", 50021), "ctl_ftp")
    # (the reload test adds a listener here)
