"""The engine of one instance: its listeners, admission and reloads."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from zfw import net
from zfw.addr import binds_clash
from zfw.engine.decision import decide
from zfw.engine.endpoint import Endpoint
from zfw.engine.fair import client_key
from zfw.engine.idle import IdleWatch
from zfw.engine.session import Session, SessionTable
from zfw.errors import NetError
from zfw.log import Log
from zfw.model import Instance, Listener, Policy
from zfw.stats import RATE_INTERVAL, InstanceStats

ListenKey = tuple[str, int, bool]


def _closed(ports: list[Any]) -> Deferred[None]:
    """Stop listening on ``ports``; fires once their sockets are closed."""
    ds = [d for d in (p.stopListening() for p in ports) if d is not None]
    return gatherResults(ds).addCallback(lambda _: None)


def _raise(_: object, error: Exception) -> None:
    raise error


def listen_keys(listener: Listener) -> list[ListenKey]:
    """The sockets a listener needs: ``''`` means both 0.0.0.0 and ::."""
    hosts = ["0.0.0.0", "::"] if listener.address.host == "" else [listener.address.host]
    return [(h, listener.address.port, listener.tproxy) for h in hosts]


def transparency_needed(instance: Instance) -> str | None:
    """What in ``instance`` needs transparent sockets (IP_TRANSPARENT, so CAP_NET_ADMIN),
    or None: plain listeners connecting from zfw's own address need no capability."""
    for lst in instance.listeners:
        if lst.tproxy:
            return f"listener {lst.address} is transparent"
    for svc in instance.services.values():
        if getattr(svc.router, "forge_addr", False):
            return f"service {svc.name!r} connects from the client's address (forge_addr)"
        if svc.proxy_class.transparent_data:
            name = svc.proxy_class.__name__
            return f"service {svc.name!r} is {name}, whose data channels listen transparently"
    return None


class ListenerFactory(Factory):
    """Accepts connections for one listener socket."""

    noisy = False

    def __init__(self, engine: Engine, listener: Listener):
        self.engine = engine
        self.listener = listener

    def buildProtocol(self, addr: Any) -> Endpoint:
        ep = Endpoint("client")
        ep.on_made = self._accepted
        return ep

    def _accepted(self, ep: Endpoint) -> None:
        self.engine.accept(ep, self.listener)


class Engine:
    """Runs the chosen instance of a policy."""

    def __init__(self, policy: Policy, log: Log, reactor: Any):
        self.policy = policy
        self.log = log
        self.reactor = reactor
        inst = policy.instance
        self.sessions = SessionTable(inst.name, inst.options)
        self.ports: dict[ListenKey, tuple[Any, ListenerFactory]] = {}
        self.accepting = False
        self.idle = IdleWatch(reactor)
        self.stats = InstanceStats()
        self._ticker: Any = None
        #: Listen key -> (fd, family) of sockets a supervisor opened (in a worker).
        self.inherited: dict[ListenKey, tuple[int, int]] = {}

    # --- listeners -----------------------------------------------------------------------

    def start(self) -> None:
        """Open every listener of the instance; raise NetError if one cannot."""
        self.accepting = True
        try:
            for lst in self.policy.instance.listeners:
                self._open(lst)
        except NetError:
            self.stop_listening()
            raise
        self._tick()

    def _tick(self) -> None:
        self.stats.tick()
        self._ticker = self.reactor.callLater(RATE_INTERVAL, self._tick)

    def _open(self, lst: Listener) -> None:
        for key in listen_keys(lst):
            self._listen(key, lst)

    def _listen(self, key: ListenKey, lst: Listener) -> None:
        host, port, transparent = key
        factory = ListenerFactory(self, lst)
        shared = self.inherited.get(key)
        if shared is not None:
            p = net.adopt(self.reactor, shared[0], shared[1], factory)
        else:
            p = net.listen(self.reactor, host, port, factory, transparent, lst.backlog)
        self.ports[key] = (p, factory)
        what = "transparent" if transparent else "redirect" if lst.redirect else "plain"
        self.log(
            "core.listener",
            3,
            f"listening on {net.fmt_addr(host, port)} ({what}) for service {lst.service!r}",
        )

    def stop_listening(self) -> list[Deferred[None]]:
        """Close every listening socket; running sessions go on."""
        self.accepting = False
        if self._ticker is not None and self._ticker.active():
            self._ticker.cancel()
        ds = [p.stopListening() for p, _f in self.ports.values()]
        self.ports.clear()
        return [d for d in ds if d is not None]

    def reload(self, policy: Policy) -> Deferred[None]:
        """Switch to a new policy in one step: its new listeners open first, then the
        ones it drops close; unchanged ones are kept; sessions go on. Fails (NetError,
        ``file:line: why``) with nothing changed when a new listener cannot open."""
        wanted = {k: lst for lst in policy.instance.listeners for k in listen_keys(lst)}
        added = {k: lst for k, lst in wanted.items() if k not in self.ports}
        # A dropped socket holding what an added one binds (the same port, transparent
        # now or not, an address for a wildcard) makes way first; it comes back on failure.
        aside = {
            k: self.ports.pop(k)
            for k in [k for k in self.ports if k not in wanted]
            if any(binds_clash(k[:2], a[:2]) for a in added)
        }
        for key in aside:
            self.log(
                "core.listener", 3, f"stopped listening on {net.fmt_addr(*key[:2])} (making way)"
            )
        d = _closed([p for p, _f in aside.values()])
        d.addCallback(lambda _: self._open_all(added))

        def failed(reason: Failure) -> Failure:
            for key, (_p, factory) in aside.items() if self.accepting else ():
                try:
                    self._listen(key, factory.listener)
                except NetError as e:
                    self.log("core.error", 1, f"listener {factory.listener.address} lost: {e}")
            return reason

        d.addCallbacks(lambda _: self._switch(policy, wanted), failed)
        return d

    def _open_all(self, added: dict[ListenKey, Listener]) -> Deferred[None] | None:
        """Open ``added``; if one cannot, close those just opened and fail (NetError)."""
        if not self.accepting:  # the drain began while dropped sockets made way
            raise NetError("the instance is stopping")
        opened: list[ListenKey] = []
        for key, lst in added.items():
            try:
                self._listen(key, lst)
            except NetError as e:
                error = NetError(f"{lst.location}: {e}" if lst.location else str(e))
                for k in opened:
                    self.log("core.listener", 3, f"stopped listening on {net.fmt_addr(*k[:2])}")
                d = _closed([self.ports.pop(k)[0] for k in opened])
                return d.addCallback(_raise, error)
            opened.append(key)
        return None

    def _switch(self, policy: Policy, wanted: dict[ListenKey, Listener]) -> None:
        for key in [k for k in self.ports if k not in wanted]:
            port, _f = self.ports.pop(key)
            port.stopListening()
            self.log("core.listener", 3, f"stopped listening on {net.fmt_addr(*key[:2])}")
        for key, (_p, factory) in self.ports.items():
            factory.listener = wanted[key]
        self.policy = policy
        self.sessions.options = policy.instance.options

    # --- sessions ------------------------------------------------------------------------

    def accept(self, ep: Endpoint, listener: Listener) -> None:
        """A client connected to ``listener``: decide, admit, start its proxy."""
        transport = ep.transport
        peer = transport.getPeer()
        client = (peer.host, peer.port)
        policy = self.policy
        service = policy.instance.services.get(listener.service)
        if service is None or not self.accepting:
            transport.abortConnection()
            return
        destination = net.original_destination(transport.getHandle(), listener.redirect)
        decision = decide(policy, listener, service, client, destination)
        stats = self.stats.service(service.name)
        if not decision.allowed:
            stats.refused_zone += 1
            self.log(
                "core.policy",
                1,
                f"denied {net.fmt_addr(*client)} -> {net.fmt_addr(*destination)}: "
                f"{decision.reason}",
                service=service.name,
            )
            transport.abortConnection()
            return
        who = client_key(client[0])  # (IPv6: the /64)
        refused = self.sessions.client_refuse_reason(
            service, who, self.reactor.seconds(), decision.client_zone
        )
        if refused:
            stats.refused_client += 1
            # One line per address and service every 10 s, however fast it tries.
            self.log.limited(
                f"client:{service.name}:{who}",
                "core.session",
                1,
                f"refused {who} for service {service.name!r}: {refused}",
            )
            transport.abortConnection()
            return
        refusal = self.sessions.make_room(service, who, time.monotonic(), self._evict)
        if refusal is not None:
            if refusal.kind == "fair":
                stats.refused_fair += 1
            else:
                stats.refused_limit += 1
            # Every one counted; one line per address and service every 10 s (the next
            # says how many were left out).
            self.log.limited(
                f"{refusal.kind}:{service.name}:{who}",
                "core.session",
                1,
                f"refused {net.fmt_addr(*client)} for service {service.name!r}: {refusal.reason}",
            )
            transport.abortConnection()
            return
        session = Session(
            self.sessions.next_id(service),
            service,
            listener,
            client,
            destination,
            decision,
            self.log,
            self.reactor,
            self._closed,
            self.idle,
            policy,
            stats,
        )
        session.track(ep)
        stats.total += 1
        self.sessions.add(session)
        if self.log.enabled("core.session", 4):
            target = decision.target
            server = "named in-band" if target is None else net.fmt_addr(*target)
            session.log(
                "core.session",
                4,
                f"start: {net.fmt_addr(*client)} ({session.client_zone}) -> "
                f"{net.fmt_addr(*destination)}, server {server} ({session.server_zone})",
            )
        try:
            session.proxy = proxy = (service.layer or service.proxy_class)(session)
            proxy.configure()
            proxy.start(ep)
        except Exception as e:  # policy code in config() may raise anything
            stats.refused_proxy += 1
            session.policy_failed(f"{service.proxy_class.__name__} start", e)
            ep.silence()  # a half-started proxy must not hear of the close it caused
            transport.abortConnection()
            session.close()

    def _evict(self, session: Session, why: str) -> None:
        """Close ``session`` to make room for another address (zfw.engine.fair)."""
        session.stats.evicted += 1
        state = session.proxy.state() if session.proxy is not None else ""
        session.log(
            "core.session",
            1,
            f"closed to make room: {why}; {net.fmt_addr(*session.client)} holds the most "
            f"sessions" + (f" ({state})" if state else ""),
        )
        session.abort()
        session.close()

    def _closed(self, session: Session) -> None:
        session.stats.finished(session)
        self.sessions.remove(session)

    def find(self, sid: str) -> Session | None:
        """The running session with id ``sid``."""
        for s in self.sessions.active:
            if s.id == sid:
                return s
        return None

    def drain(self, grace: float) -> Deferred[None]:
        """Stop accepting; fire when sessions are done, aborting them after ``grace`` s."""
        self.stop_listening()
        d = self.sessions.when_empty()
        if self.sessions.active:
            self.log(
                "core.info",
                3,
                f"waiting up to {grace:g} s for {len(self.sessions.active)} sessions",
            )

            def overdue() -> None:
                left = list(self.sessions.active)
                if left:
                    self.log("core.info", 3, f"aborting {len(left)} sessions after grace")
                for s in left:
                    s.abort()
                    s.close()

            timer = self.reactor.callLater(grace, overdue)
            d.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
        return d
