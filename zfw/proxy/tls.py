"""TlsTunnelProxy: a blind TLS tunnel that decides by the ClientHello.

It reads the client's ClientHello (sans-IO, :mod:`zfw.tls.clienthello`),
decides by the server name (SNI), ALPN and the zones, and then sends the
buffered hello to the server unchanged and relays the encrypted bytes
untouched (PlugProxy's relay). Nothing reaches the server before the
decision.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from zfw.addr import is_address
from zfw.engine.session import describe_failure
from zfw.options import boolean, names, option, seconds, size
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.passthrough import FirstBytes, not_protocol, pass_through_option, tunnel
from zfw.proxy.relay import Relay
from zfw.stream import Stream
from zfw.tls.clienthello import ClientHello, ClientHelloReader, TlsViolation, version_name
from zfw.tls.decision import TUNNEL, decide, destination_mismatch, tunnel_rules
from zfw.tls.retry import SecondHelloReader, ServerFirstReader
from zfw.tls.sniff import not_tls

#: Counter names by the session's decision (a reject's by what refused it).
_TLS_COUNTERS = {"accept": "tls_accepted", "violation": "tls_violations"}


class TlsTunnelProxy(Proxy):
    """Tunnels TLS blindly to servers whose name the policy permits (its options are
    declared below). For more than the name lists, override :meth:`check_hello`."""

    log_tag: ClassVar[str] = "tls"
    default_ports: ClassVar[tuple[int, ...]] = (443,)
    allowed_names: tuple[str, ...] = option(
        names(), (), "exact names or `*.example.com` patterns; when not empty, only these pass"
    )
    denied_names: tuple[str, ...] = option(names(), (), "names that never pass (checked first)")
    allow_no_sni: bool = option(boolean(), False, "let a hello without a server name (SNI) through")
    verify_destination: bool = option(
        boolean(),
        False,
        "the name must resolve to the address the client was going to (as Squid's "
        "host_verify_strict); through a parent proxy, be the name CONNECT named",
    )
    pass_through: str = pass_through_option("TLS")
    hello_timeout: float = option(seconds(), 10.0, "seconds for the whole ClientHello")
    max_hello_size: int = option(size(1), 16384, "bytes of the ClientHello")
    timeout: float = option(
        seconds(zero=True), 600.0, "idle seconds after the handshake; 0: no limit"
    )
    connect_timeout: float = option(seconds(), 30.0, "seconds to reach the server")
    #: What a session that was let through counts as.
    accepted_counter: ClassVar[str] = "tls_accepted"

    def check_hello(self, hello: ClientHello) -> bool | str:
        """Policy hook: True to tunnel, or a reason (or False) to close.

        ``self.session`` tells the zones (``client_zone``, ``server_zone``) and
        the original destination (``destination``).
        """
        rules = tunnel_rules(self.allowed_names, self.denied_names, self.allow_no_sni)
        decision = decide(hello, rules)
        return True if decision.action == TUNNEL else decision.reason

    def resolve(self, name: str) -> Any:
        """Deferred list of the addresses ``name`` resolves to (in a thread)."""

        def lookup() -> list[str]:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            return [info[4][0] for info in infos]

        return deferToThread(lookup)

    # --- the session -----------------------------------------------------------------------

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Read the ClientHello, with a deadline, before anything else.

        Handed over a CONNECT tunnel, it starts with the ``pending`` bytes (of the
        hello) and connects with the handover's ``connect`` if there is one (through
        a parent proxy: :class:`~zfw.proxy.parent.ParentTunnel`)."""
        # Taking over a CONNECT tunnel (or the bypass path's hello) it never passes
        # another protocol through: that would skip the name lists (docs/policy.md).
        sniff = handover is None
        handover = handover or Handover()
        pending = handover.pending
        self.client = client
        self._open = handover.connect or self.session.connect_server
        self.hello: ClientHello | None = None
        self.decision = "pending"
        self._reject_kind = "policy"
        self._reader = ClientHelloReader(self.max_hello_size)
        self._attempt: Any = None
        self._relay: Relay | None = None
        self._server_first: ServerFirstReader | None = None  # tells the chosen version
        #: The first bytes, held until they tell TLS from another (``pass_through``).
        self._first = FirstBytes(not_tls, sniff)
        client.on_data = self._hello_data
        client.on_eof = lambda _ep: self._refuse("client closed before its ClientHello", "client")
        client.on_lost = lambda _ep, _r: self._refuse(
            "client left before its ClientHello", "client"
        )
        self._deadline = self.session.reactor.callLater(self.hello_timeout, self._late)
        if pending:
            self._hello_data(pending)

    def state(self) -> str:
        """The decision so far and the server name the client asked for."""
        sni = self.hello.sni if self.hello is not None else None
        return f"{self.decision} {sni}" if sni else self.decision

    def _late(self) -> None:
        self._deadline = None
        self._violation(f"no complete ClientHello within {self.hello_timeout:g} s")

    def _hello_data(self, data: bytes) -> None:
        if self._first.deciding:
            data, why = self._first.feed(data)
            if why is not None:
                self._not_tls(why, data)
                return
            if not data:
                return
        try:
            hello = self._reader.feed(data)
        except TlsViolation as e:
            self._violation(str(e))
            return
        if hello is None:
            return
        self._cancel_deadline()
        self.client.pause()
        self.client.on_data = self._reader.feed  # (paused: nothing more arrives)
        self.hello = hello
        if hello.ech:  # on the end line as ech=offered; browsers send GREASE ECH always
            self.log("info", 4, f"ECH offered (may be GREASE): deciding on {hello.sni!r}")
        try:
            verdict = self.check_hello(hello)
        except Exception as e:  # policy code
            self.session.policy_failed("check_hello", e)
            verdict = "policy error"
        if verdict is not True:
            self._refuse(verdict or "denied by policy")
            return
        if self.verify_destination and hello.sni is not None:
            dest = self.session.destination[0]
            if not is_address(dest):  # a name, as in CONNECT through a parent proxy
                mismatch = destination_mismatch(hello.sni, dest)
                if mismatch:
                    self._refuse(mismatch, "destination")
                    return
                self._connect()
                return
            d = self.resolve(hello.sni)
            d.addCallbacks(self._verified, self._unresolved)
            return
        self._connect()

    def _not_tls(self, why: str, first: bytes) -> None:
        """The client's first bytes are not TLS: tunnel them or refuse, as
        ``pass_through`` says."""
        if not_protocol(self, "TLS", why, self.pass_through):
            self._cancel_deadline()
            tunnel(self, self.client, first, self._open)
            return
        self.decision = "violation"
        self._close_client(f"not TLS: {why}")

    def _verified(self, addresses: list[str]) -> None:
        assert self.hello is not None and self.hello.sni is not None
        mismatch = destination_mismatch(self.hello.sni, self.session.destination[0], addresses)
        if mismatch:
            self._refuse(mismatch, "destination")
            return
        self._connect()

    def _unresolved(self, reason: Failure) -> None:
        self._refuse(
            f"{self.hello.sni} does not resolve: "  # type: ignore[union-attr]
            f"{describe_failure(reason)}",
            "destination",
        )

    def _connect(self) -> None:
        if self.client.lost:
            self.session.close()
            return
        self.decision = "accept"
        self.client.on_lost = self._lost_while_connecting
        self._attempt = self._open(self.connect_timeout, self._connected, self._failed)

    def _lost_while_connecting(self, _ep: Stream, _reason: Failure) -> None:
        self._attempt.cancel()

    def _failed(self, reason: Failure) -> None:
        if not self.client.lost:
            self.log("error", 3, f"connecting to the server failed: {describe_failure(reason)}")
            self.client.close()
        self._end("server unreachable", 0, 0)

    def _connected(self, server: Stream) -> None:
        if self.client.lost:
            server.close()
            self._end("client left", 0, 0)
            return
        self.server = server
        first = bytes(self._reader.buffer)
        # Until the server's first answer is known to be no HelloRetryRequest, what the
        # client sends next is held: after one, it is a second ClientHello to decide.
        # The answer (its ServerHello) also tells the version the server chose.
        self._second: SecondHelloReader | None = None
        self._held = bytearray()
        self._retry_bytes = b""  # what the client sent after the retry request
        self._server_first = ServerFirstReader()
        server.on_data = self._server_answer
        server.on_eof = server.on_lost = lambda *_a: self._retry_failed("the server left")
        self.client.on_data = self._held_data
        self.client.on_eof = self.client.on_lost = lambda *_a: self._retry_failed("the client left")
        server.write(first)
        self.client.resume()

    def _relay_now(self, to_server: bytes) -> None:
        self._relay = Relay(
            self.client, self.server, self.session.idle_watch, self.timeout, self._relay_done
        )
        self._relay.start(to_server=to_server)

    def _held_data(self, data: bytes) -> None:
        self._held += data
        if len(self._held) > self.max_hello_size:
            self._violation_both("more than max_hello_size before the server answered")
            return
        if self._second is not None:
            self._second_hello()

    def _server_answer(self, data: bytes) -> None:
        self.client.write(data)
        retry = self._server_first.feed(data)
        if retry and self.hello is not None and self.hello.highest_version < 0x0304:
            retry = False  # no TLS 1.3 offered: the client refuses it, nothing to decide
        if retry is False:
            held, self._held = bytes(self._held), bytearray()
            self._relay_now(held)
        elif retry and self._second is None:
            self._second = SecondHelloReader(self.max_hello_size)
            self.server.pause()  # nothing more until it is decided
            if self._held:
                self._second_hello()

    def _second_hello(self) -> None:
        held, self._held = bytes(self._held), bytearray()
        self._retry_bytes += held
        assert self._second is not None
        try:
            hello = self._second.feed(held)
        except TlsViolation as e:
            self._violation_both(f"after a HelloRetryRequest: {e}")
            return
        if hello is None:
            return
        first = (self.hello.sni or "").lower() if self.hello else ""
        if (hello.sni or "").lower() != first:
            self._violation_both(
                f"the second ClientHello names {hello.sni!r}, the first {self.hello.sni!r}"  # type: ignore[union-attr]
            )
            return
        self.log("info", 4, "HelloRetryRequest: the second ClientHello names the same server")
        self.server.resume()
        self._relay_now(self._retry_bytes)

    def _violation_both(self, reason: str) -> None:
        self.log("violation", 1, f"closing: {reason}")
        self.decision = "violation"
        self._retry_failed(reason)

    def _retry_failed(self, reason: str) -> None:
        self._abort_both()
        self._end(reason, self.client.received, self.server.received)

    def _abort_both(self) -> None:
        for ep in (self.client, self.server):
            if not ep.lost:
                ep.abort()

    def _relay_done(self, relay: Relay, reason: str) -> None:
        self._end(reason, relay.client.received, relay.server.received, relay.duration)

    # --- endings ---------------------------------------------------------------------------

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _violation(self, reason: str) -> None:
        self.log("violation", 1, f"closing: {reason}")
        self.decision = "violation"
        self._close_client(reason)

    def _refuse(self, reason: str, kind: str = "policy") -> None:
        """Close the client: denied by the policy, or by the ``kind`` of check named
        (``client``, ``destination``), which the counters keep apart."""
        if self.decision == "pending":
            self.decision = "reject"
            self._reject_kind = kind
        self._close_client(reason)

    def _close_client(self, reason: str) -> None:
        self._cancel_deadline()
        if not self.client.lost:
            self.client.abort()
        self._end(reason, self.client.received, 0)

    def _end(
        self, reason: str, client_bytes: int, server_bytes: int, duration: float | None = None
    ) -> None:
        if self.session.closed:
            return
        if self.decision == "reject":
            self.session.stats.count(f"tls_rejected_{self._reject_kind}")
        elif self.decision == "accept":
            self.session.stats.count(self.accepted_counter)
        else:
            self.session.stats.count(_TLS_COUNTERS.get(self.decision, "tls_rejected_policy"))
        h = self.hello
        chosen = self._server_first.version if self._server_first is not None else None
        self.log(
            "info",
            3,
            f"{self.decision}: {reason}",
            sni=(h.sni if h else None) or "-",
            alpn=",".join(h.alpn) if h and h.alpn else "-",
            version=version_name(chosen) if chosen else "-",
            offered=version_name(h.highest_version) if h else "-",
            ech="offered" if h and h.ech else "-",
            client_bytes=client_bytes,
            server_bytes=server_bytes,
            duration=f"{duration:.3f}" if duration is not None else "-",
        )
        self.session.close()


class BypassTunnel(TlsTunnelProxy):
    """The bypass path of an encryption policy: the ClientHello was decided already
    (tunnel), and the bytes are relayed as by the tunnel, the second ClientHello
    after a HelloRetryRequest checked the same way (it must name the same server)."""

    accepted_counter: ClassVar[str] = "tls_tunnelled"

    def check_hello(self, hello: ClientHello) -> bool | str:
        """Decided by the encryption policy before the handover."""
        return True
