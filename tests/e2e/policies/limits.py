"""The per-client limits test's policy (tests/e2e/test_limits.py): HttpProxy with its
default limits: 1,000 sessions, 100 of them (a tenth) per client address."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


def limits():
    Service("web", HttpProxy)
    Listener(SockAddrInet("", 50080), "web")
