"""The classic three-zone firewall: intranet, DMZ, internet.

- from the intranet: HTTP, FTP and TLS (a blind tunnel that decides by the
  server name) to the internet, and SSH relayed by the plug proxy; browsers
  configured to use a proxy get one on 192.0.2.1:3128;
- from the internet: HTTP and anonymous read-only FTP into the DMZ;
- the firewall's own SSH: from the admin zone only.

``zfw example DIR`` writes this one (the default). What to change first: the networks
in zones/three_zones.py, then what the intranet may reach (IntraTls's denied names).
Run one instance with ``zfw run --policy /etc/zfw/policy.py --instance intra``.
"""

from zfw.policy import *

include_zones("../zones/three_zones.py")

LocalService("fw_ssh", 22, zones=["admin"])


class IntraHttp(HttpProxy):
    """Web out of the intranet: GET, HEAD and POST (the default), never DELETE."""

    def config(self):
        self.request["DELETE"] = (HTTP_REQ_REJECT, 405, "Deleting is not permitted from here.")
        self.request_header["Via"] = (HTTP_HDR_INSERT, "1.1 zfw")


class IntraFtp(FtpProxy):
    """FTP out of the intranet: the internet server is only ever asked for
    passive mode, so it never connects in, whatever the client does."""

    def config(self):
        self.data_mode = FTP_DATA_PASSIVE


class IntraTls(TlsTunnelProxy):
    """TLS out of the intranet, by server name; no name, no tunnel."""

    def config(self):
        self.denied_names = ["*.tracker.example"]


class IntraWebProxy(HttpProxyNonTransparent):
    """For browsers configured to use a proxy: the same rules as IntraHttp, and
    CONNECT (port 443 only) for HTTPS."""

    def config(self):
        self.request["DELETE"] = (HTTP_REQ_REJECT, 405, "Deleting is not permitted from here.")
        self.request_header["Via"] = (HTTP_HDR_INSERT, "1.1 zfw")


def intra():
    """Clients of the intranet going out."""
    Service("intra_http", IntraHttp)
    Service("intra_ftp", IntraFtp)
    Service("intra_tls", IntraTls)
    Service("intra_ssh", PlugProxy)
    Listener(SockAddrInet("", 50080), "intra_http")  # intercepts port 80
    Listener(SockAddrInet("", 50021), "intra_ftp")  # port 21
    Listener(SockAddrInet("", 50443), "intra_tls")  # port 443
    Listener(SockAddrInet("", 50022), "intra_ssh", intercept=22)
    # Each server a request names is decided by its zone (the DMZ is not permitted).
    Service("intra_proxy", IntraWebProxy, router=InbandRouter(forge_addr=True))
    Listener(SockAddrInet("192.0.2.1", 3128), "intra_proxy", transparent=False)


def dmz():
    """Servers in the DMZ, reached from the internet."""
    Service("dmz_http", HttpProxy)
    Service("dmz_ftp", FtpProxyAnonRO)  # anonymous downloads only
    Listener(SockAddrInet("", 51080), "dmz_http")
    Listener(SockAddrInet("", 51021), "dmz_ftp")
