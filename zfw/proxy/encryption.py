"""The encryption layer: TLS on the sides a service's encryption policy names, then the
service's own proxy on the plaintext streams.

For :class:`~zfw.tls.encryption.TwoSidedEncryption` the ClientHello is read
first and the policy decides: **reject** (closed before anything reaches the
server), **tunnel** (the TLS tunnel relays the encrypted bytes untouched) or
**inspect**. To inspect, zfw connects to the server, verifies its
certificate, makes the client's leaf (mirroring the server's, signed by the
trusted CA only when it verified) and completes the client's handshake with
it. Then the service's proxy (HttpProxy) takes over the client's plaintext
stream through a :class:`~zfw.proxy.base.Handover` whose ``connect`` gives it
the verified server stream, and new verified ones after it. ClientOnly and
ServerOnly do one side of this. One ``tls.info`` line per session says what
was decided and why, the server certificate's subject, issuer and verdict, and
which CA signed the leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from twisted.python.failure import Failure

from zfw.engine.session import describe_failure
from zfw.options import instance_of, option, optional, size, subclass_of
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.passthrough import FirstBytes, not_protocol, tunnel
from zfw.proxy.tls import BypassTunnel
from zfw.stream import Stream
from zfw.tls.clienthello import ClientHello, ClientHelloReader, TlsViolation
from zfw.tls.contexts import Verification
from zfw.tls.encryption import ClientOnlyEncryption, ServerOnlyEncryption, _Encryption
from zfw.tls.sides import Leaf, client_leaf, client_tls, server_tls, static_leaf
from zfw.tls.sniff import not_tls
from zfw.tls.stream import TlsStream


class _Ready:
    """A connection attempt that has already succeeded: the first server stream,
    passed on at the next turn of the reactor unless cancelled first."""

    pending = False

    def __init__(self, stream: TlsStream, call: Any) -> None:
        self.stream = stream
        self.call = call  # the DelayedCall that passes the stream on

    def cancel(self) -> None:
        """Not passed on after all: the stream is closed."""
        if self.call.active():
            self.call.cancel()
            if not self.stream.lost:
                self.stream.close()


class _TlsAttempt:
    """A TCP attempt and then a TLS handshake, as one attempt."""

    def __init__(self) -> None:
        self.tcp: Any = None
        self.tls: TlsStream | None = None
        self.pending = True

    def cancel(self) -> None:
        if not self.pending:
            return
        if self.tls is not None:
            self.tls.abort()
        elif self.tcp is not None:
            self.tcp.cancel()


class EncryptionProxy(Proxy):
    """What the engine starts for a service with ``encryption=``; the service's proxy
    class runs inside it. Its options are declared below.

    Inspecting CONNECT tunnels (non-transparent HttpProxy's ``connect_encryption``), it
    is handed its own ``encryption`` and ``inner_proxy``; a subclass naming them as
    class attributes and set as ``connect_proxy`` does the same.
    """

    log_tag: ClassVar[str] = "tls"
    max_hello_size: int = option(size(1), 16384, "bytes of the ClientHello")
    encryption: Any = option(
        optional(
            instance_of(
                _Encryption,
                what="TwoSidedEncryption, ClientOnlyEncryption or ServerOnlyEncryption",
            )
        ),
        None,
        "a subclass's own encryption policy (None: the service's `encryption=`)",
    )
    inner_proxy: type[Proxy] | None = option(
        optional(subclass_of(Proxy)), None, "a subclass's own inner proxy (None: the service's)"
    )

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Read the ClientHello (TwoSided, ClientOnly) or connect to the server first."""
        self.encryption = self.encryption or self.session.service.encryption
        self.inner = self.inner_proxy or self.session.service.proxy_class
        self.options = self.encryption.options
        self.client = client
        self.hello: ClientHello | None = None
        self.server_tls: TlsStream | None = None
        self.client_tls: TlsStream | None = None
        self.verification: Verification | None = None
        self.signer = "-"
        self.done = False
        self._deadline = self.session.reactor.callLater(self.options.handshake_timeout, self._late)
        client.on_eof = client.on_lost = lambda *_a: self._end("client left during the handshake")
        if not self.encryption.client_tls:  # ServerOnly: plain from the client
            client.pause()
            self._connect_first()
            return
        self._reader = ClientHelloReader(self.max_hello_size)
        #: The first bytes, held until they tell TLS from another (``pass_through``);
        #: never in a CONNECT tunnel, which passes nothing through.
        self._first = FirstBytes(not_tls, handover is None)
        client.on_data = self._hello_data
        if handover is not None and handover.pending:
            self._hello_data(handover.pending)

    def state(self) -> str:
        sni = self.hello.sni if self.hello is not None else None
        return f"TLS handshake {sni}" if sni else "TLS handshake"

    # --- the ClientHello ---------------------------------------------------------------

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
            self.session.stats.count("tls_violations")
            self.log("violation", 1, f"closing: {e}")
            self._end(f"violation: {e}", abort=True)
            return
        if hello is None:
            return
        self.client.pause()
        self.hello = hello
        try:
            choice, why = self.encryption.decide(hello)
        except Exception as e:  # policy code
            self.session.policy_failed("decide", e)
            choice, why = "reject", "decide() failed"
        if choice == "reject":
            self.session.stats.count("tls_rejected_policy")
            self._end(f"reject: {why}", abort=True)
        elif choice == "tunnel":
            self._tunnel(why)
        elif isinstance(self.encryption, ClientOnlyEncryption):
            self._client_handshake(self._static_leaf())
        else:
            self._connect_first()

    def _not_tls(self, why: str, first: bytes) -> None:
        """The client's first bytes are not TLS: tunnel them or refuse, as the
        encryption policy's ``pass_through`` says."""
        if not_protocol(self, "TLS", why, self.encryption.pass_through):
            self._cancel_deadline()
            self.done = True
            self.client.on_eof = self.client.on_lost = lambda *_a: None
            tunnel(self, self.client, first)
            return
        self.session.stats.count("tls_violations")
        self._end(f"violation: not TLS: {why}", abort=True)

    def _tunnel(self, why: str) -> None:
        """Blind, never decrypted: the TLS tunnel's relay takes the ClientHello and what
        follows (a second ClientHello after a HelloRetryRequest checked as there)."""
        self._cancel_deadline()
        self.done = True
        self.log("info", 3, f"tunnel: {why}", sni=self._sni())
        pending = bytes(self._reader.buffer)
        self.client.on_eof = self.client.on_lost = lambda *_a: None
        self.hand_over(
            BypassTunnel,
            self.client,
            Handover(pending=pending),
            max_hello_size=self.max_hello_size,
            hello_timeout=self.options.handshake_timeout,
        )

    # --- the server side ---------------------------------------------------------------

    def _server_name(self) -> str | None:
        if isinstance(self.encryption, ServerOnlyEncryption):
            return self.encryption.server_name or self.session.destination[0]
        return self._sni() if self.hello is not None and self.hello.sni else None

    def _connect_first(self) -> None:
        self._open(self._first_server, lambda reason: self._end(f"server: {reason}"))

    def _open(self, on_ready: Callable[[TlsStream], object], on_failed: Callable[[str], object]):
        """Connect to the server and complete a verified TLS handshake with it."""
        attempt = _TlsAttempt()

        def connected(tcp: Stream) -> None:
            attempt.tls = server_tls(
                tcp, self.encryption, self._server_name(), self.session.destination[0],
                ready, failed_tls,
            )  # fmt: skip

        def ready(tls: TlsStream) -> None:
            attempt.pending = False
            on_ready(tls)

        def failed_tls(reason: str) -> None:
            attempt.pending = False
            on_failed(reason)

        def failed(reason: Failure) -> None:
            attempt.pending = False
            on_failed(f"connecting failed: {describe_failure(reason)}")

        attempt.tcp = self.session.connect_server(self.options.handshake_timeout, connected, failed)
        return attempt

    def _first_server(self, tls: TlsStream) -> None:
        if self.done or self.client.lost:
            tls.abort()
            return
        self.server_tls = tls
        result: Verification = tls.verification
        self.verification = result
        tls.on_eof = tls.on_lost = lambda *_a: self._end("server left during the handshake")
        if isinstance(self.encryption, ServerOnlyEncryption):
            if not (result.ok or self.encryption.verifier.permit_invalid):
                self.session.stats.count("tls_rejected_server")
                self._end(f"server certificate: {result.reason}; refused", abort=True)
                return
            self.client.resume()
            self._inspecting(self.client)
            return
        leaf = self._dynamic_leaf(result)
        if leaf is None:
            self.session.stats.count("tls_rejected_server")
            self._end(f"server certificate: {result.reason}; refused", abort=True)
            return
        self._client_handshake(leaf)

    def _dynamic_leaf(self, result: Verification) -> Leaf | None:
        """The leaf the client gets, or None: refused."""
        leaf = client_leaf(self.encryption, result, self._name())
        if leaf is not None:
            self.signer = leaf.signer
            if leaf.signer == "untrusted CA":
                self.session.stats.count("tls_untrusted_leaf")
        return leaf

    def _static_leaf(self) -> Leaf | None:
        leaf = static_leaf(self.encryption, self._name())
        if leaf is not None:
            self.signer = leaf.signer
        return leaf

    # --- the client side ---------------------------------------------------------------

    def _client_handshake(self, leaf: Leaf | None) -> None:
        if leaf is None:
            self.session.stats.count("tls_rejected_policy")
            self._end(f"no certificate for {self._sni()}", abort=True)
            return
        self.client_tls = client_tls(
            self.client, self.encryption, leaf, self._inspecting, self._client_failed,
            bytes(self._reader.buffer),
        )  # fmt: skip
        self.client.resume()

    def _client_failed(self, _tls: TlsStream, reason: str) -> None:
        self.session.stats.count("tls_client_failed")
        self._end(f"client: {reason}", abort=True)

    def _inspecting(self, client: Stream) -> None:
        """Both sides are up: the service's proxy takes over the plaintext."""
        if self.done:
            return
        self._cancel_deadline()
        self.done = True
        self.session.stats.count("tls_inspected")
        facts = self._facts()
        self.session.tls = facts
        self.log("info", 3, "inspect", **facts)
        client.on_eof = client.on_lost = lambda *_a: None
        connect = covers = None
        if self.encryption.server_tls:
            connect = self._connect
            # The proxy inside may end before it asks for a server (the client left
            # first): the verified server opened in advance must not outlive the session.
            self.session.at_close(self._release_first_server)
            if self.encryption.verifier.check_subject and self.verification is not None:
                covers = self.verification.covers
        self.hand_over(self.inner, client, Handover(connect=connect, covers=covers))

    def _connect(self, timeout: float, on_connected: Any, on_failed: Any, decision: Any = None):
        """Handover.connect for the proxy inside: first the verified server stream, then
        new ones, each verified as the first was."""
        first, self.server_tls = self.server_tls, None
        if first is not None and not first.lost:
            first.on_eof = first.on_lost = lambda *_a: None
            return _Ready(first, self.session.reactor.callLater(0, on_connected, first))

        def ready(tls: TlsStream) -> None:
            # A server that verified at first must verify again: the client trusts it now.
            result: Verification = tls.verification
            if result.ok or self.encryption.verifier.permit_invalid or self.signer != "trusted CA":
                on_connected(tls)
                return
            tls.abort()
            on_failed(Failure(ConnectionError(f"server certificate: {result.reason}")))

        return self._open(ready, lambda reason: on_failed(Failure(ConnectionError(reason))))

    def _release_first_server(self) -> None:
        first, self.server_tls = self.server_tls, None
        if first is not None and not first.lost:
            first.close()

    # --- endings -----------------------------------------------------------------------

    def _facts(self) -> dict[str, object]:
        v = self.verification
        tls = self.client_tls or self.server_tls
        facts: dict[str, object] = {
            "sni": self._sni(),
            "version": tls.version if tls is not None else "-",
            "cipher": tls.cipher if tls is not None else "-",
            "server_cert": v.subject if v else "-",
            "issuer": v.issuer if v else "-",
            "verify": v.reason if v else "-",
            "leaf": self.signer,
        }
        if v is not None and v.client_certificate_requested:
            facts["client_cert"] = "requested by the server; zfw sends none"
        return facts

    def _sni(self) -> str:
        return self._name() or "-"

    def _name(self) -> str | None:
        return self.hello.sni if self.hello is not None else None

    def _late(self) -> None:
        self._deadline = None
        self.session.stats.count("tls_timeouts")
        self._end(f"handshake not complete within {self.options.handshake_timeout:g} s", True)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _end(self, reason: str, abort: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._cancel_deadline()
        for stream in (self.client_tls, self.server_tls, self.client):
            if stream is None or stream.lost:
                continue
            if abort:
                stream.abort()
            else:
                stream.close()
        self.log("info", 3, reason, **self._facts())
        self.session.close()
