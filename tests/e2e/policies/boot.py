"""The closed-at-boot tests' policy (tests/e2e/test_rules_boot.py): HTTP through zfw, and
nothing else forwarded."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


def web():
    Service("web", HttpProxy)
    Listener(SockAddrInet("", 50080), "web")  # intercepts port 80, HttpProxy's default
