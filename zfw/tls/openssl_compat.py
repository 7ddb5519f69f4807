"""The pyOpenSSL internals TlsStream's data path uses, in one place, checked first.

Each record zfw decrypts or encrypts passes through pyOpenSSL's ``bio_write``,
``recv``, ``send`` and ``bio_read``. Their Python wrappers cost more than the
cryptography does for the small records of HTTP: a buffer allocated per call,
and an exception to say that a memory BIO is empty, which happens on every
read. :class:`FastIO` calls the same OpenSSL functions through pyOpenSSL's
cffi binding (``OpenSSL.SSL._lib``) on the connection's own ``SSL`` and BIOs,
into one scratch buffer; it asks ``SSL_get_error`` instead of catching, and
stops reading when the incoming BIO is empty instead of asking OpenSSL once
more; ``bench/tls_inspect.py`` measures the difference. :class:`PublicIO` does
the same with the public API. Both have two calls for the data path:
:meth:`~FastIO.read` (ciphertext in, plaintext out) and :meth:`~FastIO.seal`
(plaintext in, ciphertext out).

:func:`check` verifies the names and drives two connections through a
handshake, data both ways and a close_notify with :class:`FastIO`; when
anything differs, or ``ZFW_OPENSSL_INTERNALS=public`` is set, :func:`io` is
:class:`PublicIO`. Nothing outside this module touches a private member of
pyOpenSSL. The scratch buffer is shared: TLS streams run on the reactor's
thread only.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from OpenSSL import SSL

#: The environment variable that turns the fast path off.
SWITCH = "ZFW_OPENSSL_INTERNALS"
#: The most plaintext one TLS record holds.
RECORD = 16384
#: Bytes taken from OpenSSL at once: plaintext given to ``SSL_write`` per call, and
#: ciphertext read from the memory BIO per call.
CHUNK = 4 * RECORD

_LIB_NAMES = ("SSL_read", "SSL_write", "SSL_get_error", "BIO_read", "BIO_write",
              "BIO_get_mem_data", "SSL_ERROR_WANT_READ", "SSL_ERROR_ZERO_RETURN")  # fmt: skip
_CONNECTION_NAMES = ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error")


class PublicIO:
    """The data path on pyOpenSSL's public API."""

    name = "public"

    @staticmethod
    def feed(conn: SSL.Connection, data: bytes) -> None:
        """Give OpenSSL ciphertext from the peer."""
        if data:
            conn.bio_write(data)

    @staticmethod
    def read(conn: SSL.Connection, data: bytes = b"") -> tuple[bytes, bool]:
        """Feed ``data`` (ciphertext), then the plaintext OpenSSL can decrypt now
        (b"": none) and whether close_notify came; raises SSL.Error."""
        if data:
            conn.bio_write(data)
        pieces = []
        while True:
            try:
                pieces.append(conn.recv(RECORD))
            except SSL.WantReadError:
                eof = False
                break
            except SSL.ZeroReturnError:
                eof = True
                break
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), eof

    @classmethod
    def seal(cls, conn: SSL.Connection, data: bytes) -> bytes:
        """Encrypt all of ``data``, a record at a time (pyOpenSSL's contexts allow
        partial writes); the ciphertext. Raises SSL.Error."""
        view = memoryview(data)
        while view:
            view = view[conn.send(view[:RECORD]) :]
        return cls.drain(conn)

    @staticmethod
    def drain(conn: SSL.Connection) -> bytes:
        """The ciphertext OpenSSL has written to its outgoing BIO (b"": none)."""
        out = []
        while True:
            try:
                chunk = conn.bio_read(CHUNK)
            except SSL.WantReadError:
                break
            out.append(chunk)
            if len(chunk) < CHUNK:  # a memory BIO gives all it has: now empty
                break
        return out[0] if len(out) == 1 else b"".join(out)


class FastIO:
    """The data path through pyOpenSSL's cffi binding (see the module's text)."""

    name = "fast"

    def __init__(self) -> None:
        from OpenSSL.SSL import _ffi, _lib

        self.ffi, self.lib = _ffi, _lib
        self.scratch = _ffi.new("char[]", CHUNK)
        self.want_read = _lib.SSL_ERROR_WANT_READ
        self.zero_return = _lib.SSL_ERROR_ZERO_RETURN

    def feed(self, conn: SSL.Connection, data: bytes) -> None:
        if data:
            self._feed(conn._into_ssl, data)

    def _feed(self, bio: Any, data: bytes) -> None:
        if type(data) is not bytes:  # cffi passes bytes to a pointer as they are
            data = bytes(data)
        if self.lib.BIO_write(bio, data, len(data)) != len(data):
            raise SSL.Error("BIO_write did not take all the data")

    def read(self, conn: SSL.Connection, data: bytes = b"") -> tuple[bytes, bool]:
        lib, ssl, into, scratch = self.lib, conn._ssl, conn._into_ssl, self.scratch
        if data:
            self._feed(into, data)
        pieces = []
        while True:
            n = lib.SSL_read(ssl, scratch, RECORD)
            if n > 0:
                pieces.append(self.ffi.unpack(scratch, n))
                # A record was read whole (none holds more than RECORD); with nothing
                # left in the BIO the next SSL_read could only say "want read" (OpenSSL
                # reads no further ahead than a record: _probe checks that).
                if lib.BIO_get_mem_data(into, self.ffi.NULL) == 0:
                    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), False
                continue
            error = lib.SSL_get_error(ssl, n)
            if error == self.want_read or error == self.zero_return:
                return b"".join(pieces), error == self.zero_return
            conn._raise_ssl_error(ssl, n)  # the exception pyOpenSSL would raise
            raise SSL.Error(f"SSL_read failed ({error})")

    def seal(self, conn: SSL.Connection, data: bytes) -> bytes:
        size = len(data)
        # One record's worth of bytes goes as it is (cffi passes bytes to a pointer);
        # what a record did not take (the peer may have asked for smaller records),
        # and anything longer, through a buffer.
        done = self._write(conn, data, size) if type(data) is bytes and size <= RECORD else 0
        if done < size:
            with self.ffi.from_buffer(data) as buf:
                while done < size:
                    done += self._write(conn, buf + done, min(RECORD, size - done))
        return self.drain(conn)

    def _write(self, conn: SSL.Connection, buf: Any, size: int) -> int:
        n = self.lib.SSL_write(conn._ssl, buf, size)
        if n <= 0:
            conn._raise_ssl_error(conn._ssl, n)
            raise SSL.Error("SSL_write failed")
        return n

    def drain(self, conn: SSL.Connection) -> bytes:
        lib, bio, scratch, unpack = self.lib, conn._from_ssl, self.scratch, self.ffi.unpack
        n = lib.BIO_read(bio, scratch, CHUNK)
        if n < CHUNK:
            return unpack(scratch, n) if n > 0 else b""
        out = [unpack(scratch, n)]
        while n == CHUNK:
            n = lib.BIO_read(bio, scratch, CHUNK)
            if n > 0:
                out.append(unpack(scratch, n))
        return b"".join(out)


class _State:
    def __init__(self) -> None:
        self.io: PublicIO | FastIO | None = None
        self.reason = ""


_state = _State()


def _pair() -> tuple[SSL.Connection, SSL.Connection]:
    """A client and a server connection on memory BIOs, with a throwaway certificate."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from zfw.tls.certs import ca_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca_certificate(key, "zfw self-check", 1)
    server_ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    server_ctx.use_certificate(cert)
    server_ctx.use_privatekey(key)
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    return client, server


def _shuttle(a: SSL.Connection, b: SSL.Connection, io: Any) -> None:
    io.feed(b, io.drain(a))


def _handshake(client: SSL.Connection, server: SSL.Connection, io: Any) -> None:
    """The handshake of a pair from :func:`_pair` (public API; records through ``io``)."""
    for _ in range(10):
        for conn in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                conn.do_handshake()
        _shuttle(client, server, io)
        _shuttle(server, client, io)


def _probe(io: FastIO) -> list[str]:
    """Two connections through a handshake (public API), then data and a close_notify
    both ways through ``io``; what did not come out as pyOpenSSL's own calls would."""
    client, server = _pair()
    _handshake(client, server, io)
    problems = []
    if io.read(client) != (b"", False):
        problems.append("an empty read does not say 'want read'")
    # Three records in the BIO at once (one of them a single byte), fed in two parts
    # that cut a record: read ahead by OpenSSL would leave records unread here.
    records = io.seal(client, b"p" * 20000) + io.seal(client, b"!")
    if io.read(server, records[:100]) != (b"", False):
        problems.append("part of a record gave data")
    if io.read(server, records[100:]) != (b"p" * 20000 + b"!", False):
        problems.append("data did not come through")
    server.shutdown()
    if io.read(client, io.drain(server)) != (b"", True):
        problems.append("close_notify was not seen")
    if io.drain(client) != b"":
        problems.append("an empty BIO gave data")
    return problems


def check() -> list[str]:
    """What no longer holds of the internals FastIO assumes (empty: all holds)."""
    try:
        from OpenSSL.SSL import _ffi, _lib
    except ImportError as e:
        return [f"pyOpenSSL's binding is not where it was: {e}"]
    problems = [f"OpenSSL.SSL._lib.{n} is gone" for n in _LIB_NAMES if not hasattr(_lib, n)]
    problems += [f"OpenSSL.SSL._ffi.{n} is gone" for n in ("new", "unpack", "from_buffer", "NULL")
                 if not hasattr(_ffi, n)]  # fmt: skip
    if problems:
        return problems
    try:
        client, _server = _pair()
        missing = [n for n in _CONNECTION_NAMES if not hasattr(client, n)]
        if missing:
            return [f"SSL.Connection has no {', '.join(missing)}"]
        return _probe(FastIO())
    except Exception as e:  # any surprise means: do not rely on it
        return [f"a connection behaved unexpectedly: {type(e).__name__}: {e}"]


def io() -> PublicIO | FastIO:
    """The data path to use (checked once, on first use)."""
    if _state.io is None:
        if os.environ.get(SWITCH) == "public":
            _state.io, _state.reason = PublicIO(), f"{SWITCH}=public"
        else:
            problems = check()
            _state.io = PublicIO() if problems else FastIO()
            _state.reason = "; ".join(problems)
    return _state.io


def status() -> str:
    """One line for the log: which way TLS records pass pyOpenSSL."""
    if io().name == "fast":
        return "pyOpenSSL internals checked: the TLS data path is fast"
    return f"pyOpenSSL's public API only ({_state.reason}): correct, but slower"


def use(implementation: PublicIO | FastIO | None) -> None:
    """Use ``implementation`` from now on (None: check again on next use); tests."""
    _state.io, _state.reason = implementation, "chosen" if implementation else ""
