"""The stream contract over another stream, through TLS: what a proxy sees of a
connection that zfw decrypts.

:class:`TlsStream` drives a pyOpenSSL connection on memory BIOs: ciphertext
from the stream below goes in, plaintext comes out as ``on_data``; what the
proxy writes is encrypted and written below. A half-close sends close_notify
before the FIN, and a peer's close_notify is its end of input. Pausing,
backpressure and the addresses are the stream below's, so a proxy (HttpProxy)
runs on it unchanged. No Twisted here: the reason of ``on_lost`` is the one the
stream below gave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL

from zfw.stream import Stream
from zfw.tls import openssl_compat


def _ignore(*_args: Any) -> None:
    pass


def describe(error: SSL.Error) -> str:
    """A short text for an OpenSSL error (its first reason)."""
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        if len(item) == 3 and item[2]:
            return str(item[2])
    return str(error) or type(error).__name__


class TlsStream:
    """A :class:`zfw.stream.Stream` that encrypts to and decrypts from ``inner``.

    ``on_handshake(stream)`` is called once the handshake is done, ``on_failed(stream,
    reason)`` if it fails (the stream below is aborted then); only after the
    handshake does ``on_data`` hear plaintext.
    """

    def __init__(
        self,
        inner: Stream,
        connection: SSL.Connection,
        on_handshake: Callable[[TlsStream], object] = _ignore,
        on_failed: Callable[[TlsStream, str], object] = _ignore,
    ):
        self.inner = inner
        self.tls = connection
        self._io = openssl_compat.io()
        self._decrypt, self._encrypt = self._io.bind(connection)
        self.side = inner.side
        self.received = 0
        self.lost = False
        self.handshaken = False
        #: What the owner found of the peer's certificate (zfw.tls.contexts.Verification).
        self.verification: Any = None
        self.on_handshake = on_handshake
        self.on_failed = on_failed
        self.on_data: Callable[[bytes], object] = _ignore
        self.on_eof: Callable[[Any], object] = _ignore
        self.on_write_closed: Callable[[Any], object] = _ignore
        self.on_lost: Callable[[Any, Any], object] = _ignore
        self._shut = False
        self._eof = False
        inner.on_data = self._cipher
        inner.on_eof = self._inner_eof
        inner.on_lost = self._inner_lost
        inner.on_write_closed = lambda _s: self.on_write_closed(self)

    def start(self, received: bytes = b"") -> None:
        """Begin the handshake (as a client, send the ClientHello); ``received``: bytes
        of the peer already read (the ClientHello a proxy looked at)."""
        if received:
            self._io.feed(self.tls, received)
        self._advance()

    # -- the stream contract ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` and send it below."""
        if self._shut or self.lost:
            return
        out = self._encrypt(data)
        if out and not self.inner.lost:
            self.inner.write(out)

    def pause(self) -> None:
        self.inner.pause()

    def resume(self) -> None:
        self.inner.resume()

    @property
    def producer(self) -> Any:
        return self.inner.producer

    def throttle(self, producer: Any) -> None:
        self.inner.throttle(producer)

    def unthrottle(self) -> None:
        self.inner.unthrottle()

    def half_close(self) -> None:
        """close_notify, then the FIN below; we keep reading."""
        self._notify()
        self.inner.half_close()

    def close(self, drained: bool = False) -> None:
        """close_notify, then close below after what is queued."""
        self._notify()
        self.inner.close(drained)

    def abort(self) -> None:
        self.inner.abort()

    def silence(self) -> None:
        self.on_data = self.on_eof = self.on_write_closed = self.on_lost = _ignore
        self.on_handshake = self.on_failed = _ignore

    @property
    def peer(self) -> tuple[str, int]:
        return self.inner.peer

    @property
    def local(self) -> tuple[str, int]:
        return self.inner.local

    # -- facts for the log ------------------------------------------------------------

    @property
    def version(self) -> str:
        """``TLSv1.3`` and the like."""
        return self.tls.get_protocol_version_name()

    @property
    def cipher(self) -> str:
        return self.tls.get_cipher_name() or "-"

    # -- below ------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._shut or self.lost or not self.handshaken:
            self._shut = True
            return
        self._shut = True
        with contextlib.suppress(SSL.Error):
            self.tls.shutdown()
        self._flush()

    def _flush(self) -> None:
        """Send what OpenSSL has written to its memory BIO."""
        out = self._io.drain(self.tls)
        if out and not self.inner.lost:
            self.inner.write(out)

    def _cipher(self, data: bytes) -> None:
        """Ciphertext during the handshake (after it, ``_read`` hears it)."""
        self._io.feed(self.tls, data)
        self._advance()

    def _advance(self) -> None:
        if not self.handshaken:
            try:
                self.tls.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return
            except SSL.Error as e:
                self._flush()  # the alert, if OpenSSL made one
                self._fail(f"handshake failed: {describe(e)}")
                return
            self.handshaken = True
            self.inner.on_data = self._read
            self._flush()
            self.on_handshake(self)
            if self.lost or self.inner.lost:
                return
        self._read()

    def _read(self, cipher: bytes = b"") -> None:
        try:
            data, eof = self._decrypt(cipher)  # eof: close_notify, the end of input
        except SSL.Error as e:
            self._flush()
            self._fail(f"TLS error: {describe(e)}")
            return
        if data:
            self.received += len(data)
            self.on_data(data)
        else:
            # Only records without data (a session ticket, an alert): what OpenSSL
            # answers goes out now. After data it waits for the next write, or the close.
            self._flush()
        if eof and not self._eof:
            self._eof = True
            self.on_eof(self)

    def _fail(self, reason: str) -> None:
        if not self.handshaken:
            callback, self.on_failed = self.on_failed, _ignore
            self.inner.abort()
            callback(self, reason)
        else:
            self.inner.abort()

    def _inner_eof(self, _inner: Stream) -> None:
        # A FIN without close_notify: the peer will send no more (a truncation attack
        # shows as a body that ends early, which HTTP's framing catches).
        if not self._eof and self.handshaken:
            self._eof = True
            self.on_eof(self)
        elif not self.handshaken:
            self._fail("the peer closed during the handshake")

    def _inner_lost(self, _inner: Stream, reason: Any) -> None:
        self.lost = True
        if not self.handshaken:
            callback, self.on_failed = self.on_failed, _ignore
            callback(self, "the connection was lost during the handshake")
        self.on_lost(self, reason)
