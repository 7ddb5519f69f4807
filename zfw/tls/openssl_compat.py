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
the same with the public API. For each connection, ``bind`` gives the two calls
of the data path: ``read`` (ciphertext in, plaintext out) and ``seal``
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
from collections.abc import Callable
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


#: What :meth:`FastIO.bind` gives for one connection: ``read(ciphertext=b"")``, the
#: plaintext OpenSSL can decrypt now (b"": none) and whether close_notify came, and
#: ``seal(plaintext)``, the ciphertext of all of it. Both raise SSL.Error.
Reader = Callable[..., tuple[bytes, bool]]
Sealer = Callable[[bytes], bytes]


class PublicIO:
    """The data path on pyOpenSSL's public API."""

    name = "public"

    @staticmethod
    def feed(conn: SSL.Connection, data: bytes) -> None:
        """Give OpenSSL ciphertext from the peer."""
        if data:
            conn.bio_write(data)

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

    @classmethod
    def bind(cls, conn: SSL.Connection) -> tuple[Reader, Sealer]:
        """The data path of ``conn`` (for use once its handshake is done)."""

        def read(data: bytes = b"") -> tuple[bytes, bool]:
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

        def seal(data: bytes) -> bytes:
            view = memoryview(data)
            while view:  # a record at a time (pyOpenSSL's contexts allow partial writes)
                view = view[conn.send(view[:RECORD]) :]
            return cls.drain(conn)

        return read, seal


class FastIO:
    """The data path through pyOpenSSL's cffi binding (see the module's text)."""

    name = "fast"

    def __init__(self) -> None:
        from OpenSSL.SSL import _ffi, _lib

        self.ffi, self.lib = _ffi, _lib
        self.scratch = _ffi.new("char[]", CHUNK)

    def feed(self, conn: SSL.Connection, data: bytes) -> None:
        if data:
            _feed(self.lib.BIO_write, conn._into_ssl, data)

    def drain(self, conn: SSL.Connection) -> bytes:
        return _drain(self.lib.BIO_read, conn._from_ssl, self.scratch, self.ffi.unpack)

    def bind(self, conn: SSL.Connection) -> tuple[Reader, Sealer]:
        """The data path of ``conn``: the same calls as :class:`PublicIO`'s, on the
        connection's ``SSL`` and BIOs, held here, into the shared scratch buffer."""
        lib, ffi, scratch = self.lib, self.ffi, self.scratch
        ssl, into, out = conn._ssl, conn._into_ssl, conn._from_ssl
        ssl_read, ssl_write, bio_read, bio_write, bio_size = (
            lib.SSL_read, lib.SSL_write, lib.BIO_read, lib.BIO_write, lib.BIO_get_mem_data
        )  # fmt: skip
        unpack, null, from_buffer = ffi.unpack, ffi.NULL, ffi.from_buffer
        want_read, zero_return = lib.SSL_ERROR_WANT_READ, lib.SSL_ERROR_ZERO_RETURN

        def read(data: bytes = b"") -> tuple[bytes, bool]:
            if data:
                _feed(bio_write, into, data)
            n = ssl_read(ssl, scratch, RECORD)
            # A record is read whole (none holds more than RECORD), and OpenSSL reads
            # no further ahead than a record (_probe checks that): with the BIO empty,
            # the next SSL_read could only say "want read".
            if n > 0 and not bio_size(into, null):
                return unpack(scratch, n), False  # the usual case: one record
            pieces = []
            while n > 0:
                pieces.append(unpack(scratch, n))
                if not bio_size(into, null):
                    return b"".join(pieces), False
                n = ssl_read(ssl, scratch, RECORD)
            error = lib.SSL_get_error(ssl, n)
            if error in (want_read, zero_return):
                return b"".join(pieces), error == zero_return
            raise failed(n)

        def failed(n: int) -> SSL.Error:
            conn._raise_ssl_error(ssl, n)  # the exception pyOpenSSL would raise
            return SSL.Error(f"OpenSSL failed ({n})")

        def seal(data: bytes) -> bytes:
            size = len(data)
            # One record's worth of bytes goes as it is (cffi passes bytes to a
            # pointer); what a record did not take (the peer may have asked for
            # smaller records), and anything longer, through a buffer.
            done = ssl_write(ssl, data, size) if type(data) is bytes and 0 < size <= RECORD else 0
            if done < size:
                if done < 0:
                    raise failed(done)
                with from_buffer(data) as buf:
                    while done < size:
                        n = ssl_write(ssl, buf + done, min(RECORD, size - done))
                        if n <= 0:
                            raise failed(n)
                        done += n
            n = bio_read(out, scratch, CHUNK)
            if 0 < n < CHUNK:
                return unpack(scratch, n)  # the usual case: all there is, at once
            return _drain(bio_read, out, scratch, unpack, n)

        return read, seal


def _feed(bio_write: Any, bio: Any, data: bytes) -> None:
    if type(data) is not bytes:  # cffi passes bytes to a pointer as they are
        data = bytes(data)
    if bio_write(bio, data, len(data)) != len(data):
        raise SSL.Error("BIO_write did not take all the data")


def _drain(bio_read: Any, bio: Any, scratch: Any, unpack: Any, n: int | None = None) -> bytes:
    """What ``bio`` holds, read into ``scratch``; ``n``: what a first read gave."""
    if n is None:
        n = bio_read(bio, scratch, CHUNK)
    out = [unpack(scratch, n)] if n > 0 else []
    while n == CHUNK:
        n = bio_read(bio, scratch, CHUNK)
        if n > 0:
            out.append(unpack(scratch, n))
    return out[0] if len(out) == 1 else b"".join(out)


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
    (client_read, client_seal), (server_read, server_seal) = io.bind(client), io.bind(server)
    problems = []
    if client_read() != (b"", False):
        problems.append("an empty read does not say 'want read'")
    # Three records in the BIO at once (one of them a single byte), fed in two parts
    # that cut a record: read ahead by OpenSSL would leave records unread here.
    records = client_seal(b"p" * 20000) + client_seal(b"!")
    if server_read(records[:100]) != (b"", False):
        problems.append("part of a record gave data")
    if server_read(records[100:]) != (b"p" * 20000 + b"!", False):
        problems.append("data did not come through")
    if client_read(server_seal(memoryview(b"pong"))) != (b"pong", False):
        problems.append("data did not come back")
    server.shutdown()
    if client_read(io.drain(server)) != (b"", True):
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
