"""Two instances on one host, one packet filter: the office and the guest network.

One policy file, two instance functions. Each instance is a process of its own
(systemd: ``zfw@office`` and ``zfw@guests``), so either can be restarted, reloaded or
stopped without touching the other; the one packet filter (``zfw rules apply``,
``zfw-rules.service``) is compiled from both and sends each zone's connections to
its instance's listeners.

- office (192.0.2.0/25): web out with HttpProxy, TLS tunnelled by server name,
  SSH relayed;
- guests (192.0.2.128/25): web only, GET and HEAD, and few sessions per guest;
  the office is out of their reach.

What to change first: the networks in zones/two_instances.py. Keep the listener
ports of the two instances apart: they share one host.
"""

from zfw.policy import *

include_zones("../zones/two_instances.py")


class GuestWeb(HttpProxy):
    """Guests browse: GET and HEAD, nothing is sent."""

    def config(self):
        self.request["POST"] = (HTTP_REQ_REJECT, 405, "Guests may not send forms.")


def office():
    """The office's traffic out."""
    Service("office_http", HttpProxy)
    Service("office_tls", TlsTunnelProxy)
    Service("office_ssh", PlugProxy)
    Listener(SockAddrInet("", 50080), "office_http")  # intercepts port 80
    Listener(SockAddrInet("", 50443), "office_tls")  # port 443
    Listener(SockAddrInet("", 50022), "office_ssh", intercept=22)


def guests():
    """The guest network's web traffic."""
    InstanceOptions(max_sessions=2000)
    Service("guest_http", GuestWeb, max_sessions=1000, max_sessions_per_client=20)
    Listener(SockAddrInet("", 51080), "guest_http")  # port 80, for guests' connections
