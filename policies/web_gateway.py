"""An outbound web gateway: the LAN's web traffic, HTTPS inspected.

- port 80 from the LAN: HttpProxy, transparently;
- port 443 from the LAN: TLS inspection (docs/tls.md): zfw shows the client a
  certificate from its own CA and applies the same HTTP policy inside; banking
  and pinned applications are on a bypass list (tunnelled, never decrypted), trackers
  on a reject list (closed before anything reaches them);
- browsers configured to use a proxy: 192.0.2.1:3128, the same policy, HTTPS by
  CONNECT inspected alike;
- QUIC (UDP 443) is refused at once, so that browsers fall back to TCP, where the
  inspection is (the generated packet filter's default); nothing else leaves the LAN.

What to change first: the networks in zones/web_gateway.py and the proxy's address
(192.0.2.1, the firewall's on the LAN), then the bypass and reject lists. Before the
first start make the two CAs beside this file, and give the clients ca/ca.pem (never
untrusted/ca.pem):

    zfw ca create /etc/zfw/ca --name "Example Corp inspection CA"
    zfw ca create /etc/zfw/untrusted --name "Example Corp UNTRUSTED"

Servers are verified against the system's trust store. Read "Privacy and the law"
in docs/tls.md before inspecting anyone's traffic.
"""

import os

from zfw.policy import *

include_zones("../zones/web_gateway.py")

#: The folder of this file (/etc/zfw): the CAs are made beside it.
ETC = os.path.dirname(os.path.abspath(__file__))

INSPECT = TwoSidedEncryption(
    DynamicCertificate(
        trusted_ca=(f"{ETC}/ca/ca.pem", f"{ETC}/ca/ca.key"),
        # Servers whose certificate does not verify get a leaf from this one: the
        # client sees the error it would see without zfw.
        untrusted_ca=(f"{ETC}/untrusted/ca.pem", f"{ETC}/untrusted/ca.key"),
    ),
    server_verify=ServerCertificateVerifier(),  # the system's trust store, names checked
    # Exact names, or *.domain for every name below it.
    bypass=["*.bank.example", "updates.example.com"],
    reject=["*.tracker.example", "tracker.example"],
)


def _web_policy(proxy):
    """The LAN's web policy: GET, HEAD and POST (the default) and PUT; DELETE is
    refused with a page that says why; the servers see a Via header."""
    proxy.request["PUT"] = HTTP_REQ_ACCEPT
    proxy.request["DELETE"] = (HTTP_REQ_REJECT, 405, "Deleting is not permitted from here.")
    proxy.request_header["Via"] = (HTTP_HDR_INSERT, "1.1 zfw")


class WebOut(HttpProxy):
    """HTTP, and HTTPS once decrypted."""

    def config(self):
        _web_policy(self)


class InspectedConnect(EncryptionProxy):
    """HTTPS that a configured browser asks for with CONNECT: inspected alike."""

    encryption = INSPECT
    inner_proxy = WebOut


class ExplicitProxy(HttpProxyNonTransparent):
    """For browsers configured to use a proxy (absolute-form requests, CONNECT to 443)."""

    def config(self):
        _web_policy(self)
        self.connect_proxy = InspectedConnect


def gateway():
    """The LAN's web traffic."""
    Service("web_http", WebOut)
    Service("web_https", WebOut, encryption=INSPECT)
    Listener(SockAddrInet("", 50080), "web_http")  # intercepts port 80
    Listener(SockAddrInet("", 50443), "web_https", intercept=443)
    # Each server a request names is decided by its zone, as if the client had
    # connected to it itself.
    Service("web_proxy", ExplicitProxy, router=InbandRouter(forge_addr=True))
    Listener(SockAddrInet("192.0.2.1", 3128), "web_proxy", transparent=False)
