"""Zones of addresses and the one lookup that both the engine and the rule
compiler use: most specific zone first, permissions inherited through
``admin_parent`` until an umbrella zone."""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

import attrs

from zfw.errors import PolicyError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: iptables chain names are at most 28 characters; zones get a two-letter prefix.
MAX_ZONE_NAME = 26
_ZONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

WILDCARD = "*"
OUTBOUND = "outbound"
INBOUND = "inbound"


@attrs.frozen
class Location:
    """Where in which file something was declared."""

    filename: str
    lineno: int | None

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.lineno else self.filename


@attrs.frozen
class Zone:
    """A named set of networks and the services permitted out of and into it."""

    name: str
    networks: tuple[IPNetwork, ...]
    inbound_services: tuple[str, ...] = ()
    outbound_services: tuple[str, ...] = ()
    admin_parent: str | None = None
    umbrella: bool = False
    location: Location | None = attrs.field(default=None, eq=False, repr=False)
    #: Per client address of the zone, for every service (None: the service's own).
    max_sessions_per_client: int | None = None
    max_new_sessions_per_client: float | None = None

    def services(self, direction: str) -> tuple[str, ...]:
        """The service names listed for ``OUTBOUND`` or ``INBOUND``."""
        return self.outbound_services if direction == OUTBOUND else self.inbound_services


def parse_networks(addrs: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings (one, or a list) as networks; host bits must be zero."""
    if isinstance(addrs, str):
        addrs = [addrs]
    nets = []
    for a in addrs:
        if not isinstance(a, str):
            raise PolicyError(f"zone address {a!r} is not a CIDR string")
        try:
            nets.append(ipaddress.ip_network(a.strip(), strict=True))
        except ValueError as e:
            raise PolicyError(f"bad CIDR {a!r}: {e}") from None
    if not nets:
        raise PolicyError("a zone needs at least one address range")
    return tuple(nets)


def check_zone_name(name: object) -> str:
    """The name, if it can become the ``LO``/``PR`` iptables chain names."""
    if not isinstance(name, str) or not _ZONE_NAME.match(name):
        raise PolicyError(
            f"zone name {name!r} must be letters, digits, '_', '.' or '-' "
            "(it becomes an iptables chain name)"
        )
    if len(name) > MAX_ZONE_NAME:
        raise PolicyError(
            f"zone name {name!r} is {len(name)} characters; at most {MAX_ZONE_NAME} fit "
            "an iptables chain name with its two-letter prefix"
        )
    return name


@attrs.frozen
class ZoneTable:
    """The zones of a policy, checked, with a most-specific lookup.

    CIDR blocks are either nested or disjoint, so per address family they cut
    the address space into disjoint segments, each owned by its most specific
    zone (or by none). The lookup is a binary search over the segment starts:
    O(log n) in the number of networks.
    """

    zones: Mapping[str, Zone]
    _segments: Mapping[int, tuple[list[int], list[str | None]]] = attrs.field(repr=False)

    @classmethod
    def build(cls, zones: Iterable[Zone]) -> ZoneTable:
        """Check the zones (names, CIDRs, parents, cycles) and index them."""
        by_name: dict[str, Zone] = {}
        owner: dict[IPNetwork, str] = {}
        for z in zones:
            check_zone_name(z.name)
            if z.name in by_name:
                raise _at(z, f"zone {z.name!r} is declared twice")
            by_name[z.name] = z
            for net in z.networks:
                if net in owner:
                    where = "twice in" if owner[net] == z.name else f"in zone {owner[net]!r} and"
                    raise _at(z, f"{net} is {where} zone {z.name!r}")
                owner[net] = z.name
        for z in by_name.values():
            if z.admin_parent is not None and z.admin_parent not in by_name:
                raise _at(z, f"zone {z.name!r} has unknown admin_parent {z.admin_parent!r}")
        for z in by_name.values():
            seen = [z.name]
            p = z.admin_parent
            while p is not None:
                if p in seen:
                    cycle = " -> ".join([*seen[seen.index(p) :], p])
                    raise _at(z, f"admin_parent cycle: {cycle}")
                seen.append(p)
                p = by_name[p].admin_parent
        segments = {
            v: _segments([(n, z) for n, z in owner.items() if n.version == v]) for v in (4, 6)
        }
        return cls(MappingProxyType(by_name), MappingProxyType(segments))

    def unmatched(self) -> list[Zone]:
        """Zones with networks that no address ever matches: each address in them
        belongs to a more specific zone."""
        reached = {name for _starts, names in self._segments.values() for name in names}
        return [z for z in self.zones.values() if z.networks and z.name not in reached]

    def __iter__(self) -> Iterator[Zone]:
        return iter(self.zones.values())

    def __len__(self) -> int:
        return len(self.zones)

    def __getitem__(self, name: str) -> Zone:
        return self.zones[name]

    def lookup(self, addr: str | IPAddress) -> Zone | None:
        """The most specific zone containing ``addr`` (text or address), or None."""
        version, value = _address_key(addr)
        starts, names = self._segments[version]
        i = bisect_right(starts, value) - 1
        name = names[i] if i >= 0 else None
        return None if name is None else self.zones[name]

    def permits(self, zone: Zone, service: str, direction: str) -> bool:
        """Whether ``service`` may go ``direction`` (OUTBOUND/INBOUND) for ``zone``.

        A zone permits a service it lists by name or with ``"*"``; otherwise it
        asks its ``admin_parent``, unless it is an umbrella zone.
        """
        z: Zone | None = zone
        while z is not None:
            names = z.services(direction)
            if service in names or WILDCARD in names:
                return True
            if z.umbrella or z.admin_parent is None:
                return False
            z = self.zones[z.admin_parent]
        return False

    def ancestors(self, zone: Zone) -> Iterator[Zone]:
        """``zone`` and its admin parents, up to and including an umbrella zone."""
        z: Zone | None = zone
        while z is not None:
            yield z
            if z.umbrella or z.admin_parent is None:
                return
            z = self.zones[z.admin_parent]


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def _address_key(addr: str | IPAddress) -> tuple[int, int]:
    """(IP version, address as integer); IPv4-mapped IPv6 counts as IPv4.

    Text is parsed with ``inet_pton``: the engine asks for every new
    connection, and the ipaddress module is ten times slower.
    """
    if isinstance(addr, str):
        if ":" not in addr:
            try:
                return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
            except OSError:
                raise ValueError(f"{addr!r} is not an IP address") from None
        try:
            packed = socket.inet_pton(socket.AF_INET6, addr.split("%", 1)[0])
        except OSError:
            raise ValueError(f"{addr!r} is not an IP address") from None
        if packed[:12] == _V4_MAPPED:
            return 4, int.from_bytes(packed[12:], "big")
        return 6, int.from_bytes(packed, "big")
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr)


def _segments(owned: list[tuple[IPNetwork, str]]) -> tuple[list[int], list[str | None]]:
    """Disjoint segments (start, most specific zone) of nested-or-disjoint networks."""
    starts: list[int] = []
    names: list[str | None] = []

    def emit(start: int, name: str | None) -> None:
        if starts and starts[-1] == start:
            names[-1] = name
        elif not names or names[-1] != name:
            starts.append(start)
            names.append(name)

    stack: list[tuple[int, str]] = []  # (last address, zone) of the enclosing networks
    for net, name in sorted(
        owned, key=lambda item: (int(item[0].network_address), item[0].prefixlen)
    ):
        first = int(net.network_address)
        while stack and stack[-1][0] < first:
            end, _ = stack.pop()
            emit(end + 1, stack[-1][1] if stack else None)
        emit(first, name)
        stack.append((int(net.broadcast_address), name))
    while stack:
        end, _ = stack.pop()
        emit(end + 1, stack[-1][1] if stack else None)
    return starts, names


def _at(zone: Zone, message: str) -> PolicyError:
    loc = zone.location
    return PolicyError(message, loc.filename if loc else None, loc.lineno if loc else None)
