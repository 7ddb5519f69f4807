"""The FTP proxy tests' policy: one listener per data_mode, a read-only preset.

The lab's FTP servers listen on 21 (data_mode as the client did), 2121
(always passive toward the server), 2122 (always active), 2123 (read-only, by a
subclass whose config() does not call super())
2124 (no forge_addr: the server sees the firewall) and 2125 (a hostile
server, as port 21).
"""

from zfw.policy import *

InetZone("lan", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=["*"])
InetZone("servers", ["198.51.100.0/24", "2001:db8:2::/64"], inbound_services=["*"])


class ServerPassive(FtpProxy):
    def config(self):
        self.data_mode = FTP_DATA_PASSIVE


class ServerActive(FtpProxy):
    def config(self):
        self.data_mode = FTP_DATA_ACTIVE


class CarelessReadOnly(FtpProxyRO):
    """config() without super().config(): the preset's restrictions must hold anyway."""

    def config(self):
        self.timeout = 120


def ftp():
    Service("ftp", FtpProxy)
    Service("ftp_passive", ServerPassive)
    Service("ftp_active", ServerActive)
    Service("ftp_ro", CarelessReadOnly)
    Service("ftp_own", FtpProxy, router=TransparentRouter(forge_addr=False))
    Listener(SockAddrInet("", 50021), "ftp")  # intercepts port 21, FtpProxy's default
    Listener(SockAddrInet("", 50121), "ftp_passive", intercept=2121)
    Listener(SockAddrInet("", 50122), "ftp_active", intercept=2122)
    Listener(SockAddrInet("", 50123), "ftp_ro", intercept=2123)
    Listener(SockAddrInet("", 50124), "ftp_own", intercept=2124)
    Listener(SockAddrInet("", 50125), "ftp", intercept=2125)
