"""The bridged lab's policy (tests/e2e/test_bridge.py): HTTP, FTP, TLS by name and TLS
inspected, through the bridge br0 of zfw.lab.bridge; ZFW_PKI names the test CA."""

import os

from zfw.policy import *

PKI = os.environ.get("ZFW_PKI", "/nonexistent")

Bridge(
    "br0",
    client_ports=["cl0"],
    server_ports=["sv0"],
    mac="02:00:00:00:00:01",
    addresses=["192.0.2.1/24", "2001:db8:1::1/64"],
    bridge_traffic=["ping", "tcp/7", "udp/7"],
)

InetZone("clients", ["192.0.2.0/28", "2001:db8:1::10/124"], outbound_services=["*"])
InetZone("servers", ["192.0.2.16/28", "2001:db8:1::20/124"], inbound_services=["*"])


class Sni(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["allowed.example"]


class Inside(HttpProxy):
    def config(self):
        self.request_header["User-Agent"] = (HTTP_HDR_REPLACE, "zfw-inspected")


INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=(PKI + "/zfw/ca.pem", PKI + "/zfw/ca.key")),
    server_verify=ServerCertificateVerifier(ca_file=PKI + "/origin/ca.pem"),
)


def main():
    Service("web", HttpProxy)
    Service("files", FtpProxy)
    Service("tunnel", Sni)
    Service("https", Inside, encryption=INSPECT)
    Listener(SockAddrInet("", 50080), "web", intercept=80)
    Listener(SockAddrInet("", 50021), "files", intercept=21)
    Listener(SockAddrInet("", 50443), "tunnel", intercept=443)
    Listener(SockAddrInet("", 58443), "https", intercept=8443)
