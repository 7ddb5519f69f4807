"""HttpProxy, non-transparent: the server from the request, CONNECT and its hand-over,
the parent proxy, and the Host check of transparent mode."""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.threads import deferToThread

from zfw.engine.session import describe_failure
from zfw.http.messages import Request, Response
from zfw.http.policy import (
    PolicyValueError,
)
from zfw.http.serialize import end_to_end, response_head
from zfw.http.targets import absolute_target, split_authority
from zfw.proxy.base import Handover, Proxy
from zfw.proxy.encryption import EncryptionProxy
from zfw.proxy.http.messages import NO_VALUES, Refused, Transaction, addresses_of, split_host
from zfw.proxy.parent import ParentTunnel
from zfw.proxy.plug import PlugProxy
from zfw.stream import Stream
from zfw.tls.encryption import TwoSidedEncryption


class InbandRouting:
    """Part of :class:`~zfw.proxy.http.HttpProxy`: the server named in the request
    (with an InbandRouter), CONNECT and the hand-over of its tunnel, the parent proxy,
    and ``verify_host`` in transparent mode."""

    def _inband_target(self, tx: Transaction) -> bytes:
        """The server of an absolute-form or CONNECT request (into ``tx.server``) and
        the target to send: origin-form to the server, unchanged to a parent proxy."""
        raw = tx.url.encode("ascii")
        if tx.method == "CONNECT":
            tx.server = split_authority(raw, None)
            tx.client_keep = False  # after a tunnel, or a refusal, nothing more is HTTP
            if tx.server[1] not in self.connect_ports:
                raise Refused(403, f"CONNECT to port {tx.server[1]} is not permitted")
            return raw
        host, port, origin = absolute_target(raw)
        tx.server = (host, port)
        return raw if self.parent_proxy is not None else origin

    def _route_inband(self, tx: Transaction) -> None:
        """Resolve the server (or the parent proxy), decide by its zone, then connect."""
        assert tx.server is not None
        host, port = self.parent_proxy or tx.server
        key = (host, port)
        # A kept connection carries the next request, but never a CONNECT that zfw
        # answers itself (the tunnel gets a connection of its own).
        if (
            self.server is not None
            and not self.server.lost
            and self._server_key == key
            and not self._tunnels_itself(tx)
        ):
            self._send_head()
            return
        if self.server is not None:
            self._drop_server()
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            d = deferToThread(addresses_of, host)
            d.addCallbacks(
                lambda found: self._resolved(tx, key, found),
                lambda f: self._not_resolved(tx, host, describe_failure(f)),
            )
            return
        self._resolved(tx, key, [str(literal)])

    def _not_resolved(self, tx: Transaction, host: str, error: str) -> None:
        if self.tx is tx and not self.closing:
            self.log("error", 3, f"{host} does not resolve: {error}")
            self._send_error(502, f"The name {host} does not resolve.")

    def _resolved(self, tx: Transaction, key: tuple[str, int], addresses: list[str]) -> None:
        if self.tx is not tx or self.closing:
            return
        first = None
        for address in dict.fromkeys(addresses):
            if (address, key[1]) == self.session.destination:
                self.log("violation", 1, f"request: {tx.url[:200]} names this proxy itself")
                self._send_error(508, "The request names this proxy itself.")
                return
            decision = self.session.decide_server((address, key[1]))
            if decision.allowed:
                break
            first = first or decision
        else:
            reason = first.reason if first else "no address"
            self.session.log(
                "core.policy", 1, f"denied {tx.method} {tx.url[:200]}: {key[0]}: {reason}"
            )
            self._send_error(403, "The requested server is not permitted.")
            return
        self._server_key = key
        if self._tunnels_itself(tx):
            self._tunnel(tx, decision)
            return
        self._attempt = self.session.connect_server(
            self.connect_timeout, self._connected, self._connect_failed, decision
        )

    def _tunnels_itself(self, tx: Transaction) -> bool:
        """Whether zfw answers this CONNECT and carries the tunnel itself: always
        without a parent proxy, and with one when a TlsTunnelProxy must see the
        ClientHello first (else the parent answers, and PlugProxy relays)."""
        if tx.method != "CONNECT":
            return False
        if self.parent_proxy is None or self.connect_encryption is not None:
            return True
        return not self._connect_class().needs_server

    def _connect_class(self) -> type[Proxy]:
        if self.connect_encryption is not None:
            if not isinstance(self.connect_encryption, TwoSidedEncryption):
                raise PolicyValueError(
                    f"connect_encryption must be a TwoSidedEncryption, "
                    f"not {self.connect_encryption!r}"
                )
            if self.parent_proxy is not None:
                raise PolicyValueError("connect_encryption cannot go through a parent_proxy")
            return EncryptionProxy
        proxy_class = self.connect_proxy
        if not (isinstance(proxy_class, type) and issubclass(proxy_class, Proxy)):
            raise PolicyValueError(f"connect_proxy must be a proxy class, not {proxy_class!r}")
        return proxy_class

    def _tunnel(self, tx: Transaction, decision: Any) -> None:
        """CONNECT: hand the client to ``connect_proxy`` toward the decided server
        (through the parent proxy, if there is one): at once, or once the server
        connection is open if that proxy ``needs_server``."""
        try:
            proxy_class = self._connect_class()
        except PolicyValueError as e:
            self._policy_error(str(e))
            return
        if not proxy_class.needs_server:
            # It opens the way itself, after its look at what the client sends after
            # our 200 (the TLS tunnel: the ClientHello).
            connect = None
            if self.parent_proxy is not None:
                # The parent is asked only when that proxy connects; the destination it
                # verifies is the one the CONNECT named.
                request, session = self._out_head, self.session

                def connect(timeout: float, on_connected: Any, on_failed: Any) -> ParentTunnel:
                    return ParentTunnel(
                        session, decision, request, timeout, on_connected, on_failed
                    )

            self._hand_over(tx, decision, proxy_class, connect=connect)
            return

        def connected(server: Stream) -> None:
            self._attempt = None
            if self.closing or self.tx is not tx:
                server.close()
                return
            self._hand_over(tx, decision, proxy_class, server=server)

        self._attempt = self.session.connect_server(
            self.connect_timeout, connected, self._connect_failed, decision
        )

    def _hand_over(
        self, tx: Transaction, decision: Any, proxy_class: type[Proxy], **handover: Any
    ) -> None:
        """Answer the CONNECT with 200 and hand the client to ``proxy_class`` toward the
        decided server, with what the client sent that was not parsed."""
        tx.status = 200
        self.client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._log_request(tx)
        destination = tx.server if handover.get("connect") else decision.target
        pending = self._detach()
        self.session.decision = decision
        self.session.destination = destination
        inspect = {}
        if proxy_class is EncryptionProxy and self.connect_encryption is not None:
            inspect = {"encryption": self.connect_encryption, "inner_proxy": type(self)}
        self.hand_over(proxy_class, self.client, Handover(pending=pending, **handover), **inspect)

    def _detach(self) -> bytes:
        """Stop being the session's proxy (a tunnel or another protocol takes over); the
        bytes the client sent that were not parsed."""
        self._disarm()
        self.closing = True
        self.tx = None
        self.client.unthrottle()
        if self.server is not None:
            self.server.unthrottle()
        self.client_valve.release("wait")
        self.client_valve.release("backpressure")
        if self.session.idle_watch is not None:
            self.session.idle_watch.discard(self)
        return self.reader.take_buffer()

    def _verify_host(self, head: Request) -> None:
        dest_host, dest_port = self.session.destination
        value = head.fields.get(b"host", NO_VALUES)
        if not value:  # HTTP/1.0 without Host: nothing to check
            self._to_server()
            return
        host, port = split_host(value[0].decode("latin-1"))
        if host is None or (port or (443 if self._scheme == "https" else 80)) != dest_port:
            self._conflict(f"Host {value[0][:60]!r} does not name the destination")
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            d = deferToThread(addresses_of, host)
            d.addCallbacks(
                lambda found: self._host_checked(host, dest_host in found),
                lambda f: self._host_checked(host, False, describe_failure(f)),
            )
            return
        self._host_checked(host, str(literal) == dest_host)

    def _check_certificate(self, head: Request) -> None:
        """Under TLS inspection the Host must be a name the server's certificate covers
        (else 421): a TLS session for one name carries no requests for another."""
        value = head.fields.get(b"host", NO_VALUES)
        if not value or value[0] == self._covered_host:  # no Host (HTTP/1.0): the SNI's
            return
        host, _port = split_host(value[0].decode("latin-1"))
        assert self._covers is not None
        if host is not None and self._covers(host):
            self._covered_host = value[0]  # the next request of the session asks again
        else:
            shown = value[0][:60].decode("latin-1")
            raise Refused(421, f"The host {shown} is not named by the server's certificate.")

    def _host_checked(self, host: str, ok: bool, error: str = "") -> None:
        if self.closing or self.tx is None:
            return
        if ok:
            self._to_server()
            self._pump()
            return
        why = f"does not resolve: {error}" if error else "is not the destination"
        self._conflict(f"Host {host} {why} {self.session.destination[0]}")

    def _conflict(self, reason: str) -> None:
        self.log("violation", 1, reason)
        self._send_error(409, "The requested host does not match the destination.")

    def _parent_tunnel(self, tx: Transaction, resp: Response) -> None:
        """The parent proxy opened a CONNECT tunnel: relay it (with PlugProxy)."""
        server, server_reader = self.server, self.server_reader
        assert server is not None and server_reader is not None
        self.client.write(
            response_head(resp.status, resp.reason, end_to_end(resp.headers, resp.fields))
        )
        self._log_request(tx)
        to_client = server_reader.take_buffer()
        to_server = self._detach()
        self.server = self.server_reader = None
        proxy_class = self.connect_proxy
        if not (isinstance(proxy_class, type) and getattr(proxy_class, "needs_server", False)):
            proxy_class = PlugProxy
        handover = Handover(pending=to_server, server=server, to_client=to_client)
        self.hand_over(proxy_class, self.client, handover)
