"""Telling another protocol from TLS by a connection's first bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zfw.tls.sniff import not_tls

HELLO = (Path(__file__).parent / "hellos" / "curl.bin").read_bytes()


@pytest.mark.parametrize(
    "data",
    [HELLO, HELLO[:2], b"\x16\x03\x07", b"\x80\x2e\x01\x00\x02"],  # broken TLS is TLS
)
def test_a_handshake_record_or_an_sslv2_hello_is_tls(data):
    assert not_tls(data) == (True, None)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "the first bytes are 'SSH-2.0-OpenSSH_9.2'"),
        (b"GET / HTTP/1.1\r\n", "the first bytes are 'GET / HTTP/1.1'"),
        (b"\x17\x03\x03\x00\x10", "the first bytes are '\\x17\\x03\\x03\\x00\\x10'"),
        (b"\x16\x01", "the first bytes are '\\x16\\x01'"),
        (b"\x80\x2e\x02", "the first bytes are '\\x80.\\x02'"),
    ],
)
def test_anything_else_is_not(data, why):
    assert not_tls(data) == (True, why)


@pytest.mark.parametrize("data", [b"", b"\x16", b"\x80", b"\x80\x2e"])
def test_too_few_bytes_are_undecided(data):
    assert not_tls(data) == (False, None)
