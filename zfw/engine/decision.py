"""The zone and routing decision for one new connection, without I/O.

The rule compiler's consistency test evaluates the same function, so the
packet filter and the engine cannot disagree about what is permitted.
"""

from __future__ import annotations

import ipaddress

import attrs

from zfw.model import DirectedRouter, InbandRouter, Listener, Policy, Service
from zfw.zones import OUTBOUND, Zone

Address = tuple[str, int]


@attrs.frozen
class Decision:
    """Whether a connection may proceed, and where to."""

    allowed: bool
    reason: str
    client_zone: Zone | None = None
    server_zone: Zone | None = None
    target: Address | None = None
    source: Address | None = None


def plain_host(host: str) -> str:
    """``host`` without an IPv4-mapped IPv6 prefix or a scope."""
    if ":" not in host:
        return host
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def route(
    service: Service, client: Address, destination: Address
) -> tuple[Address, Address | None]:
    """The server to connect to and the source address to connect from (None: our own).

    For an :class:`InbandRouter`, ``destination`` is the server the request named."""
    r = service.router
    if isinstance(r, InbandRouter):
        target = destination
    elif isinstance(r, DirectedRouter):
        target = (r.target.host, r.target.port)
    else:
        target = (destination[0], r.forced_port or destination[1])
    source = None
    if r.forge_addr:
        source = (client[0], client[1] if r.forge_port else 0)
    return target, source


def decide(
    policy: Policy, listener: Listener, service: Service, client: Address, destination: Address
) -> Decision:
    """Decide a new connection from ``client`` that was going to ``destination``."""
    client = (plain_host(client[0]), client[1])
    destination = (plain_host(destination[0]), destination[1])
    inband = isinstance(service.router, InbandRouter)
    if not listener.transparent and not isinstance(service.router, DirectedRouter) and not inband:
        return Decision(False, "a non-transparent listener needs a DirectedRouter")
    czone = policy.zones.lookup(client[0])
    if czone is None:
        return Decision(False, f"client address {client[0]} is in no zone")
    if inband:  # the server comes with each request: decide_server() then
        if not policy.zones.permits(czone, service.name, OUTBOUND):
            return Decision(
                False, f"service {service.name!r} is not permitted from zone {czone.name!r}", czone
            )
        return Decision(True, "permitted; the server is named in-band", czone)
    return decide_server(policy, service, client, destination, czone)


def decide_server(
    policy: Policy, service: Service, client: Address, destination: Address, czone: Zone
) -> Decision:
    """The zone decision for ``destination``, from ``client`` in ``czone``: the second
    half of :func:`decide`, and for an in-band router the decision on each named server."""
    target, source = route(service, client, (plain_host(destination[0]), destination[1]))
    szone = policy.zones.lookup(target[0])
    if szone is None:
        return Decision(False, f"server address {target[0]} is in no zone", czone)
    if not policy.permitted(service.name, czone, szone):
        return Decision(
            False,
            f"service {service.name!r} is not permitted from zone {czone.name!r} "
            f"to zone {szone.name!r}",
            czone,
            szone,
        )
    if source is not None and (":" in source[0]) != (":" in target[0]):
        return Decision(
            False, "cannot forge the client's address across IPv4 and IPv6", czone, szone
        )
    return Decision(True, "permitted", czone, szone, target, source)
