"""The zones of the two-instance host (policies/two_instances.py includes them).

Documentation addresses: the office is 192.0.2.0/25, the guest network
192.0.2.128/25, everything else is the internet.
"""

from zfw.policy import *

OFFICE = ["office_http", "office_tls", "office_ssh"]

InetZone("office", ["192.0.2.0/25", "2001:db8:1::/64"], outbound_services=OFFICE)
InetZone(
    "guests",
    ["192.0.2.128/25"],
    outbound_services=["guest_http"],
    max_sessions_per_client=50,  # across every service: one guest cannot take the host
)
InetZone("internet", ["0.0.0.0/0", "::/0"], inbound_services=[*OFFICE, "guest_http"])
