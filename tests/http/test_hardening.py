"""What request smuggling and cache poisoning need, refused by the HTTP core: framing
look-alikes, Host values outside RFC 9112's grammar, and a bad request behind good ones."""

from __future__ import annotations

import pytest

from zfw.http.messages import Broken, EndOfMessage, HttpViolation, Limits, Request, Response
from zfw.http.parser import Parser

LOOKALIKES = [
    b"Content_Length",
    b"content_length",
    b"Transfer_Encoding",
    b"Content.Length",
    b"Transfer+Encoding",
    b"CONTENT_LENGTH",
]


@pytest.mark.parametrize("name", LOOKALIKES, ids=lambda n: n.decode())
def test_framing_lookalikes_are_refused(name):
    data = b"POST / HTTP/1.1\r\nHost: a\r\n" + name + b": 5\r\n\r\n"
    with pytest.raises(HttpViolation) as info:
        Parser("request").feed(data)
    assert info.value.status == 400 and "looks like a framing header" in info.value.reason


def test_a_lookalike_can_be_dropped_instead():
    p = Parser("request", Limits(framing_lookalikes="drop"))
    [req, end] = p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\nX: y\r\n\r\nGET /x")
    assert isinstance(req, Request) and req.headers == ((b"Host", b"a"), (b"X", b"y"))
    assert b"content_length" not in req.fields and isinstance(end, EndOfMessage)


def test_lookalikes_in_responses_are_a_502():
    p = Parser("response")
    p.expect(b"GET")
    with pytest.raises(HttpViolation) as info:
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\nhi")
    assert info.value.status == 502


@pytest.mark.parametrize(
    "name", [b"Content-Length-X", b"Content-Lengths", b"X-Content-Length", b"ContentLength"]
)
def test_other_names_are_ordinary_fields(name):
    [req, _end] = Parser("request").feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": 5\r\n\r\n")
    assert (name, b"5") in req.headers


BAD_HOSTS = [
    b"a.example, b.example",  # a list
    b"a.example,b.example",
    b"user@a.example",  # userinfo
    b"a.example/path",  # a path
    b"a.example:99999",  # port out of range
    b"a.example:0",
    b"a.example:8x",
    b"[2001:db8::1",  # an unclosed IPv6 literal
    b"[not:an:address]",
    b"a example",
    b"a.example?x",
]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=lambda h: h.decode())
def test_hosts_rfc_9112_refuses(host):
    with pytest.raises(HttpViolation) as info:
        Parser("request").feed(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert info.value.status == 400


@pytest.mark.parametrize(
    "host",
    [b"a.example", b"a.example:8080", b"[2001:db8::1]:443", b"192.0.2.1", b"a.example:", b""],
)
def test_good_hosts(host):
    [req, _end] = Parser("request").feed(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert req.fields[b"host"] == [host]


@pytest.mark.parametrize(
    "target", [b"http://a.example,b.example/", b"http://a.example:99999/", b"http://u@a.example/"]
)
def test_absolute_form_targets_the_same_way(target):
    from zfw.http.targets import absolute_target

    with pytest.raises(HttpViolation):
        absolute_target(target)


def test_a_bad_request_behind_good_ones_comes_after_them():
    p = Parser("request")
    events = p.feed(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n"
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Request", "EndOfMessage", "Request", "Data", "EndOfMessage", "Broken"]
    assert events[-1] == Broken(400, "malformed Content-Length b'1x'")
    with pytest.raises(HttpViolation):  # nothing more is read from a broken stream
        p.feed(b"GET /4 HTTP/1.1\r\nHost: a\r\n\r\n")


def test_a_bad_first_request_still_raises():
    with pytest.raises(HttpViolation):
        Parser("request").feed(b"GARBAGE\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")


def test_a_broken_response_stream_after_a_good_response():
    p = Parser("response")
    p.expect(b"GET")
    p.expect(b"GET")
    events = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nX\r\n\r\n")
    assert isinstance(events[0], Response) and isinstance(events[-1], Broken)


@pytest.mark.parametrize(
    "field", [b"Transfer-Encoding: chunked", b"Content-Length: 5", b"Host: b", b"Content_Length: 1"]
)
def test_framing_and_routing_fields_in_trailers_are_refused(field):
    """Found by the fuzzer's differential check (h11 refuses them): a backend that merges
    trailers into the head would read them."""
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + field
        + b"\r\n\r\n"
    )
    with pytest.raises(HttpViolation) as info:
        _all(Parser("request"), data)
    assert info.value.status == 400 and "in the trailers" in info.value.reason


def test_ordinary_trailers_pass():
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Sum: 1\r\n\r\n"
    events = Parser("request").feed(data)
    assert events[-1] == EndOfMessage(((b"X-Sum", b"1"),))


def _all(parser, data):
    events = parser.feed(data)
    if events and isinstance(events[-1], Broken):
        raise HttpViolation(events[-1].status, events[-1].reason)
    return events
