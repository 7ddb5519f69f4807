"""The TLS benchmark's policy: the blind tunnel for port 443 of the lab's server."""

from zfw.policy import *

#: The load generator is one client address: the per-client limits would be measured,
#: not the proxy.
ONE_CLIENT = {"max_sessions_per_client": 100000, "max_new_sessions_per_client": 1e6}

InetZone("lan", ["192.0.2.0/24"], outbound_services=["tls"])
InetZone("servers", ["198.51.100.0/24"], inbound_services=["tls"])


class Tunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["bench.example"]
        # openssl s_time (the handshake benchmark) sends no server name.
        self.allow_no_sni = True


def bench():
    InstanceOptions(max_sessions=100000)
    Service("tls", Tunnel, max_sessions=100000, **ONE_CLIENT)
    Listener(SockAddrInet("", 50443), "tls")
