"""The fault tests' policy (tests/e2e/test_faults.py): HttpProxy with a response policy
that raises for one URL, and short body and keep-alive timeouts."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class Faulty(HttpProxy):
    def config(self):
        self.request["PUT"] = HTTP_REQ_ACCEPT
        self.response[("GET", "*")] = (HTTP_RSP_POLICY, self.check)
        self.timeout = 3  # no traffic during a body (or a body that never comes)

    def check(self, request, response):
        if request.url.startswith("/boom"):
            raise RuntimeError("broken response policy")
        return HTTP_RSP_ACCEPT


def faults():
    Service("web", Faulty, max_sessions=200, max_sessions_per_client=200)
    Listener(SockAddrInet("", 50080), "web", intercept=[80, 8080])
