"""The zones of the outbound web gateway (policies/web_gateway.py includes them).

Documentation addresses: the LAN is 192.0.2.0/24, everything else is the internet.
"""

from zfw.policy import *

WEB = ["web_http", "web_https", "web_proxy"]

InetZone("lan", ["192.0.2.0/24", "2001:db8:1::/64"], outbound_services=WEB)
InetZone("internet", ["0.0.0.0/0", "::/0"], inbound_services=WEB)
