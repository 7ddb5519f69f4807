from zfw.policy import *

InetZone("z" * 26, ["192.0.2.0/24", "2001:db8::/32"], outbound_services=["p"])
InetZone("out", ["0.0.0.0/0", "::/0"], inbound_services=["p"])


def i():
    Service("p", PlugProxy)
    Listener(SockAddrInet("", 50000), "p", intercept=7)
