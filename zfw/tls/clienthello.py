"""A sans-IO reader of the TLS ClientHello: bytes in, one result (or an error) out.

It reassembles the handshake message across TLS records and TCP segments,
checks its structure strictly and extracts what a policy decides by: the
server name (SNI), ALPN protocols, supported versions, cipher suites, groups,
signature algorithms, and whether it offers ECH. GREASE values (RFC 8701:
reserved values such as 0x7a7a that clients send so that peers keep ignoring
unknown ones) are left out of all of these. Anything malformed or unexpected
raises :class:`TlsViolation`; nothing is ever "allowed by default". No Twisted here.
"""

from __future__ import annotations

import re

import attrs

RECORD_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
MAX_RECORD = 1 << 14  # plaintext record limit (RFC 8446 5.1)

EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_ECH = 0xFE0D  # draft-ietf-tls-esni-13 and later

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def is_grease(value: int) -> bool:
    """Whether a 16-bit value is one of RFC 8701's GREASE values (0x0a0a ... 0xfafa)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def is_grease_alpn(proto: bytes) -> bool:
    """Whether an ALPN protocol is a GREASE one (the two bytes of a GREASE value)."""
    return len(proto) == 2 and is_grease(int.from_bytes(proto, "big"))


class TlsViolation(Exception):
    """The client's first bytes are not an acceptable ClientHello; the reason says why."""


@attrs.frozen
class ClientHello:
    """What a policy may decide on; no GREASE value is in any of it.

    ``ech``: the hello carries a well-formed ECH offer (an outer
    ECHClientHello). A client without an ECH configuration for the server sends a
    GREASE one instead (Chromium does on every connection), built to look exactly
    like a real one: ``ech`` means "may be ECH", the inner name is hidden only if
    it is real.
    """

    sni: str | None
    alpn: tuple[str, ...]
    versions: tuple[int, ...]
    legacy_version: int
    ech: bool
    size: int  # bytes of records the hello took, all of which go to the server unchanged
    suites: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()  # their types, in the order sent

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
    suites = _u16_list(r.vector(2, 2, 0xFFFE, "cipher suites"))
    r.vector(1, 1, 255, "compression methods")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    ech = False
    extensions: list[int] = []
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
            if is_grease(ext_type):
                continue  # its body is anything: nothing to check or report
            extensions.append(ext_type)
            if ext_type == EXT_SERVER_NAME:
                sni = _server_name(data)
            elif ext_type == EXT_ALPN:
                alpn = _alpn(data)
            elif ext_type == EXT_SUPPORTED_VERSIONS:
                versions = _versions(data)
            elif ext_type == EXT_SUPPORTED_GROUPS:
                groups = _u16_list(data.vector(2, 2, 0xFFFE, "supported groups"), data)
            elif ext_type == EXT_SIGNATURE_ALGORITHMS:
                sigalgs = _u16_list(data.vector(2, 2, 0xFFFE, "signature algorithms"), data)
            elif ext_type == EXT_ECH:
                ech = _ech(data)
    return ClientHello(
        sni, alpn, versions, legacy_version, ech, size, suites, groups, sigalgs, tuple(extensions)
    )


def _u16_list(items: _Reader, outer: _Reader | None = None) -> tuple[int, ...]:
    """A vector of 16-bit values, GREASE left out (``outer``: must end with it)."""
    if outer is not None:
        outer.expect_end()
    if len(items.data) % 2:
        raise TlsViolation(f"{items.what} have an odd length")
    values = (items.u16() for _ in range(len(items.data) // 2))
    return tuple(v for v in values if not is_grease(v))


def _ech(data: _Reader) -> bool:
    """Whether an ECH extension is an offer (the outer ECHClientHello of
    draft-ietf-tls-esni 5: type 0, cipher suite, config id, enc, payload); False for
    the inner type, which a hello already decrypted by a client-facing server carries."""
    kind = data.u8()
    if kind == 1:
        data.expect_end()
        return False
    if kind != 0:
        raise TlsViolation(f"ECH extension of unknown type {kind}")
    data.take(5)  # HPKE KDF and AEAD ids, config id
    data.vector(2, 0, 0xFFFF, "ECH enc")
    data.vector(2, 1, 0xFFFF, "ECH payload")
    data.expect_end()
    return True


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
        if not is_grease_alpn(proto.data):
            out.append(proto.data.decode("ascii", "backslashreplace"))
    return tuple(out)


def _versions(data: _Reader) -> tuple[int, ...]:
    return _u16_list(data.vector(1, 2, 254, "supported versions"), data)


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
