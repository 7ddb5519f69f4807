"""Data-channel addresses inside FTP: ``PORT``/``227`` (RFC 959) and
``EPRT``/``229`` (RFC 2428), parsed strictly and produced exactly.

Every parser returns ``(host, port)`` (or the port alone for ``229``) and
raises :class:`~zfw.ftp.core.FtpViolation` with a reason when the text is
not exactly the documented form.
"""

from __future__ import annotations

import ipaddress
import re

from zfw.ftp.core import FtpViolation

_BYTE = r"(?:0|[1-9][0-9]{0,2})"
_SIX = re.compile(r",".join([f"({_BYTE})"] * 6))
_SIX_IN_TEXT = re.compile(r"(?<![0-9,])([0-9]{1,3}(?:,[0-9]{1,3}){5})(?![0-9,])")
_EPSV_TEXT = re.compile(r"[^(]*\(([\x21-\x7e])\1\1([0-9]{1,5})\1\).*", re.S)
_PORT_NUMBER = re.compile(r"[1-9][0-9]{0,4}")


def _six(text: str, what: str) -> tuple[str, int]:
    m = _SIX.fullmatch(text)
    if m is None:
        raise FtpViolation(f"malformed {what} address {text[:60]!r}")
    nums = [int(g) for g in m.groups()]
    if any(n > 255 for n in nums):
        raise FtpViolation(f"{what} address {text[:60]!r} has a number above 255")
    port = nums[4] * 256 + nums[5]
    if port == 0:
        raise FtpViolation(f"{what} address names port 0")
    return ".".join(map(str, nums[:4])), port


def parse_port(arg: str | None) -> tuple[str, int]:
    """``PORT h1,h2,h3,h4,p1,p2`` -> ``(host, port)``."""
    return _six(arg or "", "PORT")


def format_port(host: str, port: int) -> str:
    """The argument of ``PORT`` (and the numbers of a ``227``) for an IPv4 address."""
    ip = ipaddress.IPv4Address(host)
    return ",".join([*str(ip).split("."), str(port >> 8), str(port & 0xFF)])


def parse_pasv_reply(text: str) -> tuple[str, int]:
    """The address in a ``227`` reply text.

    RFC 1123 4.1.2.6: the numbers may stand anywhere in the text (usually in
    parentheses); exactly one group of six is accepted.
    """
    found = _SIX_IN_TEXT.findall(text)
    if len(found) != 1:
        raise FtpViolation(f"227 reply without exactly one address: {text[:60]!r}")
    return _six(found[0], "227")


def format_pasv_reply(host: str, port: int) -> str:
    """The text of our own ``227`` reply."""
    return f"Entering Passive Mode ({format_port(host, port)})."


def _ip(text: str, version: int) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise FtpViolation(f"EPRT address {text[:46]!r} is not an IP address") from None
    if ip.version != version:
        raise FtpViolation(f"EPRT address {text!r} is not of protocol {1 if version == 4 else 2}")
    return str(ip)


def parse_eprt(arg: str | None) -> tuple[str, int]:
    """``EPRT |1|132.235.1.2|6275|`` (or ``|2|`` with an IPv6 address) -> ``(host, port)``.

    The delimiter is the first character (ASCII 33-126, RFC 2428).
    """
    arg = arg or ""
    d = arg[:1]
    if not d or not "\x21" <= d <= "\x7e" or d.isdigit():
        raise FtpViolation(f"malformed EPRT argument {arg[:60]!r}")
    parts = arg.split(d)
    if len(parts) != 5 or parts[0] or parts[4]:
        raise FtpViolation(f"malformed EPRT argument {arg[:60]!r}")
    proto, host, port = parts[1:4]
    if proto not in ("1", "2"):
        raise FtpViolation(f"EPRT network protocol {proto[:8]!r} is not 1 or 2")
    if not _PORT_NUMBER.fullmatch(port) or int(port) > 65535:
        raise FtpViolation(f"EPRT port {port[:8]!r} is not 1-65535")
    return _ip(host, 4 if proto == "1" else 6), int(port)


def format_eprt(host: str, port: int) -> str:
    """The argument of ``EPRT`` for ``host``."""
    ip = ipaddress.ip_address(host)
    return f"|{1 if ip.version == 4 else 2}|{ip}|{port}|"


def parse_epsv_reply(text: str) -> int:
    """The port in a ``229`` reply text: ``... (|||6446|)``."""
    m = _EPSV_TEXT.fullmatch(text)
    if m is None:
        raise FtpViolation(f"malformed 229 reply {text[:60]!r}")
    port = m.group(2)
    if not _PORT_NUMBER.fullmatch(port) or int(port) > 65535:
        raise FtpViolation(f"229 reply port {port!r} is not 1-65535")
    return int(port)


def format_epsv_reply(port: int) -> str:
    """The text of our own ``229`` reply."""
    return f"Entering Extended Passive Mode (|||{port}|)."
