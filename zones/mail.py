"""The zones of the mail firewall (policies/mail.py includes them).

Documentation addresses: the intranet is 192.0.2.0/25, the mail zone (the mail
server) 198.51.100.0/24, everything else is the internet.
"""

from zfw.policy import *

InetZone(
    "intranet",
    ["192.0.2.0/25", "2001:db8:1::/64"],
    outbound_services=["mail_pop3", "mail_smtp_in"],
)
InetZone(
    "mail",
    ["198.51.100.0/24", "2001:db8:2::/64"],
    inbound_services=["mail_pop3", "mail_smtp_in"],
    outbound_services=["mail_smtp_out"],
)
InetZone(
    "internet",
    ["0.0.0.0/0", "::/0"],
    inbound_services=["mail_smtp_out"],
    outbound_services=["mail_smtp_in"],
)
