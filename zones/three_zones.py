"""The zones of the classic three-zone firewall (policies/three_zones.py includes them).

Documentation address ranges only, so the example never matches a real network:
the intranet is 192.0.2.0/24, the DMZ 203.0.113.0/24, everything else is the
internet; the administrators' workstations are a sub-zone of the intranet.
"""

from zfw.policy import *

InetZone(
    "intranet",
    ["192.0.2.0/24", "2001:db8:1::/64"],
    outbound_services=["intra_http", "intra_ftp", "intra_tls", "intra_ssh", "intra_proxy"],
)
# Most specific wins: 192.0.2.0/28 is 'admin', which inherits what the
# intranet may do and may also reach the firewall's own SSH.
InetZone("admin", ["192.0.2.0/28", "2001:db8:1::/124"], admin_parent="intranet")
InetZone(
    "dmz",
    ["203.0.113.0/24", "2001:db8:3::/64"],
    inbound_services=["dmz_http", "dmz_ftp"],
)
InetZone(
    "internet",
    ["0.0.0.0/0", "::/0"],
    inbound_services=["intra_http", "intra_ftp", "intra_tls", "intra_ssh", "intra_proxy"],
    outbound_services=["dmz_http", "dmz_ftp"],
)
