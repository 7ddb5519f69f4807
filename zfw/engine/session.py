"""Sessions: one accepted client connection and what the engine decided for it."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import UserError
from twisted.python.failure import Failure

from zfw import net
from zfw.engine.decision import Address, Decision, decide_server, plain_host
from zfw.engine.endpoint import ConnectFactory, Endpoint
from zfw.engine.fair import Pool, Refusal, client_key, make_room, threshold
from zfw.engine.idle import IdleWatch
from zfw.log import LineWriter, Log
from zfw.model import InstanceOptions, Listener, Policy, Service
from zfw.policytable import CallbackError
from zfw.stats import ServiceStats


class Session:
    """A client connection on its way through a proxy.

    Its id (``instance/service:serial``) starts every log line about it.
    """

    def __init__(
        self,
        sid: str,
        service: Service,
        listener: Listener,
        client: Address,
        destination: Address,
        decision: Decision,
        log: Log,
        reactor: Any,
        on_close: Callable[[Session], None],
        idle_watch: IdleWatch | None = None,
        policy: Policy | None = None,
        stats: ServiceStats | None = None,
    ):
        self.id = sid
        self.service = service
        self.listener = listener
        self.client = client
        self.destination = destination
        self.decision = decision
        self.reactor = reactor
        self.idle_watch = idle_watch
        #: The policy the session was admitted under (in-band decisions use it).
        self.policy = policy
        self.started = time.monotonic()
        self._log = log
        self._on_close = on_close
        self._at_close: list[Callable[[], object]] = []
        self.closed = False
        self._attempts: list[net.Attempt] = []
        #: The counters of the session's service (a proxy adds its own with ``count``).
        self.stats = stats if stats is not None else ServiceStats(service.name)
        #: The proxy serving the session (``zfw sessions`` asks it for its state).
        self.proxy: Any = None
        #: Every connection of the session, for its byte counts.
        self.endpoints: list[Endpoint] = []
        #: What the encryption layer found (version, cipher, verification), for the
        #: proxy inside: None when the session is not decrypted.
        self.tls: dict[str, object] | None = None
        #: Whom the session counts for near a limit and in per-client caps: the client's
        #: address (IPv6: its /64).
        self.who = client_key(client[0])
        #: (bytes moved, when first seen so): whether it is idle, near a limit.
        self.yield_mark: tuple[int, float] = (0, self.started)

    def track(self, ep: Endpoint) -> Endpoint:
        """Count ``ep``'s bytes as this session's (the engine and connect_server do it
        for the client and the servers; FTP data channels for theirs)."""
        self.endpoints.append(ep)
        return ep

    def abort(self) -> None:
        """Drop the session now: give up its connection attempts and abort every
        connection it has. The proxy hears of each as lost (or failed) and ends the
        session as it would otherwise."""
        for attempt in self._attempts:
            attempt.cancel()
        for ep in self.endpoints:
            if not ep.lost:
                ep.abort()

    def traffic(self) -> tuple[int, int]:
        """Bytes received so far from the client side and from the server side."""
        from_client = from_server = 0
        for ep in self.endpoints:
            if ep.side == "client":
                from_client += ep.received
            else:
                from_server += ep.received
        return from_client, from_server

    @property
    def client_zone(self) -> str:
        """Name of the client's zone."""
        return self.decision.client_zone.name if self.decision.client_zone else "-"

    @property
    def server_zone(self) -> str:
        """Name of the server's zone."""
        return self.decision.server_zone.name if self.decision.server_zone else "-"

    def log(self, tag: str, level: int, message: str, **fields: object) -> None:
        """Log with this session's id."""
        self._log(tag, level, message, self.id, **fields)

    def log_writer(self, tag: str, level: int) -> LineWriter | None:
        """A fast writer of this session's ``tag`` lines at ``level`` (None: that level
        is off); see :meth:`zfw.log.Log.writer`."""
        return self._log.writer(tag, level, self.id)

    def policy_failed(self, what: str, exc: BaseException) -> None:
        """Policy code (``config()``, a table's POLICY function, a callback) raised, or a
        POLICY function answered what its table cannot act on: one line that names the
        policy's file and line (a POLICY function's own), at most once per 10 s for that
        line, never a traceback per connection; counted as ``policy_failures``. The
        caller refuses what it was doing."""
        self.stats.count("policy_failures")
        files = self.policy.files if self.policy is not None else ()
        if isinstance(exc, CallbackError):
            where = exc.where
            cause = exc.__cause__
            at = f" (at {policy_location(cause, files)})" if cause is not None else ""
            message = f"{where}: {exc}{at}; refused"
        else:
            where = policy_location(exc, files)
            message = f"{where}: {what} raised {type(exc).__name__}: {exc}; refused"
        self._log.limited(where, "core.policy", 1, message, self.id)

    def log_enabled(self, tag: str, level: int) -> bool:
        """Whether a message at ``level`` for ``tag`` would be written."""
        return self._log.enabled(tag, level)

    def connect_server(
        self,
        timeout: float,
        on_connected: Callable[[Endpoint], object],
        on_failed: Callable[[Failure], object],
        decision: Decision | None = None,
    ) -> net.Attempt:
        """Connect to the routed target, from the forged source if the router says so
        (``decision``: one from :meth:`decide_server` instead of the session's).

        Returns the attempt (``cancel()`` gives up; ``on_failed`` hears of it), which
        :meth:`abort` cancels too.
        """
        decision = decision or self.decision
        target = decision.target
        assert target is not None

        def connected(ep: Endpoint) -> object:
            return on_connected(self.track(ep))

        def failed(reason: Failure) -> object:
            if not reason.check(UserError):  # (not the proxy giving up the attempt)
                self.stats.connect_failures += 1
            return on_failed(reason)

        return self.connect(target, ConnectFactory(connected, failed), decision.source, timeout)

    def connect(
        self,
        target: Address,
        factory: Any,
        source: Address | None,
        timeout: float,
    ) -> net.Attempt:
        """Connect to ``target`` (from ``source``) for this session, which
        :meth:`abort` gives up on while it is pending (FTP's data channels use it)."""
        attempt = net.connect(
            self.reactor, target[0], target[1], factory, source=source, timeout=timeout
        )
        self._attempts = [a for a in self._attempts if a.pending]
        self._attempts.append(attempt)
        return attempt

    def decide_server(self, server: Address) -> Decision:
        """The zone decision on a server the client named in-band (InbandRouter)."""
        czone = self.decision.client_zone
        if self.policy is None or czone is None:
            return Decision(False, "no policy to decide an in-band server with")
        client = (plain_host(self.client[0]), self.client[1])
        return decide_server(self.policy, self.service, client, server, czone)

    def at_close(self, release: Callable[[], object]) -> None:
        """Call ``release`` when the session closes: for what a proxy holds that the
        proxy it handed the session to may never use (a server opened in advance)."""
        self._at_close.append(release)

    def close(self) -> None:
        """The session is over: release what was registered, free its slot (once)."""
        if not self.closed:
            self.closed = True
            for release in self._at_close:
                release()
            self._on_close(self)


#: Client addresses whose new-session rate is remembered at most (the idle ones go first).
MAX_RATE_ENTRIES = 100_000


class SessionTable:
    """Counts sessions per instance, per service and per client address of each (the
    pools of :mod:`zfw.engine.fair`), makes room near their limits, and hands out ids."""

    def __init__(self, instance: str, options: InstanceOptions):
        self.instance = instance
        self.options = options
        self.active: set[Session] = set()
        #: The instance's sessions by client address.
        self.pool: Pool[Session] = Pool()
        #: Each service's sessions by client address.
        self.services: dict[str, Pool[Session]] = {}
        #: (service, client address) -> (tokens, when): new sessions a second.
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._serial = 0
        self._drained: list[Deferred[None]] = []

    def running(self, service: str) -> int:
        """Sessions of ``service`` running."""
        pool = self.services.get(service)
        return pool.total if pool is not None else 0

    def make_room(
        self, service: Service, address: str, now: float, evict: Callable[[Session, str], None]
    ) -> Refusal | None:
        """Whether a session of ``service`` from ``address`` may start (None) or why not.
        Near a limit, sessions of the busiest address that may yield are handed to
        ``evict`` (with the reason) first, which must close them."""
        opts = self.options
        pools = (
            (self.pool, opts.max_sessions, None),
            (self.services.get(service.name), service.max_sessions, service.name),
        )
        for pool, limit, name in pools:
            if pool is None or pool.total < threshold(limit, opts.headroom):
                continue  # the common case: room, nothing more to do
            what = f"instance {self.instance!r}" if name is None else f"service {name!r}"
            refusal, victim = make_room(
                pool, what, limit, opts.headroom, address, lambda s: self.may_yield(s, now)
            )
            if refusal is not None:
                return refusal
            if victim is not None:
                full = "at" if pool.total >= limit else "near"
                evict(victim, f"{what} is {full} its limit of {limit}: {address} needs room")
                if not victim.closed:  # (evict must close it; never count it twice)
                    victim.close()
        return None

    def may_yield(self, session: Session, now: float) -> bool:
        """Whether ``session`` may be closed to make room: its proxy says so (it is still
        opening: a handshake, its first bytes), or it moved no byte for ``yield_idle``
        seconds (counted from when it was last looked at while moving)."""
        proxy = session.proxy
        if proxy is not None and proxy.may_yield():
            return True
        moved = sum(session.traffic())
        seen, since = session.yield_mark
        if moved != seen:
            session.yield_mark = (moved, now)
            return False
        return now - since >= self.options.yield_idle

    def client_refuse_reason(
        self, service: Service, address: str, now: float, zone: Any = None
    ) -> str | None:
        """Why a new session of ``service`` from ``address`` (in ``zone``) must be refused
        by a fixed per-client cap (``max_sessions_per_client``,
        ``max_new_sessions_per_client``: none unless the policy sets them)."""
        limit = service.max_sessions_per_client
        rate = service.max_new_sessions_per_client
        if zone is not None:
            limit = _lower(limit, zone.max_sessions_per_client)
            rate = _lower(rate, zone.max_new_sessions_per_client)
        if limit is not None:
            pool = self.services.get(service.name)
            if pool is not None and pool.count(address) >= limit:
                return f"{limit} sessions of this address running (max_sessions_per_client)"
        if rate is None:
            return None
        key = (service.name, address)
        tokens, when = self._buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - when) * rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return f"more than {rate:g} new sessions a second (max_new_sessions_per_client)"
        if key not in self._buckets and len(self._buckets) >= MAX_RATE_ENTRIES:
            self._forget_idle(now)
        self._buckets[key] = (tokens - 1, now)
        return None

    def _forget_idle(self, now: float) -> None:
        """Drop the rate state of addresses quiet for a while (their buckets are full)."""
        quiet = [k for k, (_t, when) in self._buckets.items() if now - when > 10]
        for k in quiet or list(self._buckets)[: MAX_RATE_ENTRIES // 2]:
            del self._buckets[k]

    def next_id(self, service: Service) -> str:
        """A new session id, ``instance/service:serial``."""
        self._serial += 1
        return f"{self.instance}/{service.name}:{self._serial}"

    def add(self, session: Session) -> None:
        """Count a new session."""
        self.active.add(session)
        address = session.who
        self.pool.add(address, session)
        name = session.service.name
        pool = self.services.get(name)
        if pool is None:
            pool = self.services[name] = Pool()
        pool.add(address, session)

    def remove(self, session: Session) -> None:
        """Forget a finished session."""
        self.active.discard(session)
        address = session.who
        self.pool.remove(address, session)
        name = session.service.name
        pool = self.services[name]
        pool.remove(address, session)
        if not pool.total:
            del self.services[name]
        if not self.active:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def when_empty(self) -> Deferred[None]:
        """Fires when no session is left."""
        d: Deferred[None] = Deferred()
        if not self.active:
            d.callback(None)
        else:
            self._drained.append(d)
        return d


def _lower(a: Any, b: Any) -> Any:
    """The lower of two optional limits (None: none)."""
    return b if a is None else a if b is None else min(a, b)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def policy_location(exc: BaseException, files: tuple[str, ...] = ()) -> str:
    """``file:line`` of the innermost frame of ``exc`` in a policy file (one of
    ``files``), else the innermost outside zfw itself; an error that names its own
    place (``where``: a wrong option blames ``config()``) gives that."""
    where = getattr(exc, "where", None)
    if isinstance(where, str):
        return where
    found = outside = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if name in files:
            found = f"{name}:{lineno}"
        elif not name.startswith(_PACKAGE_DIR):
            outside = f"{name}:{lineno}"
    return found or outside or "policy"


def describe_failure(reason: Failure) -> str:
    """A short text for a connection failure."""
    value = reason.value
    text = getattr(value, "osError", None) or str(value) or type(value).__name__
    if isinstance(text, int):
        text = os.strerror(text)
    return str(text).strip().rstrip(".")
