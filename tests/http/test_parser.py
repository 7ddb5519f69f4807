"""The strict HTTP/1.1 parser: valid messages, every rejection, any segmentation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfw.http.messages import (
    Broken,
    Data,
    EndOfMessage,
    HttpViolation,
    Limits,
    Request,
    Response,
    keeps_alive,
)
from zfw.http.parser import Parser
from zfw.http.serialize import (
    LAST_CHUNK,
    Framing,
    chunk,
    end_to_end,
    framing_out,
    serialize_request,
    serialize_response,
)


def parse(data: bytes, role: str = "request", methods=(), limits=None) -> list[object]:
    """The events of ``data``; a violation raises, also one behind complete messages."""
    p = Parser(role, limits)
    for m in methods:
        p.expect(m)
    events = p.feed(data)
    if events and isinstance(events[-1], Broken):
        raise HttpViolation(events[-1].status, events[-1].reason)
    return events


def merged(events):
    """Events with adjacent Data joined (segmentation decides how Data is cut)."""
    out = []
    for e in events:
        if isinstance(e, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + e.data)
        elif not (isinstance(e, Data) and not e.data):
            out.append(e)
    return out


def test_simple_get():
    (req, end) = parse(b"GET /a?b=c HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n")
    assert req == Request(
        b"GET", b"/a?b=c", (1, 1), ((b"Host", b"example.org"), (b"Accept", b"*/*"))
    )
    assert end == EndOfMessage()


def test_values_are_trimmed_and_empty_values_allowed():
    (req, _e) = parse(b"GET / HTTP/1.1\r\nHost:  a \r\nX-Empty:\r\n\r\n")
    assert req.headers == ((b"Host", b"a"), (b"X-Empty", b""))


def test_content_length_body_and_pipelining():
    data = (
        b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = parse(data)
    assert [type(e).__name__ for e in events] == [
        "Request",
        "Data",
        "EndOfMessage",
        "Request",
        "EndOfMessage",
    ]
    assert events[1] == Data(b"hello") and events[3].target == b"/2"


def test_chunked_body_with_extensions_and_trailers():
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n6 ; q="x y"\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n'
    )
    events = merged(parse(data))
    assert events[1] == Data(b"hello world")
    assert events[2] == EndOfMessage(((b"X-Sum", b"1"),))
    assert (b"X-Sum", b"1") not in events[0].headers  # trailers never merge into headers


def test_http10_without_host():
    (req, _e) = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert req.version == (1, 0)


@pytest.mark.parametrize(
    ("method", "status", "head", "body_expected"),
    [
        (b"HEAD", 200, b"Content-Length: 10\r\n", False),
        (b"GET", 204, b"", False),
        (b"GET", 304, b"Content-Length: 10\r\n", False),
        (b"GET", 200, b"Content-Length: 0\r\n", False),
        (b"GET", 200, b"Content-Length: 3\r\n", True),
    ],
)
def test_responses_without_bodies(method, status, head, body_expected):
    data = b"HTTP/1.1 %d X\r\n%s\r\nabc" % (status, head)
    events = parse(data, "response", [method])
    assert isinstance(events[0], Response) and events[0].status == status
    if body_expected:
        assert events[1:] == [Data(b"abc"), EndOfMessage()]
    else:
        assert events[1] == EndOfMessage()


def test_close_delimited_response():
    p = Parser("response")
    p.expect(b"GET")
    events = p.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nsome")
    events += p.feed(b" data")
    assert merged(events)[1:] == [Data(b"some data")]
    assert p.close() == [EndOfMessage()]


def test_interim_response_then_final():
    events = parse(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        "response",
        [b"POST"],
    )
    assert [getattr(e, "status", None) for e in events] == [100, 200, None, None]


def test_close_mid_message_is_an_error():
    p = Parser("request")
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HttpViolation):
        p.close()


H = b"Host: a\r\n"

MALFORMED_REQUESTS = [
    # framing
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "TE and CL",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400,
    ),
    (
        "duplicate CL",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    ("CL list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("CL plus sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nabcde", 400),
    ("CL hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nabcde", 400),
    ("CL empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
    ("CL negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    (
        "CL overflow",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    ("CL space inside", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
    ("CL non-ASCII digit", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xb2\r\n\r\n", 400),
    (
        "CL 20 digits",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 00000000000000000001\r\n\r\nx",
        400,
    ),
    ("TE gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    (
        "TE gzip chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n",
        501,
    ),
    (
        "TE two headers",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
    ),
    ("TE identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 501),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "TE with vertical tab",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n",
        400,
    ),
    # header syntax
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab before colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    ("obs-fold tab", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", 400),
    ("leading whitespace line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n\r\n\r\n", 400),
    ("bare LF in header", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    ("bare CR in header", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    ("DEL in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    ("ESC in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x1bb\r\n\r\n", 400),
    ("no colon", b"GET / HTTP/1.1\r\n" + H + b"X-No-Colon\r\n\r\n", 400),
    ("empty name", b"GET / HTTP/1.1\r\n" + H + b": value\r\n\r\n", 400),
    ("bad name char", b"GET / HTTP/1.1\r\n" + H + b"X(y): 1\r\n\r\n", 400),
    ("non-ascii name", b"GET / HTTP/1.1\r\n" + H + "Ä: 1\r\n\r\n".encode(), 400),
    # Host
    ("no Host in 1.1", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("two Hosts in 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    # request line
    ("two spaces after method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two spaces after target", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("missing version", b"GET /\r\n" + H + b"\r\n", 400),
    ("lower-case version", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("HTTP/2 line", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("HTTP/0.9 style", b"GET /\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("control in target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bad method char", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("leading empty line", b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # chunked bodies
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    (
        "chunk size plus",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
        400,
    ),
    (
        "chunk size 0x",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
        400,
    ),
    (
        "chunk size too long",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 17 + b"\r\n",
        400,
    ),
    (
        "chunk size space",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n",
        400,
    ),
    (
        "bad chunk extension",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n",
        400,
    ),
    (
        "chunk ext control",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n",
        400,
    ),
    (
        "chunk ext bare LF",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n",
        400,
    ),
    (
        "chunk without CRLF",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    ),
    (
        "chunk bare LF end",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        400,
    ),
    (
        "bad trailer",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n",
        400,
    ),
]


@pytest.mark.parametrize(
    ("case", "data", "status"), MALFORMED_REQUESTS, ids=[c[0] for c in MALFORMED_REQUESTS]
)
def test_malformed_requests_are_rejected(case, data, status):
    with pytest.raises(HttpViolation) as info:
        parse(data)
    assert info.value.status == status, info.value.reason


MALFORMED_RESPONSES = [
    ("CL and TE", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("duplicate CL", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
    ("malformed CL", b"HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\n"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
    ("bare LF", b"HTTP/1.1 200 OK\nX: a\n\n"),
    ("status two digits", b"HTTP/1.1 20 OK\r\n\r\n"),
    ("status letters", b"HTTP/1.1 2xx OK\r\n\r\n"),
    ("no space after status", b"HTTP/1.1 200\r\n\r\n"),
    ("HTTP/2 status line", b"HTTP/2 200 OK\r\n\r\n"),
    ("CTL in reason", b"HTTP/1.1 200 O\x00K\r\n\r\n"),
    ("TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
    ("space before colon", b"HTTP/1.1 200 OK\r\nServer : x\r\n\r\n"),
]


@pytest.mark.parametrize(
    ("case", "data"), MALFORMED_RESPONSES, ids=[c[0] for c in MALFORMED_RESPONSES]
)
def test_malformed_responses_are_rejected(case, data):
    with pytest.raises(HttpViolation):
        parse(data, "response", [b"GET"])


def test_limits():
    with pytest.raises(HttpViolation) as info:
        parse(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", limits=Limits(max_target=50))
    assert info.value.status == 414
    with pytest.raises(HttpViolation) as info:
        parse(b"GET / HTTP/1.1\r\n" + H + b"X: y\r\n" * 10 + b"\r\n", limits=Limits(max_headers=5))
    assert info.value.status == 431
    with pytest.raises(HttpViolation) as info:
        Parser("request", Limits(max_head=100)).feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 30)
    assert info.value.status == 431
    with pytest.raises(HttpViolation) as info:
        parse(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n", limits=Limits(max_body=10)
        )
    assert info.value.status == 413
    with pytest.raises(HttpViolation) as info:
        parse(
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nff\r\n",
            limits=Limits(max_body=10),
        )
    assert info.value.status == 413


def test_malformed_tables_are_big_enough():
    assert len(MALFORMED_REQUESTS) + len(MALFORMED_RESPONSES) >= 40


# --- any segmentation gives the same events ---------------------------------------------------

tokens = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
values = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=,/", max_size=20).map(
    lambda s: s.strip().encode()
)
bodies = st.binary(max_size=300)


@st.composite
def requests(draw):
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]))
    path = b"/" + draw(tokens)
    headers = [(b"X-" + n, v) for n, v in draw(st.lists(st.tuples(tokens, values), max_size=5))]
    body = draw(bodies)
    head = method + b" " + path + b" HTTP/1.1\r\nHost: example.org\r\n"
    head += b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    if draw(st.booleans()):
        pieces = draw(st.lists(st.integers(1, 50), max_size=5))
        encoded, pos = b"", 0
        for n in pieces:
            encoded += chunk(body[pos : pos + n])
            pos += n
        encoded += chunk(body[pos:]) + LAST_CHUNK
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + encoded
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@settings(max_examples=200, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=3), st.data())
def test_byte_by_byte_equals_all_at_once(msgs, data):
    stream = b"".join(msgs)
    whole = merged(parse(stream))
    p = Parser("request")
    pieces = []
    for i in range(len(stream)):
        pieces += p.feed(stream[i : i + 1])
    assert merged(pieces) == whole
    assert p.idle
    assert sum(isinstance(e, EndOfMessage) for e in whole) == len(msgs)


@st.composite
def responses(draw):
    """A response to GET or HEAD with any framing, and the method it answers."""
    method = draw(st.sampled_from([b"GET", b"HEAD"]))
    status = draw(st.sampled_from([200, 204, 304, 404]))
    headers = [(b"X-" + n, v) for n, v in draw(st.lists(st.tuples(tokens, values), max_size=5))]
    body = draw(bodies)
    head = b"HTTP/1.1 %d Reason\r\nServer: s\r\n" % status
    head += b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    if status in (204, 304) or method == b"HEAD":
        return method, head + b"\r\n"
    if draw(st.booleans()):
        return method, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(body) + LAST_CHUNK
    return method, head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@settings(max_examples=200, deadline=None)
@given(st.lists(responses(), min_size=1, max_size=3), st.data())
def test_responses_in_any_pieces_equal_all_at_once(msgs, data):
    # All at once takes the idle parser's shortcut (Parser._whole); pieces take the buffer.
    methods = [m for m, _r in msgs]
    stream = b"".join(r for _m, r in msgs)
    whole = merged(parse(stream, "response", methods))
    p = Parser("response")
    for m in methods:
        p.expect(m)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pieces += p.feed(stream[a:b])
    assert merged(pieces) == whole
    assert sum(isinstance(e, EndOfMessage) for e in whole) == len(msgs)


def test_a_read_ending_just_after_a_body():
    # The shortcut must hand whatever follows the body, however little, to the buffer.
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nde"
    for k in range(len(second) + 1):
        p = Parser("response")
        p.expect(b"GET")
        p.expect(b"GET")
        events = merged(p.feed(first + second[:k]) + p.feed(second[k:]))
        assert [type(e) for e in events] == [Response, Data, EndOfMessage] * 2
        assert [e.data for e in events if isinstance(e, Data)] == [b"abc", b"de"]


_FIELD_VALUES = st.text(" \tab:\x80", max_size=8).map(lambda s: s.encode("latin-1"))


@given(st.lists(st.tuples(tokens, _FIELD_VALUES), min_size=1, max_size=6))
def test_header_block_regex_agrees_with_line_by_line(fields):
    # _fields reads a whole block with one regex; _headers, line by line, is the reference.
    from zfw.http.parser import _fields, _headers

    block = b"".join(n + b":" + v + b"\r\n" for n, v in fields)
    assert _fields(block, Limits(), True) == _headers(block[:-2].split(b"\r\n"), Limits())


def test_serialize_round_trip_and_hop_by_hop():
    (req, _e) = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private\r\n"
        b"X-Private: 1\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n"
    )
    kept = end_to_end(req.headers)
    assert kept == ((b"Host", b"a"), (b"Accept", b"*/*"))
    out = serialize_request(
        Request(req.method, req.target, req.version, kept), ((b"Content-Length", b"0"),)
    )
    assert out == b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"
    resp = Response(200, b"OK", (1, 1), ((b"Server", b"x"),))
    assert parse(serialize_response(resp, ((b"Content-Length", b"0"),)), "response", [b"GET"])[
        0
    ].headers == ((b"Server", b"x"), (b"Content-Length", b"0"))


# The fast path (one regex over a well-formed head) must agree with the line-by-line
# path on anything: same events, or a violation with the same status.
_HEAD_PARTS = st.sampled_from(
    [b"GET", b"POST", b" ", b"  ", b"/", b"/a?b", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
     b"\r\n", b"\n", b"\r", b"Host", b": ", b":", b"h", b"Content-Length", b"5", b"\t",
     b"Transfer-Encoding", b"chunked", b"\x00", b"\x7f", b"\xff", b"X", b" :", b"200 OK",
     b"HTTP/1.1 ", b"204 No Content"]
)  # fmt: skip


def _outcome(data: bytes, role: str):
    p = Parser(role)
    if role == "response":
        p.expect(b"GET")
    try:
        return ("ok", p.feed(data))
    except HttpViolation as e:
        return ("violation", e.status)


@given(st.lists(_HEAD_PARTS, max_size=14), st.sampled_from(["request", "response"]))
@settings(max_examples=400, deadline=None)
def test_fast_and_slow_paths_agree(parts, role):
    import zfw.http.parser as parser

    data = b"".join(parts) + b"\r\n\r\n"
    fast = _outcome(data, role)
    never = re.compile(rb"(?!)")
    saved = parser._FAST_REQUEST, parser._FAST_RESPONSE
    parser._FAST_REQUEST = parser._FAST_RESPONSE = never
    try:
        slow = _outcome(data, role)
    finally:
        parser._FAST_REQUEST, parser._FAST_RESPONSE = saved
    assert fast == slow


# --- the framing decision, made once in the parser -----------------------------------------


def _response(raw: bytes, method: bytes = b"GET") -> Response:
    p = Parser("response")
    p.expect(method)
    return next(e for e in p.feed(raw) if type(e) is Response)


@pytest.mark.parametrize(
    ("raw", "method", "body", "to_11", "to_10"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"GET",
            "length",
            Framing(((b"Content-Length", b"5"),)),
            Framing(((b"Content-Length", b"5"),)),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET",
            "chunked",
            Framing(((b"Transfer-Encoding", b"chunked"),), chunked=True),
            Framing(close=True),
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"GET",
            "close",
            Framing(((b"Transfer-Encoding", b"chunked"),), chunked=True),
            Framing(close=True),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"HEAD",
            "none",
            Framing(((b"Content-Length", b"5"),)),
            Framing(((b"Content-Length", b"5"),)),
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            b"GET",
            "none",
            Framing(((b"Content-Length", b"5"),)),
            Framing(((b"Content-Length", b"5"),)),
        ),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            b"GET",
            "none",
            Framing(),
            Framing(),
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", b"CONNECT", "tunnel", Framing(), Framing()),
    ],
)
def test_framing_is_decided_by_the_parser_and_sent_on_by_framing_out(
    raw, method, body, to_11, to_10
):
    resp = _response(raw, method)
    assert resp.body == body
    assert framing_out(resp, (1, 1)) == to_11
    assert framing_out(resp, (1, 0)) == to_10


def test_keep_alive_is_decided_in_the_parser():
    assert keeps_alive(_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    assert not keeps_alive(_response(b"HTTP/1.1 200 OK\r\n\r\n"))  # ends with the close
    assert not keeps_alive(_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
    assert not keeps_alive(
        _response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    )
    req = Parser("request").feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    )[0]
    assert req.body == "chunked" and keeps_alive(req)
    assert framing_out(req, (1, 0)) == Framing(((b"Transfer-Encoding", b"chunked"),), chunked=True)
