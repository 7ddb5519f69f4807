"""After a HelloRetryRequest: the server's first answer, and the client's second hello.

TLS 1.3 lets a server answer a ClientHello with a HelloRetryRequest (a
ServerHello with a fixed ``random``), after which the client sends a second
ClientHello. A tunnel that decided on the first hello must read the second
before passing it on, or a client could name a permitted server first and
another one after. Sans-IO: bytes in, answers out.
"""

from __future__ import annotations

from zfw.tls.clienthello import ClientHello, ClientHelloReader, TlsViolation

#: RFC 8446 4.1.3: the ``random`` of a HelloRetryRequest, SHA-256("HelloRetryRequest").
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_HANDSHAKE, _CCS = 22, 20


class ServerFirstReader:
    """The server's first handshake message: whether it is a HelloRetryRequest, and
    the TLS version it chose (its ServerHello's supported_versions, else its
    legacy_version). Nothing here is trusted: the client checks it; this only reports."""

    #: A ServerHello (with a post-quantum key share) is about 1.2 KB; past this the
    #: version is left unknown rather than buffering more.
    MAX_HELLO = 16384

    def __init__(self) -> None:
        self._buf = bytearray()
        self._handshake = bytearray()
        self._left = 0  # bytes of the current record still to come
        self.result: bool | None = None
        self.version: int | None = None

    def feed(self, data: bytes) -> bool | None:
        """True: a HelloRetryRequest; False: anything else; None: not known yet."""
        if self.result is not None:
            return self.result
        self._buf += data
        while not self._complete():
            if self._left == 0:  # at a record header
                if len(self._buf) < 5:
                    return None
                if self._buf[0] != _HANDSHAKE:
                    self.result = False  # an alert, or not TLS: nothing to hold back
                    return False
                self._left = int.from_bytes(self._buf[3:5], "big")
                del self._buf[:5]
                continue
            take = self._buf[: self._left]
            if not take:
                return None
            self._handshake += take
            del self._buf[: len(take)]
            self._left -= len(take)
        hs = bytes(self._handshake)
        self.result = hs[0] == 2 and hs[6:38] == HRR_RANDOM
        if hs[0] == 2:
            self.version = _chosen_version(hs)
        return self.result

    def _complete(self) -> bool:
        """The whole ServerHello is in (or as much of another message as tells it apart)."""
        hs = self._handshake
        if len(hs) < 38:  # type, length (3), version (2), random (32)
            return False
        length = int.from_bytes(hs[1:4], "big")
        return hs[0] != 2 or length > self.MAX_HELLO or len(hs) >= 4 + length


def _chosen_version(hs: bytes) -> int | None:
    """The version a ServerHello chose; None if it is cut short or malformed."""
    length = int.from_bytes(hs[1:4], "big")
    body = hs[4 : 4 + length]
    if len(body) < length:
        return None
    pos = 34 + 1 + (body[34] if len(body) > 34 else 0) + 3  # session id, suite, compression
    if pos + 2 > len(body):
        return int.from_bytes(body[:2], "big") if pos == len(body) else None
    end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
    pos += 2
    while pos + 4 <= min(end, len(body)):
        ext_type = int.from_bytes(body[pos : pos + 2], "big")
        size = int.from_bytes(body[pos + 2 : pos + 4], "big")
        if ext_type == 43 and size == 2 and pos + 6 <= len(body):
            return int.from_bytes(body[pos + 4 : pos + 6], "big")
        pos += 4 + size
    return int.from_bytes(body[:2], "big")


class SecondHelloReader:
    """The client's hello after a HelloRetryRequest (a ChangeCipherSpec may come first,
    RFC 8446 D.4); :class:`TlsViolation` if it is anything else."""

    def __init__(self, max_size: int):
        self._buf = bytearray()
        self._reader = ClientHelloReader(max_size)

    def feed(self, data: bytes) -> ClientHello | None:
        """The second hello once complete, else None."""
        self._buf += data
        while len(self._buf) >= 6 and self._buf[0] == _CCS:
            length = int.from_bytes(self._buf[3:5], "big")
            if len(self._buf) < 5 + length:
                return None
            del self._buf[: 5 + length]
        if not self._buf or (self._buf[0] == _CCS and len(self._buf) < 6):
            return None
        data, self._buf = bytes(self._buf), bytearray()
        return self._reader.feed(data)


__all__ = ["HRR_RANDOM", "SecondHelloReader", "ServerFirstReader", "TlsViolation"]
