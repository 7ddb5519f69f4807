from zfw.policy import *

PacketFilter(tproxy_mark=0x40000, tproxy_mask=0xF0000, route_table=42, log_prefix="fw6")
InetZone("lan6", "2001:db8:1::/64", outbound_services=["*"])
InetZone("net6", "::/0", inbound_services=["tls"])


def six():
    Service("tls", TlsTunnelProxy)
    Listener(SockAddrInet("::", 50443), "tls")
