"""Everything a policy file needs: ``from zfw.policy import *``.

The names follow Zorp's policy language, so a Zorp administrator's policy
runs with only its import line changed::

    InetZone('intranet', '192.0.2.0/24', outbound_services=['*'])
    InetZone('internet', '0.0.0.0/0', inbound_services=['*'])

    def intra():
        Service('intra_HTTP', HttpProxy)
        Listener(SockAddrInet('', 50080), 'intra_HTTP')
"""

from __future__ import annotations

import ipaddress as _ipaddress
from collections.abc import Iterable

from zfw import bridge as _bridge
from zfw import loader
from zfw.addr import SockAddrInet
from zfw.errors import PolicyError
from zfw.ftp.policy import (
    FTP_DATA_ACTIVE,
    FTP_DATA_KEEP,
    FTP_DATA_PASSIVE,
    FTP_REQ_ABORT,
    FTP_REQ_ACCEPT,
    FTP_REQ_POLICY,
    FTP_REQ_REJECT,
    FTP_RSP_ABORT,
    FTP_RSP_ACCEPT,
    FTP_RSP_POLICY,
    FTP_RSP_REJECT,
)
from zfw.http.policy import (
    HTTP_HDR_ABORT,
    HTTP_HDR_ACCEPT,
    HTTP_HDR_DROP,
    HTTP_HDR_INSERT,
    HTTP_HDR_POLICY,
    HTTP_HDR_REPLACE,
    HTTP_REQ_ABORT,
    HTTP_REQ_ACCEPT,
    HTTP_REQ_DENY,
    HTTP_REQ_POLICY,
    HTTP_REQ_REJECT,
    HTTP_RSP_ABORT,
    HTTP_RSP_ACCEPT,
    HTTP_RSP_DENY,
    HTTP_RSP_POLICY,
    HTTP_RSP_REJECT,
)
from zfw.model import Bridge as _Bridge
from zfw.model import (
    DirectedRouter,
    InbandRouter,
    PortRange,
    TransparentRouter,
)
from zfw.model import (
    InstanceOptions as _InstanceOptions,
)
from zfw.model import (
    Listener as _Listener,
)
from zfw.model import (
    LocalService as _LocalService,
)
from zfw.model import (
    PacketFilterOptions as _PacketFilterOptions,
)
from zfw.model import (
    Service as _Service,
)
from zfw.options import argument, arguments
from zfw.proxy.base import Proxy
from zfw.proxy.encryption import EncryptionProxy
from zfw.proxy.ftp import FtpProxy, FtpProxyAnonRO, FtpProxyAnonRW, FtpProxyRO, FtpProxyRW
from zfw.proxy.http import HttpProxy, HttpProxyNonTransparent
from zfw.proxy.plug import PlugProxy
from zfw.proxy.pop3 import (
    POP3_REQ_ABORT,
    POP3_REQ_ACCEPT,
    POP3_REQ_POLICY,
    POP3_REQ_REJECT,
    Pop3Proxy,
)
from zfw.proxy.tls import TlsTunnelProxy
from zfw.tls.contexts import TlsOptions
from zfw.tls.encryption import (
    ClientOnlyEncryption,
    DynamicCertificate,
    ServerCertificateVerifier,
    ServerOnlyEncryption,
    SNIBasedCertificate,
    StaticCertificate,
    TwoSidedEncryption,
    _Encryption,
)
from zfw.zones import Zone as _Zone
from zfw.zones import check_zone_name, parse_networks

__all__ = [
    "FTP_DATA_ACTIVE",
    "FTP_DATA_KEEP",
    "FTP_DATA_PASSIVE",
    "FTP_REQ_ABORT",
    "FTP_REQ_ACCEPT",
    "FTP_REQ_POLICY",
    "FTP_REQ_REJECT",
    "FTP_RSP_ABORT",
    "FTP_RSP_ACCEPT",
    "FTP_RSP_POLICY",
    "FTP_RSP_REJECT",
    "HTTP_HDR_ABORT",
    "HTTP_HDR_ACCEPT",
    "HTTP_HDR_DROP",
    "HTTP_HDR_INSERT",
    "HTTP_HDR_POLICY",
    "HTTP_HDR_REPLACE",
    "HTTP_REQ_ABORT",
    "HTTP_REQ_ACCEPT",
    "HTTP_REQ_DENY",
    "HTTP_REQ_POLICY",
    "HTTP_REQ_REJECT",
    "HTTP_RSP_ABORT",
    "HTTP_RSP_ACCEPT",
    "HTTP_RSP_DENY",
    "HTTP_RSP_POLICY",
    "HTTP_RSP_REJECT",
    "POP3_REQ_ABORT",
    "POP3_REQ_ACCEPT",
    "POP3_REQ_POLICY",
    "POP3_REQ_REJECT",
    "Bridge",
    "ClientOnlyEncryption",
    "DirectedRouter",
    "DynamicCertificate",
    "EncryptionProxy",
    "FtpProxy",
    "FtpProxyAnonRO",
    "FtpProxyAnonRW",
    "FtpProxyRO",
    "FtpProxyRW",
    "HttpProxy",
    "HttpProxyNonTransparent",
    "InbandRouter",
    "InetZone",
    "InstanceOptions",
    "Listener",
    "LocalService",
    "PacketFilter",
    "PlugProxy",
    "Pop3Proxy",
    "Proxy",
    "SNIBasedCertificate",
    "ServerCertificateVerifier",
    "ServerOnlyEncryption",
    "Service",
    "SockAddrInet",
    "StaticCertificate",
    "TlsOptions",
    "TlsTunnelProxy",
    "TransparentRouter",
    "TwoSidedEncryption",
    "include_zones",
]


def _names(value: object, what: str, kind: str = "service") -> tuple[str, ...]:
    """A list of names; a bare string is refused (it would be a list of its characters
    elsewhere, and here a one-element list only by luck)."""
    if isinstance(value, str):
        raise PolicyError(
            f"{what} must be a list of {kind} names, not the string {value!r} (write [{value!r}])"
        )
    try:
        names = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise PolicyError(f"{what} must be a list of {kind} names") from None
    for n in names:
        if not isinstance(n, str) or not n:
            raise PolicyError(f"{what}: {n!r} is not a {kind} name")
    return names


def _ports(value: object, what: str) -> tuple[PortRange, ...]:
    """Ports as ``80``, ``(8000, 8080)`` or ``"8000:8080"``, alone or in a list."""
    items = [value] if isinstance(value, int | str | tuple) else list(value)  # type: ignore[arg-type]
    out = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            lo_s, _, hi_s = item.partition(":")
            try:
                item = (int(lo_s), int(hi_s))
            except ValueError:
                raise PolicyError(f"{what}: bad port range {item!r}") from None
        if isinstance(item, tuple) and len(item) == 2:
            lo, hi = item
        elif isinstance(item, int) and not isinstance(item, bool):
            lo = hi = item
        elif isinstance(item, str) and item.isdigit():
            lo = hi = int(item)
        else:
            raise PolicyError(f"{what}: {item!r} is not a port or port range")
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 65535):
            raise PolicyError(f"{what}: {item!r} is not a port range within 1-65535")
        out.append(PortRange(lo, hi))
    return tuple(out)


def _client_limits(what: str, sessions: object, rate: object) -> None:
    if sessions is not None and (
        isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1
    ):
        raise PolicyError(f"{what}: max_sessions_per_client must be a positive integer")
    if rate is not None:
        _positive(rate, f"{what}: max_new_sessions_per_client")


def _positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PolicyError(f"{what} must be a positive number, not {value!r}")


def InetZone(
    name: str,
    addrs: str | Iterable[str],
    inbound_services: Iterable[str] = (),
    outbound_services: Iterable[str] = (),
    admin_parent: str | None = None,
    umbrella: bool = False,
    max_sessions_per_client: int | None = None,
    max_new_sessions_per_client: float | None = None,
) -> _Zone:
    """Declare a zone: networks (IPv4 and IPv6 CIDRs) and permitted services.

    ``max_sessions_per_client``/``max_new_sessions_per_client``: limits for each
    address of the zone, for every service (lower than a service's own, they win)."""
    b = loader.current_builder("InetZone")
    check_zone_name(name)
    if admin_parent is not None and not isinstance(admin_parent, str):
        raise PolicyError(f"zone {name!r}: admin_parent must be a zone name")
    _client_limits(f"zone {name!r}", max_sessions_per_client, max_new_sessions_per_client)
    zone = _Zone(
        name=name,
        networks=parse_networks(addrs),
        inbound_services=_names(inbound_services, f"zone {name!r} inbound_services"),
        outbound_services=_names(outbound_services, f"zone {name!r} outbound_services"),
        admin_parent=admin_parent,
        umbrella=bool(umbrella),
        location=b.location(),
        max_sessions_per_client=max_sessions_per_client,
        max_new_sessions_per_client=(
            None if max_new_sessions_per_client is None else float(max_new_sessions_per_client)
        ),
    )
    b.add_zone(zone)
    return zone


def Service(
    name: str,
    proxy_class: type,
    router: TransparentRouter | DirectedRouter | InbandRouter | None = None,
    max_sessions: int = 1000,
    max_sessions_per_client: int | None = None,
    max_new_sessions_per_client: float | None = None,
    encryption: _Encryption | None = None,
) -> _Service:
    """Declare a service of the current instance: a proxy class and a router.

    ``encryption``: a TwoSidedEncryption, ClientOnlyEncryption or ServerOnlyEncryption
    (docs/tls.md); the proxy then sees the plaintext.

    ``max_sessions_per_client`` and ``max_new_sessions_per_client`` (per second) are
    fixed caps for each client address (default: none); without them one address may
    take what the others leave, and near ``max_sessions`` the busiest address yields
    (``InstanceOptions(headroom=...)``)."""
    b = loader.current_builder("Service")
    inst = b.current_instance("Service")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"service name {name!r} must be a non-empty string")
    if not (isinstance(proxy_class, type) and issubclass(proxy_class, Proxy)):
        raise PolicyError(f"service {name!r}: {proxy_class!r} is not a proxy class")
    if router is None:
        router = TransparentRouter()
    if not isinstance(router, TransparentRouter | DirectedRouter | InbandRouter):
        raise PolicyError(
            f"service {name!r}: router must be TransparentRouter, DirectedRouter or InbandRouter"
        )
    if isinstance(router, InbandRouter) and not proxy_class.inband:
        raise PolicyError(
            f"service {name!r}: InbandRouter needs a proxy that reads the server from the "
            f"request (HttpProxy), not {proxy_class.__name__}"
        )
    if not isinstance(max_sessions, int) or max_sessions < 1:
        raise PolicyError(f"service {name!r}: max_sessions must be a positive integer")
    _client_limits(f"service {name!r}", max_sessions_per_client, max_new_sessions_per_client)
    if encryption is not None and not isinstance(encryption, _Encryption):
        raise PolicyError(
            f"service {name!r}: encryption must be TwoSidedEncryption, ClientOnlyEncryption "
            "or ServerOnlyEncryption"
        )
    starttls = proxy_class.starttls and encryption is not None
    if starttls and not isinstance(encryption, TwoSidedEncryption):
        raise PolicyError(
            f"service {name!r}: {proxy_class.__name__} applies encryption at its STARTTLS "
            "command, on both sides: TwoSidedEncryption"
        )
    if name in inst.services:
        raise PolicyError(f"service {name!r} is declared twice")
    svc = _Service(
        name,
        proxy_class,
        router,
        max_sessions,
        b.location(),
        max_sessions_per_client,
        None if max_new_sessions_per_client is None else float(max_new_sessions_per_client),
        encryption,
        EncryptionProxy if encryption is not None and not proxy_class.starttls else None,
    )
    inst.services[name] = svc
    return svc


def Listener(
    bindto: SockAddrInet,
    service: str,
    transparent: bool = True,
    intercept: object = None,
    backlog: int = 511,
    redirect: bool = False,
) -> _Listener:
    """Declare a listener of the current instance.

    ``intercept`` names the destination ports a transparent listener diverts
    (a port, ``(low, high)``, ``"low:high"`` or a list of them); by default the
    proxy class's own (HTTP 80, FTP 21, TLS 443). ``redirect=True`` is for
    connections that a NAT ``REDIRECT`` rule (written by hand) sends instead
    of TPROXY: the original destination is read from conntrack.
    """
    b = loader.current_builder("Listener")
    inst = b.current_instance("Listener")
    if not isinstance(bindto, SockAddrInet):
        raise PolicyError("Listener: the first argument must be SockAddrInet(host, port)")
    if bindto.port == 0:
        raise PolicyError("Listener: port 0 is not a listening port")
    if not isinstance(service, str):
        raise PolicyError("Listener: the service must be given by name")
    if intercept is None:
        svc = inst.services.get(service)
        default = getattr(svc.proxy_class, "default_ports", ()) if svc else ()
        ports = _ports(list(default), "intercept") if transparent else ()
    else:
        if not transparent:
            raise PolicyError("Listener: intercept= only applies to a transparent listener")
        ports = _ports(intercept, "intercept")
    if not isinstance(backlog, int) or backlog < 1:
        raise PolicyError("Listener: backlog must be a positive integer")
    if redirect and not transparent:
        raise PolicyError("Listener: redirect= only applies to a transparent listener")
    if redirect and intercept is not None:
        raise PolicyError("Listener: a redirect listener intercepts nothing itself (NAT does)")
    if redirect:
        ports = ()
    lst = _Listener(
        bindto, service, bool(transparent), ports, backlog, bool(redirect), b.location()
    )
    inst.listeners.append(lst)
    return lst


def LocalService(
    name: str, ports: object, zones: Iterable[str], protocol: str = "tcp"
) -> _LocalService:
    """Declare a service of the firewall host itself, open from ``zones``.

    A zone's admin children inherit access; an umbrella zone cuts it off.
    """
    b = loader.current_builder("LocalService")
    if protocol not in ("tcp", "udp"):
        raise PolicyError(f"local service {name!r}: protocol must be 'tcp' or 'udp'")
    zone_names = _names(zones, f"local service {name!r} zones", "zone")
    svc = _LocalService(
        name, _ports(ports, f"local service {name!r}"), zone_names, protocol, b.location()
    )
    b.add_local_service(svc)
    return svc


def InstanceOptions(
    max_sessions: int = 10000,
    shutdown_grace: float = 30.0,
    headroom: float = 0.1,
    yield_idle: float = 10.0,
    workers: int = 1,
) -> _InstanceOptions:
    """Set limits and the worker processes of the current instance (inside its function).

    ``headroom``: the share of each limit (the instance's ``max_sessions``, each
    service's) kept for the addresses other than the busiest one; from there on the
    address holding the most sessions yields (docs/policy.md). ``yield_idle``: seconds
    without traffic after which such a session may be closed to make room.
    ``workers``: processes sharing the listeners (``zfw run --workers`` wins)."""
    b = loader.current_builder("InstanceOptions")
    inst = b.current_instance("InstanceOptions")
    if inst.options is not None:
        raise PolicyError("InstanceOptions() is given twice")
    if not isinstance(max_sessions, int) or max_sessions < 1:
        raise PolicyError("InstanceOptions: max_sessions must be a positive integer")
    _positive(shutdown_grace, "InstanceOptions: shutdown_grace")
    _positive(yield_idle, "InstanceOptions: yield_idle")
    inst.options = _InstanceOptions(
        max_sessions, float(shutdown_grace), headroom, float(yield_idle), workers
    )
    return inst.options


_PF = _PacketFilterOptions()


def PacketFilter(
    tproxy_mark: int = _PF.tproxy_mark,
    tproxy_mask: int = _PF.tproxy_mask,
    route_table: int = _PF.route_table,
    log_prefix: str = _PF.log_prefix,
    quic: str = _PF.quic,
) -> _PacketFilterOptions:
    """Set the mark, mask and routing table of the generated packet filter, and how it
    refuses forwarded QUIC (``"reject"``: at once, so browsers use TCP; ``"drop"``)."""
    b = loader.current_builder("PacketFilter")
    for what, v in (("tproxy_mark", tproxy_mark), ("tproxy_mask", tproxy_mask)):
        if not isinstance(v, int) or not 0 < v <= 0xFFFFFFFF:
            raise PolicyError(f"PacketFilter: {what} must be a 32-bit number other than 0")
    if tproxy_mark & ~tproxy_mask:
        raise PolicyError("PacketFilter: tproxy_mark has bits outside tproxy_mask")
    if not isinstance(route_table, int) or not 1 <= route_table <= 252:
        raise PolicyError("PacketFilter: route_table must be a number from 1 to 252")
    if not isinstance(log_prefix, str) or not log_prefix.isidentifier() or len(log_prefix) > 12:
        raise PolicyError("PacketFilter: log_prefix must be a short identifier")
    if quic not in ("reject", "drop"):
        raise PolicyError("PacketFilter: quic must be 'reject' or 'drop'")
    opts = _PacketFilterOptions(tproxy_mark, tproxy_mask, route_table, log_prefix, quic)
    b.set_packet_filter(opts)
    return opts


@arguments(
    device=argument(_bridge.ifname(), "the bridge device"),
    client_ports=argument(_bridge.ifnames(), "its ports on the clients' side"),
    server_ports=argument(_bridge.ifnames(), "its ports on the servers' side"),
    mac=argument(_bridge.mac(), "the bridge's own MAC address (set it: ip link set ... address)"),
    addresses=argument(
        _bridge.interfaces(), "the bridge's own addresses in the bridged subnet (ARP, ND)"
    ),
    bridge_traffic=argument(
        _bridge.traffic(), "what bridges as it is; everything else no proxy takes is dropped"
    ),
)
class Bridge:
    """Run the firewall as a bridge (module level, once): the services' TCP between
    ``client_ports`` and ``server_ports`` goes to the proxies, the rest is dropped but
    for ARP, neighbour discovery, MLD, DHCP and ``bridge_traffic``."""

    def __init__(
        self,
        device: str,
        client_ports: Iterable[str],
        server_ports: Iterable[str],
        mac: str,
        addresses: Iterable[str],
        bridge_traffic: Iterable[str] = (),
    ):
        b = loader.current_builder("Bridge")
        both = set(client_ports) & set(server_ports)
        if both:
            raise PolicyError(f"Bridge: {sorted(both)[0]} is both a client and a server port")
        if device in {*client_ports, *server_ports}:
            raise PolicyError(f"Bridge: {device} is the bridge and one of its ports")
        self.value = _Bridge(
            device,
            tuple(client_ports),
            tuple(server_ports),
            mac.lower(),
            tuple(str(_ipaddress.ip_interface(a)) for a in addresses),
            tuple(_bridge.parse_traffic(t) for t in bridge_traffic),
            b.location(),
        )
        b.set_bridge(self.value)


def include_zones(path: str) -> None:
    """Pull in the zones declared in another file, relative to this one."""
    loader.include_zones(loader.current_builder("include_zones"), path)
