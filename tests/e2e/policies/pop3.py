"""The POP3 example proxy (docs/proxies.md) in the lab: mail may be read, not deleted."""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class ReadMail(Pop3Proxy):
    def config(self):
        self.request["DELE"] = (POP3_REQ_REJECT, "Deleting mail is not permitted here.")


def pop3():
    Service("pop3", ReadMail)
    Listener(SockAddrInet("", 50110), "pop3")  # intercepts port 110, Pop3Proxy's default
