"""The HTTP proxy tests' policy: strict defaults, DELETE rejected, a header rewritten."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class StrictHttp(HttpProxy):
    def config(self):
        self.request["DELETE"] = (HTTP_REQ_REJECT, 405, "DELETE is not permitted here.")
        self.request_header["User-Agent"] = (HTTP_HDR_REPLACE, "zfw-checked")
        self.request_header["X-Forwarded-By"] = (HTTP_HDR_INSERT, "zfw")


def http():
    Service("http", StrictHttp)
    Listener(SockAddrInet("", 50080), "http")  # intercepts port 80, HttpProxy's default
