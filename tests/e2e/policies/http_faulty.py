"""Request callbacks that raise for one URL, or answer a bool (test_policy_faults.py)."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class FaultyHttp(HttpProxy):
    def config(self):
        self.request["GET"] = (HTTP_REQ_POLICY, self.check_get)
        self.request["HEAD"] = (HTTP_REQ_POLICY, self.check_head)

    def check_get(self, request):  # line 14: the test names it, and line 16
        if request.url.startswith("/boom"):
            raise RuntimeError("the policy author's bug")
        return HTTP_REQ_ACCEPT

    def check_head(self, request):  # line 19
        return True  # not an action: refused as well


def http():
    Service("http", FaultyHttp)
    Listener(SockAddrInet("", 50080), "http")
