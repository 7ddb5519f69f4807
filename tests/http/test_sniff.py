"""Telling another protocol from HTTP by a connection's first bytes."""

from __future__ import annotations

import pytest

from zfw.http.sniff import first_line, not_http

SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (SSH, "an SSH banner 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3'"),
        (b"SSH-1.99-x", "an SSH banner 'SSH-1.99-x'"),
        (b"\x16\x03\x01\x02\x00", "a TLS handshake record (0x16 0x03)"),
        (b"hello\r\n", "the first line is 'hello'"),
        (b"GET\r\n", "the first line is 'GET'"),
        (b"{json", "the first line is '{json'"),
        (b"\x00\x01", "the first line is '\\x00\\x01'"),
        (b"\x16\x01", "the first line is '\\x16\\x01'"),
    ],
)
def test_first_bytes_that_rule_a_request_line_out(data, why):
    assert not_http(data) == (True, why)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"GET ",
        b"BREW /pot HTTP/1.1\r\n",  # an unknown method is HTTP: the policy refuses it
        b"GET\t/ HTTP/1.1\r\n",  # a server may split on tabs: never tunnelled
        b"\r\nGET / HTTP/1.1\r\n",  # a leading empty line, which servers skip
        b"\nGET / HTTP/1.1\r\n",
        b"SSH-2.0 x",  # not a banner: a token and a space
        b"EHLO client.example\r\n",  # may be a request line to a server: the parser's
    ],
)
def test_what_a_server_could_take_for_a_request_is_http(data):
    assert not_http(data) == (True, None)


@pytest.mark.parametrize("data", [b"", b"G", b"GET", b"SSH-2", b"SSH-2.0", b"\x16"])
def test_a_prefix_of_one_token_is_undecided(data):
    assert not_http(data) == (False, None)


def test_a_long_token_is_the_parsers():
    assert not_http(b"A" * 1024) == (True, None)


def test_first_line_is_short_and_escaped():
    assert first_line(b"a\x00b\r\nsecond") == "'a\\x00b'"
    assert len(first_line(b"x" * 500)) == 62
