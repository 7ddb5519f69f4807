"""Heads on the way out: canonical, and without what is hop-by-hop."""

from __future__ import annotations

from zfw.http.messages import Request, Response
from zfw.http.serialize import end_to_end, serialize_request, serialize_response


def test_end_to_end_drops_what_connection_names():
    headers = ((b"Connection", b"X-A, keep-alive"), (b"X-A", b"1"), (b"Server", b"s"))
    index = {b"connection": [b"X-A, keep-alive"], b"x-a": [b"1"], b"server": [b"s"]}
    assert end_to_end(headers, index) == ((b"Server", b"s"),)
    assert end_to_end(headers) == ((b"Server", b"s"),)
    kept = ((b"Server", b"s"),)
    assert end_to_end(kept, {b"server": [b"s"]}) is kept


def test_heads_without_fields_end_at_once():
    assert serialize_request(Request(b"GET", b"/", (1, 1), ())) == b"GET / HTTP/1.1\r\n\r\n"
    assert serialize_response(Response(204, b"No Content", (1, 1), ())) == (
        b"HTTP/1.1 204 No Content\r\n\r\n"
    )
