"""Request targets of a non-transparent proxy, and the CONNECT tunnel states."""

from __future__ import annotations

import pytest

from zfw.http.messages import EndOfMessage, HttpViolation, Request, Response
from zfw.http.parser import Parser
from zfw.http.targets import absolute_target, split_authority


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"http://www.example.org/a?b=1", ("www.example.org", 80, b"/a?b=1")),
        (b"HTTP://WWW.Example.ORG:8080", ("www.example.org", 8080, b"/")),
        (b"http://198.51.100.2?q", ("198.51.100.2", 80, b"/?q")),
        (b"http://[2001:db8:2::2]:81/x", ("2001:db8:2::2", 81, b"/x")),
    ],
)
def test_absolute_targets(target, expected):
    assert absolute_target(target) == expected


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/a", 400),  # origin-form
        (b"www.example.org:80", 400),  # authority-form outside CONNECT
        (b"https://www.example.org/", 501),
        (b"ftp://www.example.org/", 501),
        (b"http://user:pw@www.example.org/", 400),
        (b"http:///a", 400),  # no host
        (b"http://www.example.org:0/", 400),
        (b"http://www.example.org:65536/", 400),
        (b"http://www.example.org:/", 400),
        (b"http://[2001:db8::zz]/", 400),
        (b"http://[198.51.100.2]/", 400),
        (b"http://www.exa%6dple.org/", 400),
        (b"http://www.example.org/a#frag", 400),
    ],
)
def test_bad_absolute_targets(target, status):
    with pytest.raises(HttpViolation) as e:
        absolute_target(target)
    assert e.value.status == status


def test_authorities():
    assert split_authority(b"Example.ORG:443", None) == ("example.org", 443)
    assert split_authority(b"[2001:db8::1]:443", None) == ("2001:db8::1", 443)
    assert split_authority(b"example.org", 80) == ("example.org", 80)
    for bad in (b"example.org", b"example.org:", b"a b:443", b":443", b"example.org:443:1"):
        with pytest.raises(HttpViolation):
            split_authority(bad, None)


def test_connect_request_is_followed_by_tunnel_bytes_not_http():
    p = Parser("request")
    events = p.feed(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n\x16\x03")
    assert [type(e) for e in events] == [Request]  # no end: the tunnel may follow
    assert p.feed(b"GET / HTTP/1.1\r\n\r\n") == [] and not p.idle
    assert p.take_buffer() == b"\x16\x03GET / HTTP/1.1\r\n\r\n"
    assert p.close() == []


def test_connect_with_a_body_is_refused():
    with pytest.raises(HttpViolation):
        Parser("request").feed(
            b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\nContent-Length: 1\r\n\r\nx"
        )


def test_response_to_connect():
    p = Parser("response")
    p.expect(b"CONNECT")
    events = p.feed(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03")
    assert [type(e) for e in events] == [Response]
    assert p.take_buffer() == b"\x16\x03\x03"
    p = Parser("response")
    p.expect(b"CONNECT")
    events = p.feed(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno")
    assert type(events[0]) is Response and events[-1] == EndOfMessage() and p.idle
