"""The fairness tests' policy (tests/e2e/test_limits.py): no per-client defaults; the
instance holds 1,000 sessions, and near that the busiest address yields. ``capped``
has a fixed cap of 50 sessions per address."""

from zfw.policy import *

InetZone("lan", "192.0.2.0/25", outbound_services=["*"])
InetZone("nat", "192.0.2.128/25", outbound_services=["*"])
InetZone("servers", "198.51.100.0/24", inbound_services=["*"])


class SlowHeads(HttpProxy):
    def config(self):
        self.header_timeout = 300  # the slowloris heads stay, whatever the test's pace


class Tunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["allowed.example"]


def fair():
    InstanceOptions(max_sessions=1000)
    Service("web", SlowHeads, max_sessions=2000)
    Service("tls", Tunnel)
    Service("capped", HttpProxy, max_sessions_per_client=50)
    Listener(SockAddrInet("", 50080), "web")
    Listener(SockAddrInet("", 50443), "tls")
    Listener(SockAddrInet("", 58080), "capped", intercept=8080)
