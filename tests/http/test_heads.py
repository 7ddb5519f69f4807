"""Heads as log lines: credentials masked, everything else as sent."""

from __future__ import annotations

import pytest

from zfw.http.heads import head_lines, masked, raw_head_lines


@pytest.mark.parametrize(
    ("name", "value", "logged"),
    [
        (b"Authorization", b"Basic dXNlcjpzZWNyZXQ=", b"Basic ***"),
        (b"proxy-authorization", b"Bearer abc.def.ghi", b"Bearer ***"),
        (b"Authorization", b"opaque-token", b"***"),
        (b"Cookie", b"session=s3cret; theme=dark", b"session=***; theme=***"),
        (b"Cookie", b"lonely", b"***"),
        (b"Set-Cookie", b"id=a3fWa; Path=/; HttpOnly", b"id=***; Path=/; HttpOnly"),
        (b"Host", b"www.example.com", b"www.example.com"),
    ],
)
def test_credentials_are_masked(name, value, logged):
    assert masked(name, value) == logged


def test_a_head_parsed_or_serialized_gives_the_same_lines():
    headers = [(b"Host", b"a.example"), (b"Authorization", b"Basic Zm9vOmJhcg==")]
    lines = ["GET / HTTP/1.1", "Host: a.example", "Authorization: Basic ***"]
    assert head_lines(b"GET / HTTP/1.1", headers) == lines
    raw = b"GET / HTTP/1.1\r\nHost: a.example\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\nbody"
    assert raw_head_lines(raw) == lines
