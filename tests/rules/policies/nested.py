from zfw.policy import *

# 10.0.0.0/8 > 10.0.0.0/16 > 10.0.0.25/32, each its own zone; the /16 is an
# admin child of the /8 and inherits its permissions, the /32 is an umbrella.
InetZone("big", "10.0.0.0/8", outbound_services=["web"], inbound_services=["ssh"])
InetZone("mid", "10.0.0.0/16", admin_parent="big", inbound_services=["web"])
InetZone("host", "10.0.0.25/32", admin_parent="mid", umbrella=True, outbound_services=["ssh"])
InetZone("world", "0.0.0.0/0", inbound_services=["web", "ssh"])
LocalService("snmp", [161, (8000, 8010)], zones=["big"], protocol="udp")


def fw():
    Service("web", HttpProxy)
    Service("ssh", PlugProxy)
    Service("admin", PlugProxy, router=DirectedRouter(SockAddrInet("10.0.0.25", 22)))
    Listener(SockAddrInet("", 50080), "web", intercept=[80, (8080, 8081)])
    Listener(SockAddrInet("10.0.0.1", 50022), "ssh", intercept=22)
    Listener(SockAddrInet("10.0.0.1", 2222), "admin", transparent=False)
