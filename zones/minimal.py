"""The zones of the smallest start (policies/minimal.py includes them).

Documentation addresses: the intranet is 192.0.2.0/24, the DMZ 203.0.113.0/24,
everything else is the internet.
"""

from zfw.policy import *

InetZone("intranet", ["192.0.2.0/24", "2001:db8:1::/64"], outbound_services=["intra_HTTP"])
InetZone("dmz", ["203.0.113.0/24", "2001:db8:3::/64"])  # nothing in, nothing out (yet)
InetZone("internet", ["0.0.0.0/0", "::/0"], inbound_services=["intra_HTTP"])
