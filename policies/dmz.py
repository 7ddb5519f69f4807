"""A DMZ: public servers behind the firewall, and the administrators' way in.

- HTTPS from anywhere to the web server: zfw holds the certificate and terminates
  TLS (ClientOnlyEncryption), checks each request with HttpProxy and passes it as
  plain HTTP to the web server's port 80 (DirectedRouter): the web servers need no
  TLS of their own, and see the client's own address;
- FTP from anywhere to the FTP server: anonymous downloads only (FtpProxyAnonRO);
  uploads, deletes and named users are refused;
- SSH to the DMZ's servers: from the admin zone only (PlugProxy); the admin zone
  may also do all the internet may.
Nothing else reaches the DMZ, and the DMZ reaches nothing.

What to change first: the networks in zones/dmz.py and the web server's address
(WEB_SERVER below). Put the site's certificate (its chain after it) and key beside
this file, as tls/www.pem and tls/www.key (mode 0600); several sites: see
SNIBasedCertificate in docs/tls.md.
"""

import os

from zfw.policy import *

include_zones("../zones/dmz.py")

#: The folder of this file (/etc/zfw).
ETC = os.path.dirname(os.path.abspath(__file__))
#: Where the plain web server listens (inside the DMZ).
WEB_SERVER = SockAddrInet("198.51.100.2", 80)

OFFLOAD = ClientOnlyEncryption(StaticCertificate(f"{ETC}/tls/www.pem", f"{ETC}/tls/www.key"))


class PublicWeb(HttpProxy):
    """The public site: GET and HEAD only, so forms cannot be posted from outside."""

    def config(self):
        self.request["POST"] = (HTTP_REQ_REJECT, 405, "This site takes no forms.")
        self.request_header["X-Forwarded-Proto"] = (HTTP_HDR_REPLACE, "https")


def dmz():
    """The DMZ's servers, reached from the internet and the admin zone."""
    Service(
        "dmz_https",
        PublicWeb,
        router=DirectedRouter(WEB_SERVER, forge_addr=True),
        encryption=OFFLOAD,
    )
    Service("dmz_ftp", FtpProxyAnonRO)
    Service("dmz_ssh", PlugProxy)
    Listener(SockAddrInet("", 52443), "dmz_https", intercept=443)
    Listener(SockAddrInet("", 52021), "dmz_ftp")  # intercepts port 21
    Listener(SockAddrInet("", 52022), "dmz_ssh", intercept=22)
