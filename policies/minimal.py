"""The smallest start: web out of the intranet, nothing else.

The policy of the TPROXY README: three zones (intranet, DMZ, internet) and one
instance, ``intra``, whose HttpProxy on port 50080 takes the intranet's connections
to port 80 of any server on the internet. Everything else is refused: the DMZ is
not reached, nothing comes in, no other port goes out.

What to change first: the networks in zones/minimal.py. Then grow it one service
at a time (three_zones is the next step).
Run it with ``zfw run --policy /etc/zfw/policy.py --instance intra``.
"""

from zfw.policy import *

include_zones("../zones/minimal.py")


def intra():
    """Clients of the intranet going out."""
    Service("intra_HTTP", HttpProxy)
    Listener(SockAddrInet("", 50080), "intra_HTTP")  # intercepts port 80
