"""Whether a connection's first bytes can be TLS at all (sans-IO).

Used once, on what a client sends first on a TLS port, to tell another
protocol from TLS, even broken TLS: a handshake record header (0x16 0x03) or
an SSLv2-style hello is TLS, and the ClientHello reader judges it as ever;
anything else is not.
"""

from __future__ import annotations

from zfw.http.sniff import first_line


def not_tls(data: bytes) -> tuple[bool, str | None]:
    """Whether ``data`` decide, and if so why they cannot start a TLS ClientHello
    (None: they may). Undecided with fewer than 3 bytes that might start one."""
    first = data[:1]
    if first == b"\x16":
        if len(data) < 2:
            return False, None
        if data[1] == 3:
            return True, None
    elif first and first[0] & 0x80:  # SSLv2-style: length, then message type 1
        if len(data) < 3:
            return False, None
        if data[2] == 1:
            return True, None
    elif not first:
        return False, None
    return True, f"the first bytes are {first_line(data)}"
