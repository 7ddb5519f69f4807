"""The immutable values a loaded policy consists of.

The loader (:mod:`zfw.loader`) builds one :class:`Policy`; the session engine
and the rule compiler both read it and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from zfw.addr import SockAddrInet
from zfw.options import REQUIRED, Kind, boolean, field, integer, number, optional, port, seconds
from zfw.policyfiles import NamedFile
from zfw.zones import INBOUND, OUTBOUND, Location, Zone, ZoneTable


def _sockaddr(value: object) -> bool | str:
    if not isinstance(value, SockAddrInet):
        return False
    return True if value.host and value.port else "it needs an address and a port"


@attrs.frozen
class TransparentRouter:
    """Connect to the client's original destination.

    ``forge_addr`` (default) makes the server see the client's address;
    ``forced_port`` replaces the destination port.
    """

    forge_addr: bool = field(boolean(), True, "the server sees the client's address")
    forced_port: int | None = field(
        optional(port()), None, "replaces the destination port (None: the client's)"
    )
    forge_port: bool = field(boolean(), False, "and the client's source port")


@attrs.frozen
class DirectedRouter:
    """Connect to a fixed target whatever the client asked for."""

    target: SockAddrInet = field(  # noqa: RUF009 (attrs, not a dataclass)
        Kind("SockAddrInet(host, port)", _sockaddr), REQUIRED, "the server to connect to"
    )
    forge_addr: bool = field(boolean(), False, "the server sees the client's address")
    forge_port: bool = field(boolean(), False, "and the client's source port")


@attrs.frozen
class InbandRouter:
    """Connect to the server the client names in its request (a non-transparent proxy:
    ``GET http://host/`` or ``CONNECT host:443``); the zones decide each such server.

    ``forge_addr`` makes the server see the client's address (``forge_port``: and port).
    """

    forge_addr: bool = field(boolean(), False, "the server sees the client's address")
    forge_port: bool = field(boolean(), False, "and the client's source port")


Router = TransparentRouter | DirectedRouter | InbandRouter


@attrs.frozen
class PortRange:
    """Destination ports ``low`` to ``high`` inclusive."""

    low: int
    high: int

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high


@attrs.frozen
class Service:
    """A named proxy configuration that listeners hand connections to."""

    name: str
    proxy_class: type
    router: Router = TransparentRouter()
    max_sessions: int = 1000
    location: Location | None = attrs.field(default=None, eq=False, repr=False)
    #: Sessions one client address may hold at once (None: no fixed cap; near the
    #: limit the busiest address yields, zfw.engine.fair).
    max_sessions_per_client: int | None = None
    #: New sessions a second one client address may open (a burst of as many; None: any).
    max_new_sessions_per_client: float | None = None
    #: The encryption policy (zfw.tls.encryption), None: the proxy sees the bytes as sent.
    encryption: Any = attrs.field(default=None, eq=False)
    #: The proxy the engine starts first, when it is not ``proxy_class`` itself (the
    #: encryption layer, which starts ``proxy_class`` on the plaintext).
    layer: type | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Listener:
    """A local port whose connections go to a service.

    A transparent listener receives connections the kernel diverted with
    TPROXY; ``intercept`` names the destination ports it diverts. With
    ``redirect`` they were diverted by a NAT ``REDIRECT`` rule instead, and the
    original destination comes from conntrack.
    """

    address: SockAddrInet
    service: str
    transparent: bool = True
    intercept: tuple[PortRange, ...] = ()
    backlog: int = 511
    redirect: bool = False
    location: Location | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def tproxy(self) -> bool:
        """Whether TPROXY diverts to it (its socket needs IP_TRANSPARENT)."""
        return self.transparent and not self.redirect


@attrs.frozen
class LocalService:
    """A service of the firewall host itself (say SSH) and the zones it serves."""

    name: str
    ports: tuple[PortRange, ...]
    zones: tuple[str, ...]
    protocol: str = "tcp"
    location: Location | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class InstanceOptions:
    """Limits of one running instance."""

    max_sessions: int = field(integer(1), 10000, "sessions at once across the instance")
    shutdown_grace: float = field(
        seconds(), 30.0, "seconds running sessions get on SIGTERM before they are aborted"
    )
    headroom: float = field(
        number(0, 0.9),
        0.1,
        "share of each limit (the instance's, a service's) kept for the addresses other "
        "than the busiest: from there on, the busiest address yields",
    )
    yield_idle: float = field(
        seconds(),
        10.0,
        "near a limit, a session of the busiest address that moved no byte for this "
        "long may be closed to make room (one still opening always may)",
    )
    workers: int = field(
        integer(1, 256),
        1,
        "worker processes sharing the instance's listeners (1: the instance is one process)",
    )


@attrs.frozen
class Instance:
    """The services and listeners of one zfw process."""

    name: str
    services: Mapping[str, Service]
    listeners: tuple[Listener, ...]
    options: InstanceOptions = InstanceOptions()
    location: Location | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class PacketFilterOptions:
    """Marks and routing table the generated packet filter uses."""

    tproxy_mark: int = 0x1000000
    tproxy_mask: int = 0x1000000
    route_table: int = 100
    log_prefix: str = "zfw"
    #: Forwarded UDP/443 (QUIC, HTTP/3): "reject" (ICMP port unreachable, so that
    #: browsers fall back to TCP and the proxies at once) or "drop" (logged, like any
    #: other forwarded packet). Nothing is forwarded either way.
    quic: str = "reject"


@attrs.frozen
class Policy:
    """One loaded policy: zones, instances and the instance chosen to run."""

    path: str
    zones: ZoneTable
    instances: Mapping[str, Instance]
    local_services: tuple[LocalService, ...] = ()
    packet_filter: PacketFilterOptions = PacketFilterOptions()
    instance_name: str | None = None
    warnings: tuple[str, ...] = ()
    #: The policy file and the zones files it included (to find policy code in a traceback).
    files: tuple[str, ...] = attrs.field(default=(), eq=False)
    #: Other files the policy names (certificates, CAs), for ``zfw check --as-user``.
    named_files: tuple[NamedFile, ...] = attrs.field(default=(), eq=False)
    #: The bridge the firewall is (None: it routes).
    bridge: Bridge | None = None

    @property
    def instance(self) -> Instance:
        """The chosen instance (``--instance``)."""
        if self.instance_name is None:
            raise LookupError("no instance was chosen")
        return self.instances[self.instance_name]

    def service(self, name: str) -> Service:
        """A service by name, from any instance."""
        for inst in self.instances.values():
            if name in inst.services:
                return inst.services[name]
        raise KeyError(name)

    def all_services(self) -> Mapping[str, Service]:
        """Every service of every instance by name."""
        return MappingProxyType(
            {n: s for inst in self.instances.values() for n, s in inst.services.items()}
        )

    def permitted(self, service: str, client: Zone, server: Zone) -> bool:
        """The zone decision: ``service`` out of ``client`` and into ``server``."""
        return self.zones.permits(client, service, OUTBOUND) and self.zones.permits(
            server, service, INBOUND
        )


@attrs.frozen
class BridgeTraffic:
    """Traffic let bridge between the ports as it is (not proxied): ``ping`` (ICMP and
    ICMPv6 echo), ``icmp`` (all of ICMP and ICMPv6), or ``tcp``/``udp`` to ``ports``
    from the client side (and its replies from the server side)."""

    protocol: str
    ports: tuple[PortRange, ...] = ()

    def __str__(self) -> str:
        return self.protocol + "".join(f"/{p}" for p in self.ports).replace(":", "-")


@attrs.frozen
class Bridge:
    """The firewall as a bridge: ``device`` bridges ``client_ports`` to ``server_ports``;
    ``mac`` and ``addresses`` are its own (ARP, neighbour discovery, management)."""

    device: str
    client_ports: tuple[str, ...]
    server_ports: tuple[str, ...]
    mac: str
    addresses: tuple[str, ...]
    bridge_traffic: tuple[BridgeTraffic, ...] = ()
    location: Location | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def ports(self) -> tuple[str, ...]:
        """Every member port."""
        return (*self.client_ports, *self.server_ports)
