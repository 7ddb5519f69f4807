"""A sans-IO reader of the TLS ClientHello: bytes in, one result (or an error) out.

It reassembles the handshake message across TLS records and TCP segments,
checks its structure strictly and extracts what a policy decides by: the
server name (SNI), ALPN protocols, supported versions, and whether the
hello is encrypted (ECH). Anything malformed or unexpected raises
:class:`TlsViolation`; nothing is ever "allowed by default". No Twisted here.
"""

from __future__ import annotations

import re

import attrs

RECORD_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
MAX_RECORD = 1 << 14  # plaintext record limit (RFC 8446 5.1)

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_ECH = 0xFE0D

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class TlsViolation(Exception):
    """The client's first bytes are not an acceptable ClientHello; the reason says why."""


@attrs.frozen
class ClientHello:
    """What a policy may decide on."""

    sni: str | None
    alpn: tuple[str, ...]
    versions: tuple[int, ...]
    legacy_version: int
    ech: bool
    size: int  # bytes of records the hello took, all of which go to the server unchanged

    @property
    def highest_version(self) -> int:
        """The highest TLS version offered (supported_versions, else legacy_version)."""
        return max(self.versions) if self.versions else self.legacy_version


def version_name(v: int) -> str:
    """``0x0304`` -> ``TLSv1.3``."""
    names = {
        0x0300: "SSLv3",
        0x0301: "TLSv1.0",
        0x0302: "TLSv1.1",
        0x0303: "TLSv1.2",
        0x0304: "TLSv1.3",
    }
    return names.get(v, f"0x{v:04x}")


class _Reader:
    """Bounds-checked reads from one bytes object."""

    def __init__(self, data: bytes, what: str):
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TlsViolation(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, length_bytes: int, minimum: int, maximum: int, what: str) -> _Reader:
        n = int.from_bytes(self.take(length_bytes), "big")
        if not minimum <= n <= maximum:
            raise TlsViolation(f"{what} has a bad length ({n})")
        return _Reader(self.take(n), what)

    def done(self) -> bool:
        return self.pos == len(self.data)

    def expect_end(self) -> None:
        if not self.done():
            raise TlsViolation(f"{self.what} has {len(self.data) - self.pos} trailing bytes")


def check_hostname(name: bytes) -> str:
    """The SNI host name, lower-cased, if it is a valid DNS name (RFC 6066 3)."""
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        raise TlsViolation("server name is not ASCII") from None
    text = text.lower()
    if not text or len(text) > 253 or text.endswith("."):
        raise TlsViolation(f"invalid server name {text!r}")
    labels = text.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise TlsViolation(f"invalid server name {text!r}")
    if all(label.isdigit() for label in labels):
        raise TlsViolation(f"server name {text!r} is an IP address")
    return text


def parse_client_hello(body: bytes, size: int) -> ClientHello:
    """Parse a ClientHello handshake body (after its 4-byte header)."""
    r = _Reader(body, "ClientHello")
    legacy_version = r.u16()
    if legacy_version < 0x0301 or legacy_version > 0x0303:
        raise TlsViolation(f"ClientHello offers {version_name(legacy_version)}")
    r.take(32)  # random
    r.vector(1, 0, 32, "session id")
    suites = r.vector(2, 2, 0xFFFE, "cipher suites")
    if len(suites.data) % 2:
        raise TlsViolation("cipher suites have an odd length")
    r.vector(1, 1, 255, "compression methods")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ech = False
    if not r.done():
        exts = r.vector(2, 0, 0xFFFF, "extensions")
        r.expect_end()
        seen: set[int] = set()
        while not exts.done():
            ext_type = exts.u16()
            data = exts.vector(2, 0, 0xFFFF, f"extension {ext_type}")
            if ext_type in seen:
                raise TlsViolation(f"duplicate extension {ext_type}")
            seen.add(ext_type)
            if ext_type == EXT_SERVER_NAME:
                sni = _server_name(data)
            elif ext_type == EXT_ALPN:
                alpn = _alpn(data)
            elif ext_type == EXT_SUPPORTED_VERSIONS:
                versions = _versions(data)
            elif ext_type == EXT_ECH:
                ech = True
    return ClientHello(sni, alpn, versions, legacy_version, ech, size)


def _server_name(data: _Reader) -> str:
    names = data.vector(2, 1, 0xFFFF, "server name list")
    data.expect_end()
    found = []
    while not names.done():
        name_type = names.u8()
        name = names.vector(2, 1, 0xFFFF, "server name")
        if name_type != 0:
            raise TlsViolation(f"server name of unknown type {name_type}")
        found.append(check_hostname(name.data))
    if len(found) != 1:
        raise TlsViolation(f"{len(found)} server names")
    return found[0]


def _alpn(data: _Reader) -> tuple[str, ...]:
    protos = data.vector(2, 2, 0xFFFF, "ALPN list")
    data.expect_end()
    out = []
    while not protos.done():
        proto = protos.vector(1, 1, 255, "ALPN protocol")
        out.append(proto.data.decode("ascii", "backslashreplace"))
    return tuple(out)


def _versions(data: _Reader) -> tuple[int, ...]:
    vs = data.vector(1, 2, 254, "supported versions")
    data.expect_end()
    if len(vs.data) % 2:
        raise TlsViolation("supported versions have an odd length")
    return tuple(vs.u16() for _ in range(len(vs.data) // 2))


class ClientHelloReader:
    """Feed the client's bytes; :meth:`feed` returns the hello once it is complete.

    ``max_size`` bounds the handshake message (post-quantum key shares make
    hellos of 1.5 to 2 KB; the default leaves room for much more).
    """

    def __init__(self, max_size: int = 16384):
        self.max_size = max_size
        self.buffer = bytearray()
        self._handshake = bytearray()
        self._pos = 0  # start of the next unread record in buffer
        self.result: ClientHello | None = None

    def feed(self, data: bytes) -> ClientHello | None:
        """Add bytes; the parsed hello when it is complete, else None.

        Raises :class:`TlsViolation` as soon as the bytes cannot be a hello.
        """
        if self.result is not None:
            self.buffer += data
            return self.result
        self.buffer += data
        while True:
            header = self.buffer[self._pos : self._pos + 5]
            if len(header) < 5:
                if self._pos == 0 and len(header) >= 1:
                    self._check_first_byte(header)
                return None
            self._check_first_byte(header)
            ctype = header[0]
            version = int.from_bytes(header[1:3], "big")
            length = int.from_bytes(header[3:5], "big")
            if ctype != RECORD_HANDSHAKE:
                raise TlsViolation(f"record of type {ctype} before the ClientHello")
            if version >> 8 != 3 or version > 0x0304:
                raise TlsViolation(f"record version 0x{version:04x}")
            if not 0 < length <= MAX_RECORD:
                raise TlsViolation(f"record length {length}")
            end = self._pos + 5 + length
            if len(self.buffer) < end:
                return None
            self._handshake += self.buffer[self._pos + 5 : end]
            self._pos = end
            if len(self._handshake) > self.max_size + 4:
                raise TlsViolation(f"ClientHello larger than {self.max_size} bytes")
            hello = self._try_handshake()
            if hello is not None:
                self.result = hello
                return hello

    def _check_first_byte(self, header: bytes) -> None:
        if self._pos == 0 and header[0] & 0x80:
            raise TlsViolation("SSLv2-style ClientHello")

    def _try_handshake(self) -> ClientHello | None:
        hs = self._handshake
        if len(hs) < 4:
            return None
        if hs[0] != HANDSHAKE_CLIENT_HELLO:
            raise TlsViolation(f"handshake message {hs[0]} instead of ClientHello")
        length = int.from_bytes(hs[1:4], "big")
        if length > self.max_size:
            raise TlsViolation(f"ClientHello larger than {self.max_size} bytes ({length})")
        if len(hs) < 4 + length:
            return None
        if len(hs) > 4 + length:
            raise TlsViolation("more handshake data after the ClientHello")
        return parse_client_hello(bytes(hs[4 : 4 + length]), self._pos)
