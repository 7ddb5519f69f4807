"""STARTTLS mid-session: after a plaintext command protocol agreed on TLS with both
sides (POP3's STLS), TLS terminated on both, under the service's encryption policy.

:class:`StartTls` reads the client's ClientHello, lets the policy decide
(:mod:`zfw.tls.decision`: only ``inspect`` goes on; a tunnel would take the
session out of the proxy's sight, so it is refused here), opens verified TLS
on the server stream the proxy already holds, mints the client's leaf and
completes the client's handshake (:mod:`zfw.tls.sides`). Then ``on_secured``
gets the two TLS streams, and the proxy goes on with its own protocol on
them. One ``tls.info`` line says what was decided, as EncryptionProxy's does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zfw.stream import Stream
from zfw.tls.clienthello import ClientHello, ClientHelloReader, TlsViolation
from zfw.tls.contexts import Verification
from zfw.tls.sides import client_leaf, client_tls, server_tls
from zfw.tls.stream import TlsStream


class StartTls:
    """TLS on ``client`` and ``server`` (both paused, nothing pending), for ``session``
    under ``encryption`` (a TwoSidedEncryption). ``on_secured(client_tls, server_tls)``
    or ``on_refused(reason)`` is called once; the streams are aborted on a refusal."""

    def __init__(
        self,
        session: Any,
        encryption: Any,
        client: Stream,
        server: Stream,
        on_secured: Callable[[TlsStream, TlsStream], object],
        on_refused: Callable[[str], object],
        max_hello_size: int = 16384,
    ):
        self.session = session
        self.encryption = encryption
        self.client = client
        self.server = server
        self.on_secured = on_secured
        self.on_refused = on_refused
        self.hello: ClientHello | None = None
        self.verification: Verification | None = None
        self.signer = "-"
        self.done = False
        self._client_tls: TlsStream | None = None
        self._server_tls: TlsStream | None = None
        self._reader = ClientHelloReader(max_hello_size)
        timeout = encryption.options.handshake_timeout
        self._deadline = session.reactor.callLater(timeout, self._late, timeout)

    def start(self) -> None:
        """Read the client's ClientHello."""
        for ep in (self.client, self.server):
            ep.on_eof = ep.on_lost = lambda *_a: self._refuse("a side left during the handshake")
        self.client.on_data = self._hello_data
        self.client.resume()

    def _hello_data(self, data: bytes) -> None:
        try:
            hello = self._reader.feed(data)
        except TlsViolation as e:
            self.session.stats.count("tls_violations")
            self._refuse(f"violation: {e}")
            return
        if hello is None:
            return
        self.client.pause()
        self.hello = hello
        try:
            choice, why = self.encryption.decide(hello, http=False)  # ALPN: not HTTP's here
        except Exception as e:  # policy code
            self.session.policy_failed("decide", e)
            choice, why = "reject", "decide() failed"
        if choice != "inspect":  # a tunnel would take the session out of sight
            self.session.stats.count("tls_rejected_policy")
            self._refuse(f"reject: {why}" if choice == "reject" else f"no tunnel here: {why}")
            return
        address = self.session.destination[0]
        self._server_tls = server_tls(
            self.server, self.encryption, hello.sni, address, self._server_ready, self._failed
        )
        self.server.resume()

    def _server_ready(self, tls: TlsStream) -> None:
        if self.done:
            return
        result: Verification = tls.verification
        self.verification = result
        leaf = client_leaf(self.encryption, result, self._sni())
        if leaf is None:
            self.session.stats.count("tls_rejected_server")
            self._refuse(f"server certificate: {result.reason}; refused")
            return
        self.signer = leaf.signer
        self._client_tls = client_tls(
            self.client, self.encryption, leaf, self._client_ready, self._client_failed,
            bytes(self._reader.buffer),
        )  # fmt: skip
        self.client.resume()

    def _client_ready(self, tls: TlsStream) -> None:
        if self.done:
            return
        self.done = True
        self._cancel_deadline()
        assert self._server_tls is not None
        self.session.stats.count("tls_inspected")
        facts = self.facts()
        self.session.tls = facts
        self.session.log("tls.info", 3, "inspect (STARTTLS)", **facts)
        self.on_secured(tls, self._server_tls)

    def _client_failed(self, _tls: TlsStream, reason: str) -> None:
        self.session.stats.count("tls_client_failed")
        self._refuse(f"client: {reason}")

    def _failed(self, reason: str) -> None:
        self._refuse(f"server: {reason}")

    def _late(self, timeout: float) -> None:
        self._deadline = None
        self.session.stats.count("tls_timeouts")
        self._refuse(f"handshake not complete within {timeout:g} s")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _refuse(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self._cancel_deadline()
        for ep in (self._client_tls, self._server_tls, self.client, self.server):
            if ep is not None and not ep.lost:
                ep.abort()
        self.session.log("tls.info", 3, reason, **self.facts())
        self.on_refused(reason)

    def _sni(self) -> str | None:
        return self.hello.sni if self.hello is not None else None

    def facts(self) -> dict[str, object]:
        """What the tls.info line tells (as EncryptionProxy's)."""
        v = self.verification
        tls = self._client_tls or self._server_tls
        return {
            "sni": self._sni() or "-",
            "version": tls.version if tls is not None and tls.handshaken else "-",
            "cipher": tls.cipher if tls is not None and tls.handshaken else "-",
            "server_cert": v.subject if v else "-",
            "issuer": v.issuer if v else "-",
            "verify": v.reason if v else "-",
            "leaf": self.signer,
        }
