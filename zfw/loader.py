"""Load a policy file into one immutable :class:`~zfw.model.Policy`.

A policy file is Python. The declarations in it (``InetZone``, ``Service``,
``Listener``, ...) record themselves into the :class:`PolicyBuilder` of the
load in progress, found through a context variable that is set only while
the loader runs, so two loads never share state. Every mistake becomes a
:class:`~zfw.errors.PolicyError` that names the file and line.
"""

from __future__ import annotations

import builtins
import contextvars
import ctypes
import os
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType

import attrs

from zfw.addr import binds_clash
from zfw.errors import PolicyError
from zfw.model import (
    Bridge,
    InbandRouter,
    Instance,
    InstanceOptions,
    Listener,
    LocalService,
    PacketFilterOptions,
    Policy,
    Service,
    TransparentRouter,
)
from zfw.policyfiles import NamedFiles, recording
from zfw.proxycheck import check_proxy_config
from zfw.zones import INBOUND, OUTBOUND, WILDCARD, Location, Zone, ZoneTable

#: Receives each line the policy prints, with the policy line that printed it.
Output = Callable[[Location, str], None]


def _to_stderr(_where: Location, line: str) -> None:
    print(line, file=sys.stderr)


_current: contextvars.ContextVar[PolicyBuilder | None] = contextvars.ContextVar(
    "zfw_policy_builder", default=None
)


@attrs.define
class _InstanceBuilder:
    name: str
    location: Location | None
    services: dict[str, Service] = attrs.Factory(dict)
    listeners: list[Listener] = attrs.Factory(list)
    options: InstanceOptions | None = None


@attrs.define
class PolicyBuilder:
    """What one load of a policy has declared so far."""

    path: str
    files: set[str] = attrs.Factory(set)
    zones: list[Zone] = attrs.Factory(list)
    local_services: list[LocalService] = attrs.Factory(list)
    packet_filter: PacketFilterOptions | None = None
    bridge: Bridge | None = None
    instance: _InstanceBuilder | None = None
    including: bool = False
    warnings: list[str] = attrs.Factory(list)
    output: Output = _to_stderr
    printing: str = ""  # a printed line not ended yet

    def print(
        self, *args: object, sep: str | None = " ", end: str | None = "\n", **kw: object
    ) -> None:
        """The policy's ``print()``: what it prints to standard output goes to ``output``
        a line at a time (never onto ``zfw check --json``'s stdout, nor twistd's)."""
        if kw.get("file") not in (None, sys.stdout):
            builtins.print(*args, sep=sep, end=end, **kw)  # type: ignore[call-overload]
            return
        text = (" " if sep is None else sep).join(map(str, args)) + ("\n" if end is None else end)
        *lines, self.printing = (self.printing + text).split("\n")
        where = self.location()
        for line in lines:
            self.output(where, line)

    def location(self) -> Location:
        """The policy-file line that made the declaration being recorded."""
        frame = sys._getframe(2)
        first = None
        while frame is not None:
            fn = frame.f_code.co_filename
            if first is None and not fn.startswith(_PACKAGE_DIR):
                first = Location(fn, frame.f_lineno)
            if fn in self.files:
                return Location(fn, frame.f_lineno)
            frame = frame.f_back
        return first or Location(self.path, None)

    def add_zone(self, zone: Zone) -> None:
        """Record a zone (module level or an included zones file)."""
        if self.instance is not None:
            raise PolicyError("InetZone() belongs at module level, not inside an instance")
        if any(z.name == zone.name for z in self.zones):
            raise PolicyError(f"zone {zone.name!r} is declared twice")
        self.zones.append(zone)

    def add_local_service(self, svc: LocalService) -> None:
        """Record a service of the firewall host itself."""
        if self.instance is not None:
            raise PolicyError("LocalService() belongs at module level, not inside an instance")
        if any(s.name == svc.name for s in self.local_services):
            raise PolicyError(f"local service {svc.name!r} is declared twice")
        self.local_services.append(svc)

    def set_packet_filter(self, options: PacketFilterOptions) -> None:
        """Record the packet filter options (once, at module level)."""
        if self.instance is not None or self.including:
            raise PolicyError("PacketFilter() belongs at module level of the policy file")
        if self.packet_filter is not None:
            raise PolicyError("PacketFilter() is given twice")
        self.packet_filter = options

    def set_bridge(self, bridge: Bridge) -> None:
        """Record the bridge (once, at module level)."""
        if self.instance is not None or self.including:
            raise PolicyError("Bridge() belongs at module level of the policy file")
        if self.bridge is not None:
            raise PolicyError("Bridge() is given twice: zfw runs one bridge")
        self.bridge = bridge

    def current_instance(self, what: str) -> _InstanceBuilder:
        """The instance being declared; ``what`` names the caller for errors."""
        if self.instance is None:
            raise PolicyError(
                f"{what}() belongs inside an instance function (def NAME(): ...), "
                "not at module level"
            )
        return self.instance


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def current_builder(what: str) -> PolicyBuilder:
    """The builder of the load in progress, or a clear error outside one."""
    b = _current.get()
    if b is None:
        raise PolicyError(f"{what}() is only valid in a policy file that zfw loads")
    return b


#: Seconds a policy may take to load (its module code and instance functions).
LOAD_TIME_LIMIT = 30.0


class _TooSlow(Exception):
    """Raised into policy code that runs past the load time limit."""

    limit: float = LOAD_TIME_LIMIT

    def __str__(self) -> str:
        return f"the policy did not finish loading within {self.limit:g} s"


def load_policy(
    path: str,
    instance: str | None = None,
    time_limit: float | None = LOAD_TIME_LIMIT,
    output: Output = _to_stderr,
) -> Policy:
    """Load and check the policy at ``path``; choose ``instance`` if given.

    Raises :class:`PolicyError` (``file:line: message``) for any mistake; a
    policy is either loaded whole or not at all. Policy code that runs longer
    than ``time_limit`` seconds is interrupted where it is (a SIGALRM timer on
    the main thread, elsewhere an exception raised in the loading thread:
    :func:`_deadline`). What the policy prints
    goes to ``output`` (default: standard error). Relative paths the policy
    names (certificates, CAs) start from the policy file's directory.
    """
    path = os.path.abspath(path)
    builder = PolicyBuilder(path, output=output)
    named = NamedFiles(os.path.dirname(path), builder.location)
    token = _current.set(builder)
    try:
        with _deadline(time_limit), recording(named):
            namespace = _exec_file(builder, path)
            instances = _run_instances(builder, path, namespace)
            policy = _finish(builder, path, instances, instance)
            policy = attrs.evolve(policy, named_files=tuple(named.named))
            if builder.printing:
                builder.print()
    except _TooSlow as e:  # outside policy code (zfw's own checks ran past the limit)
        raise PolicyError(str(e), path) from None
    finally:
        _current.reset(token)
    return policy


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt the policy code running in this thread after ``seconds``: SIGALRM on
    the main thread; elsewhere (a reload off the reactor thread) an exception the
    interpreter raises in the thread at its next Python instruction."""
    if not seconds:
        yield
        return

    class TooSlow(_TooSlow):
        limit = seconds

    if threading.current_thread() is threading.main_thread():

        def expired(_signum: int, _frame: object) -> None:
            raise TooSlow

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    ident = threading.get_ident()
    lock = threading.Lock()
    state = {"running": True}

    def expire() -> None:
        with lock:
            if state["running"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(TooSlow)
                )

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["running"] = False
        timer.cancel()


def include_zones(builder: PolicyBuilder, relpath: str) -> None:
    """Execute a zones file, relative to the file that includes it."""
    here = builder.location().filename
    target = os.path.normpath(os.path.join(os.path.dirname(here), relpath))
    if target in builder.files:
        raise PolicyError(f"{relpath} is included twice")
    if not os.path.isfile(target):
        raise PolicyError(f"include_zones: no such file {target}")
    if builder.instance is not None:
        raise PolicyError("include_zones() belongs at module level, not inside an instance")
    was, builder.including = builder.including, True
    try:
        _exec_file(builder, target)
    finally:
        builder.including = was


def _exec_file(builder: PolicyBuilder, path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise PolicyError(f"cannot read policy: {e.strerror}", path) from None
    builder.files.add(path)
    try:
        # From bytes, as Python reads a module: a PEP 263 coding line or a UTF-8 BOM counts.
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise PolicyError(f"syntax error: {e.msg}", e.filename or path, e.lineno) from None
    except ValueError as e:  # a NUL byte
        raise PolicyError(f"not a Python file: {e}", path) from None
    namespace: dict[str, object] = {
        "__name__": "zfw_policy",
        "__file__": path,
        "print": builder.print,
    }
    with _user_errors(builder):
        exec(code, namespace)
    return namespace


@contextmanager
def _user_errors(builder: PolicyBuilder, what: str = "") -> Iterator[None]:
    """Turn any exception raised by policy code into a located PolicyError
    (``what``: what was running, as a prefix of the message)."""
    try:
        yield
    except PolicyError as e:
        if e.filename is None:
            loc = _policy_frame(builder, e.__traceback__)
            raise e.located(loc.filename, loc.lineno) from None
        raise
    except _TooSlow as e:
        loc = _policy_frame(builder, e.__traceback__)
        raise PolicyError(str(e), loc.filename, loc.lineno) from None
    except SystemExit as e:
        loc = _policy_frame(builder, e.__traceback__)
        raise PolicyError(
            f"the policy called sys.exit({'' if e.code is None else repr(e.code)})",
            loc.filename,
            loc.lineno,
        ) from None
    except Exception as e:
        loc = _policy_frame(builder, e.__traceback__)
        raise PolicyError(f"{what}{type(e).__name__}: {e}", loc.filename, loc.lineno) from None


def _policy_frame(builder: PolicyBuilder, tb: types.TracebackType | None) -> Location:
    """The innermost traceback frame that lies in a policy file."""
    found = Location(builder.path, None)
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename in builder.files:
            found = Location(frame.f_code.co_filename, lineno)
    return found


def _instance_functions(path: str, namespace: dict[str, object]) -> dict[str, types.FunctionType]:
    """Public no-argument functions defined in the policy file: the instances."""
    found = {}
    for name, obj in namespace.items():
        if not isinstance(obj, types.FunctionType) or name.startswith("_"):
            continue
        code = obj.__code__
        if code.co_filename != path:
            continue
        required = code.co_argcount + code.co_kwonlyargcount - len(obj.__defaults__ or ())
        required -= len(obj.__kwdefaults__ or {})
        if required == 0:
            found[name] = obj
    return found


def _run_instances(
    builder: PolicyBuilder, path: str, namespace: dict[str, object]
) -> dict[str, Instance]:
    instances = {}
    for name, func in _instance_functions(path, namespace).items():
        loc = Location(path, func.__code__.co_firstlineno)
        builder.instance = _InstanceBuilder(name, loc)
        try:
            with _user_errors(builder):
                func()
            ib = builder.instance
        finally:
            builder.instance = None
        if not ib.listeners:
            builder.warnings.append(f"{loc}: instance {name!r} declares no listener")
        instances[name] = Instance(
            name,
            MappingProxyType(dict(ib.services)),
            tuple(ib.listeners),
            ib.options or InstanceOptions(),
            loc,
        )
    return instances


def _finish(
    builder: PolicyBuilder, path: str, instances: dict[str, Instance], chosen: str | None
) -> Policy:
    if not instances and not builder.zones and not builder.local_services:
        raise PolicyError(
            "the policy declares nothing: no zone, and no instance function "
            "(def NAME(): with Service() and Listener() in it)",
            path,
        )
    zones = ZoneTable.build(builder.zones)
    parents = {z.admin_parent for z in zones}
    for z in zones.unmatched():
        if z.name not in parents:  # an admin parent may exist only to pass on its services
            raise _error(
                z.location,
                f"zone {z.name!r} can never match an address: every address in it "
                "belongs to a more specific zone",
            )
    services: dict[str, Service] = {}
    for inst in instances.values():
        for svc in inst.services.values():
            if svc.name in services:
                raise _error(svc.location, f"service {svc.name!r} is declared twice")
            services[svc.name] = svc
        for lst in inst.listeners:
            if lst.service not in inst.services:
                raise _error(
                    lst.location, f"listener {lst.address} names unknown service {lst.service!r}"
                )
            router = inst.services[lst.service].router
            if not lst.transparent and isinstance(router, TransparentRouter):
                raise _error(
                    lst.location,
                    f"non-transparent listener {lst.address}: service {lst.service!r} needs a "
                    "DirectedRouter or an InbandRouter (there is no original destination)",
                )
            if lst.transparent and isinstance(router, InbandRouter):
                raise _error(
                    lst.location,
                    f"listener {lst.address}: service {lst.service!r} routes in-band; "
                    "clients must connect to it directly (transparent=False)",
                )
            if lst.tproxy and not lst.intercept:
                builder.warnings.append(
                    f"{lst.location}: listener {lst.address} intercepts no port: "
                    "the generated packet filter diverts nothing to it"
                )
    _check_binds(instances)
    _check_workers(instances)
    _check_intercepts(zones, instances)
    for svc in services.values():
        what = f"service {svc.name!r}: {svc.proxy_class.__name__}.config() failed: "
        with _user_errors(builder, what):
            check_proxy_config(svc)
    _check_unpermitted(builder, zones, services)
    local_names = {s.name for s in builder.local_services}
    for z in zones:
        for svc_name in (*z.inbound_services, *z.outbound_services):
            if svc_name != WILDCARD and svc_name not in services:
                hint = " (a LocalService names its zones itself)" if svc_name in local_names else ""
                raise _error(
                    z.location, f"zone {z.name!r} names unknown service {svc_name!r}{hint}"
                )
    for ls in builder.local_services:
        if ls.name in services:
            raise _error(ls.location, f"{ls.name!r} is both a service and a local service")
        for zn in ls.zones:
            if zn not in zones.zones:
                raise _error(ls.location, f"local service {ls.name!r} names unknown zone {zn!r}")
    if chosen is not None and chosen not in instances:
        known = ", ".join(sorted(instances)) or "none"
        raise PolicyError(f"unknown instance {chosen!r} (instances: {known})", path)
    return Policy(
        path=path,
        zones=zones,
        instances=MappingProxyType(instances),
        local_services=tuple(builder.local_services),
        packet_filter=builder.packet_filter or PacketFilterOptions(),
        bridge=builder.bridge,
        instance_name=chosen,
        warnings=tuple(builder.warnings),
        files=tuple(sorted(builder.files)),
    )


def _check_workers(instances: dict[str, Instance]) -> None:
    """An instance of several workers has no service that needs one (FTP)."""
    from zfw.workers.limits import one_worker_only, one_worker_reason

    for inst in instances.values():
        svc = one_worker_only(inst) if inst.options.workers > 1 else None
        if svc is not None:
            raise _error(
                svc.location,
                f"instance {inst.name!r} has {inst.options.workers} "
                f"workers, but {one_worker_reason(svc)}",
            )


def _check_binds(instances: dict[str, Instance]) -> None:
    """No two listeners of the policy, in one instance or two, may bind the same address
    and port (a wildcard clashes with every address of its family): the second could not
    open."""
    seen: list[tuple[Listener, str]] = []
    for inst in instances.values():
        for lst in inst.listeners:
            here = (lst.address.host, lst.address.port)
            for other, where in seen:
                if binds_clash(here, (other.address.host, other.address.port)):
                    raise _error(
                        lst.location,
                        f"listener {lst.address} clashes with {other.address} at "
                        f"{other.location}{where}: both cannot listen at once",
                    )
            seen.append((lst, "" if len(instances) < 2 else f" (instance {inst.name!r})"))


def _check_unpermitted(
    builder: PolicyBuilder, zones: ZoneTable, services: dict[str, Service]
) -> None:
    """Warn of a service no zone permits: no session could ever pass it (not in a
    policy without zones, a fragment for tests: there every service is so)."""
    for svc in services.values() if len(zones) else ():
        for direction, where, option in (
            (OUTBOUND, "out of", "outbound_services"),
            (INBOUND, "into", "inbound_services"),
        ):
            if not any(zones.permits(z, svc.name, direction) for z in zones):
                builder.warnings.append(
                    f"{svc.location or builder.path}: service {svc.name!r} is permitted "
                    f"{where} no zone (no {option} names it): it refuses every session"
                )
                break


def _check_intercepts(zones: ZoneTable, instances: dict[str, Instance]) -> None:
    """Two transparent listeners must not divert the same port for the same traffic:
    the packet filter would send it all to the first, and the second never sees any."""
    listeners = [
        (lst, inst.services[lst.service])
        for inst in instances.values()
        for lst in inst.listeners
        if lst.tproxy
    ]
    for i, (a, sa) in enumerate(listeners):
        for b, sb in listeners[:i]:
            if a.address.host and b.address.host and a.address.family != b.address.family:
                continue
            ports = [
                p
                for p in a.intercept
                if any(p.low <= q.high and q.low <= p.high for q in b.intercept)
            ]
            if not ports:
                continue
            shared = [
                (c.name, s.name)
                for c in zones
                if zones.permits(c, sa.name, OUTBOUND) and zones.permits(c, sb.name, OUTBOUND)
                for s in zones
                if zones.permits(s, sa.name, INBOUND) and zones.permits(s, sb.name, INBOUND)
            ]
            if shared:
                client, server = shared[0]
                raise _error(
                    a.location,
                    f"listener {a.address} intercepts port {ports[0]}, as the one at "
                    f"{b.location} does, for traffic both services may carry (zone "
                    f"{client!r} to {server!r}): only the first would ever receive it",
                )


def _error(loc: Location | None, message: str) -> PolicyError:
    return PolicyError(message, loc.filename if loc else None, loc.lineno if loc else None)


__all__ = ["PolicyBuilder", "current_builder", "include_zones", "load_policy"]
