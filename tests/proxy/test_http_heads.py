"""HttpProxy logs the heads both ways at ``http.head`` level 6, credentials masked."""

from __future__ import annotations

from tests.proxy.harness import ProxyHarness
from zfw.proxy.http import HttpProxy


def _heads(log: str) -> list[str]:
    return [ln.split("http.head(6): ", 1)[1] for ln in log.splitlines() if "http.head(6)" in ln]


def test_heads_both_ways_with_credentials_masked():
    h = ProxyHarness(HttpProxy, ("198.51.100.1", 80))
    h.send(
        b"GET /a HTTP/1.1\r\nHost: www.example.com\r\nAuthorization: Basic dXNlcjpzZWNyZXQ=\r\n"
        b"Cookie: sid=s3cret; lang=en\r\n\r\n"
    )
    h.connect()
    assert b"dXNlcjpzZWNyZXQ=" in h.to_server()  # masked in the log only
    h.reply(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=n3w; Path=/\r\nContent-Length: 2\r\n\r\nok")
    assert h.to_client().endswith(b"ok")
    heads = _heads(h.log())
    assert heads[:4] == [
        "(i/http:1): request from client: GET /a HTTP/1.1",
        "(i/http:1): request from client: Host: www.example.com",
        "(i/http:1): request from client: Authorization: Basic ***",
        "(i/http:1): request from client: Cookie: sid=***; lang=***",
    ]
    assert "(i/http:1): request to server: Authorization: Basic ***" in heads
    assert "(i/http:1): response from server: HTTP/1.1 200 OK" in heads
    assert "(i/http:1): response from server: Set-Cookie: sid=***; Path=/" in heads
    assert "(i/http:1): response to client: Set-Cookie: sid=***; Path=/" in heads
    assert "(i/http:1): response to client: Content-Length: 2" in heads
    for secret in ("dXNlcjpzZWNyZXQ=", "s3cret", "n3w"):
        assert secret not in h.log()
