"""The zones of the DMZ firewall (policies/dmz.py includes them).

Documentation addresses: the DMZ is 198.51.100.0/24, the administrators'
workstations 192.0.2.0/28, everything else is the internet.
"""

from zfw.policy import *

InetZone(
    "dmz",
    ["198.51.100.0/24", "2001:db8:2::/64"],
    inbound_services=["dmz_https", "dmz_ftp", "dmz_ssh"],
)
InetZone("internet", ["0.0.0.0/0", "::/0"], outbound_services=["dmz_https", "dmz_ftp"])
# Most specific wins: 192.0.2.0/28 is 'admin', which may do all the internet may
# (its admin_parent) and SSH besides.
InetZone(
    "admin",
    ["192.0.2.0/28", "2001:db8:1::/124"],
    outbound_services=["dmz_ssh"],
    admin_parent="internet",
)
