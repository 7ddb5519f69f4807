"""The server's first answer as the TLS tunnel reads it: HelloRetryRequest or not, and
the version the server chose."""

from __future__ import annotations

import pytest

from zfw.tls.retry import HRR_RANDOM, ServerFirstReader


def server_hello(random: bytes = b"\x11" * 32, exts: bytes = b"", session: bytes = b"") -> bytes:
    body = b"\x03\x03" + random + bytes([len(session)]) + session + b"\x13\x01\x00"
    if exts:
        body += len(exts).to_bytes(2, "big") + exts
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs


TLS13 = b"\x00\x33\x00\x02\x00\x1d" + b"\x00\x2b\x00\x02\x03\x04"  # key_share, then versions


@pytest.mark.parametrize(
    ("data", "retry", "version"),
    [
        (server_hello(exts=TLS13, session=bytes(32)), False, 0x0304),
        (server_hello(), False, 0x0303),  # TLS 1.2: no extensions at all
        (server_hello(exts=b"\xff\x01\x00\x01\x00"), False, 0x0303),
        (server_hello(HRR_RANDOM, exts=TLS13), True, 0x0304),
        (b"\x15\x03\x03\x00\x02\x02\x28", False, None),  # an alert
    ],
)
def test_retry_and_chosen_version_whatever_the_segmentation(data, retry, version):
    for size in (1, 7, len(data)):
        r = ServerFirstReader()
        results = [r.feed(data[i : i + size]) for i in range(0, len(data), size)]
        assert results[-1] is retry and all(x is None or x is retry for x in results)
        assert r.version == version


def test_a_server_hello_over_two_records():
    data = server_hello(exts=TLS13)
    hs = data[5:]
    two = b"".join(
        b"\x16\x03\x03" + len(part).to_bytes(2, "big") + part for part in (hs[:40], hs[40:])
    )
    r = ServerFirstReader()
    assert r.feed(two) is False and r.version == 0x0304


def test_a_malformed_versions_extension_leaves_the_legacy_version():
    r = ServerFirstReader()
    assert r.feed(server_hello(exts=b"\x00\x2b\x00\x03\x03\x04\x00")) is False
    assert r.version == 0x0303
