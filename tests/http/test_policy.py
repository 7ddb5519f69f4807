"""The HTTP policy tables, evaluated without a proxy."""

from __future__ import annotations

import pytest

from zfw.http.policy import (
    HTTP_HDR_ABORT,
    HTTP_HDR_ACCEPT,
    HTTP_HDR_DROP,
    HTTP_HDR_INSERT,
    HTTP_HDR_POLICY,
    HTTP_HDR_REPLACE,
    HTTP_REQ_ABORT,
    HTTP_REQ_ACCEPT,
    HTTP_REQ_DENY,
    HTTP_REQ_POLICY,
    HTTP_REQ_REJECT,
    REQUEST,
    REQUEST_HEADER,
    RESPONSE,
    RESPONSE_HEADER,
    HeaderAbort,
    PolicyValueError,
    Verdict,
    filter_headers,
    request_entry,
    response_entry,
    verdict,
)
from zfw.policytable import CallbackError, check_table


def never(_fn):
    raise AssertionError("no policy function expected")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (HTTP_REQ_ACCEPT, Verdict("accept")),
        ((HTTP_REQ_ACCEPT,), Verdict("accept")),
        (HTTP_REQ_DENY, Verdict("deny")),
        ((HTTP_REQ_REJECT, "why"), Verdict("reject", None, "why")),
        ((HTTP_REQ_REJECT, 451, "why"), Verdict("reject", 451, "why")),
        ((HTTP_REQ_DENY, 403), Verdict("deny", 403, None)),
    ],
)
def test_verdict_forms(value, expected):
    assert verdict(value, never, "t") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ACCEPT", "not an HTTP_REQ_"),
        ((HTTP_REQ_REJECT, 200), "not 4xx or 5xx"),
        ((HTTP_REQ_REJECT, True), "neither a status nor a text"),
        ((HTTP_REQ_POLICY,), "needs one function"),
        ((HTTP_REQ_POLICY, "f"), "needs one function"),
    ],
)
def test_bad_values_are_policy_errors(value, message):
    with pytest.raises(PolicyValueError, match=message):
        verdict(value, never, "t")


def test_policy_function_result_and_mistakes():
    assert verdict((HTTP_REQ_POLICY, print), lambda fn: (HTTP_REQ_REJECT, 418), "t") == Verdict(
        "reject", 418
    )
    with pytest.raises(PolicyValueError, match="returned nothing"):
        verdict((HTTP_REQ_POLICY, print), lambda fn: None, "t")
    with pytest.raises(PolicyValueError, match="cannot answer POLICY"):
        verdict((HTTP_REQ_POLICY, print), lambda fn: (HTTP_REQ_POLICY, fn), "t")


def test_table_lookups():
    table = {"GET": 1, "*": 2}
    assert request_entry(table, "GET") == 1 and request_entry(table, "PUT") == 2
    assert request_entry({}, "PUT") is None
    resp = {("GET", 404): "a", ("GET", "*"): "b", ("*", "500"): "c", ("*", "*"): "d"}
    assert response_entry(resp, "GET", 404) == "a"
    assert response_entry(resp, "GET", 200) == "b"
    assert response_entry(resp, "POST", 500) == "c"
    assert response_entry(resp, "POST", 200) == "d"


def test_header_table_actions_and_order():
    headers = [("Host", "h"), ("Cookie", "a"), ("X-A", "1"), ("x-a", "2"), ("Via", "p")]
    out = filter_headers(
        REQUEST_HEADER,
        {
            "cookie": HTTP_HDR_DROP,
            "X-A": (HTTP_HDR_REPLACE, "one"),
            "Via": (HTTP_HDR_INSERT, "1.1 zfw"),
            "X-New": (HTTP_HDR_REPLACE, "n"),
        },
        headers,
        never,
    )
    assert out == [("Host", "h"), ("X-A", "one"), ("Via", "p"), ("Via", "1.1 zfw"), ("X-New", "n")]


def test_header_fallback_and_policy_function():
    out = filter_headers(
        REQUEST_HEADER,
        {"*": HTTP_HDR_DROP, "Host": HTTP_HDR_ACCEPT, "X-P": (HTTP_HDR_POLICY, print)},
        [("Host", "h"), ("Other", "o"), ("X-P", "v")],
        lambda fn, n, v: (HTTP_HDR_REPLACE, v * 2),
    )
    assert out == [("Host", "h"), ("X-P", "vv")]


def test_header_abort_and_invalid_values():
    with pytest.raises(HeaderAbort):
        filter_headers(REQUEST_HEADER, {"X": HTTP_HDR_ABORT}, [("X", "1")], never)
    with pytest.raises(PolicyValueError, match="set by zfw"):
        filter_headers(REQUEST_HEADER, {"Content-Length": (HTTP_HDR_INSERT, "5")}, [], never)
    with pytest.raises(PolicyValueError, match="invalid header value"):
        filter_headers(REQUEST_HEADER, {"X": (HTTP_HDR_REPLACE, "a\nb")}, [("X", "1")], never)
    with pytest.raises(PolicyValueError, match="not a valid header name"):
        filter_headers(REQUEST_HEADER, {"X Y": (HTTP_HDR_INSERT, "a")}, [], never)
    assert filter_headers(REQUEST_HEADER, {}, [("X", "1")], never) == [("X", "1")]
    assert filter_headers(REQUEST_HEADER, {"X": HTTP_HDR_ACCEPT}, [("X", "1")], never) == [
        ("X", "1")
    ]


def one(request):
    return HTTP_REQ_ACCEPT


def two(request, response):
    return HTTP_REQ_ACCEPT


def field(name, value):
    return HTTP_HDR_ACCEPT


def test_tables_of_the_declared_shapes_pass():
    check_table(REQUEST, {"GET": HTTP_REQ_ACCEPT, "PUT": (HTTP_REQ_POLICY, one), "*": 3})
    check_table(
        RESPONSE,
        {
            ("GET", 404): (HTTP_REQ_DENY, 403, "hidden"),
            ("*", "500"): (HTTP_REQ_POLICY, two),
            ("POST", "*"): HTTP_REQ_ACCEPT,
            ("*", "*"): HTTP_REQ_ACCEPT,
        },
    )
    for spec in (REQUEST_HEADER, RESPONSE_HEADER):
        check_table(
            spec,
            {
                "Via": (HTTP_HDR_INSERT, "1.1 zfw"),
                "Server": (HTTP_HDR_REPLACE, "web"),
                "Cookie": HTTP_HDR_DROP,
                "X-Debug": HTTP_HDR_ABORT,
                "X-P": (HTTP_HDR_POLICY, field),
                "*": HTTP_HDR_ACCEPT,
            },
        )


@pytest.mark.parametrize(
    ("spec", "entry", "message"),
    [
        (RESPONSE, {404: 2}, "a key of response is (method or '*', status or '*'), not 404"),
        (RESPONSE, {404: 2}, "(write ('*', 404) for any method)"),
        (RESPONSE, {("GET", 700): 1}, "not ('GET', 700)"),
        (RESPONSE, {("GET", "4xx"): 1}, "not ('GET', '4xx')"),
        (RESPONSE, {("GET", "0404"): 1}, "not ('GET', '0404')"),
        (RESPONSE, {("GET",): 1}, "not ('GET',)"),
        (
            RESPONSE,
            {("*", 404): (HTTP_REQ_POLICY, one)},
            "one(request) cannot be called as one(request, response)",
        ),
        (RESPONSE, {("*", 404): HTTP_HDR_DROP}, "5 is not an HTTP_RSP_* action"),
        (REQUEST, {"GET /": 1}, "a key of request is a method or '*', not 'GET /'"),
        (REQUEST, {"delete": 3}, "not 'delete' (methods are case-sensitive: 'DELETE')"),
        (RESPONSE, {("get", 404): 3}, "not ('get', 404) (methods are case-sensitive: 'GET')"),
        (REQUEST, {"GET": (HTTP_REQ_POLICY, two)}, "two(request, response) cannot be called"),
        (REQUEST, {"GET": HTTP_HDR_REPLACE}, "7 is not an HTTP_REQ_* action"),
        (REQUEST, {"GET": (HTTP_REQ_ABORT, 400)}, "HTTP_REQ_ABORT takes no arguments"),
        (REQUEST, {"GET": (HTTP_REQ_REJECT, 302)}, "status 302 is not 4xx or 5xx"),
        (REQUEST_HEADER, {"X Y": 1}, "a key of request_header is a header name or '*'"),
        (REQUEST_HEADER, {"X": (HTTP_HDR_POLICY, one)}, "cannot be called as"),
        (REQUEST_HEADER, {"X": HTTP_REQ_DENY}, "2 is not an HTTP_HDR_* action"),
        (REQUEST_HEADER, {"X": (HTTP_HDR_REPLACE,)}, "HTTP_HDR_REPLACE takes one text value"),
        (REQUEST_HEADER, {"X": (HTTP_HDR_INSERT, "a\r\nb")}, "invalid header value"),
        (REQUEST_HEADER, {"Content-Length": (HTTP_HDR_INSERT, "1")}, "set by zfw"),
        (REQUEST_HEADER, {"x-a": 1, "X-A": 5}, "'x-a' names the same, in any case"),
        (RESPONSE_HEADER, {"Connection": (HTTP_HDR_REPLACE, "close")}, "response_header['Con"),
    ],
)
def test_entries_of_the_wrong_shape_are_refused(spec, entry, message):
    with pytest.raises(PolicyValueError) as info:
        check_table(spec, entry)
    assert message in str(info.value)


def test_a_policy_function_answering_wrongly_is_a_callback_error():
    with pytest.raises(CallbackError, match="returned True, not an HTTP_RSP_"):
        verdict((HTTP_REQ_POLICY, two), lambda fn: True, "response[('GET', 404)]", RESPONSE)
    with pytest.raises(CallbackError, match=r"returned \(7, 'x'\), not an HTTP_REQ_"):
        verdict((HTTP_REQ_POLICY, one), lambda fn: (HTTP_HDR_REPLACE, "x"), "request['GET']")
    with pytest.raises(CallbackError, match="HTTP_HDR_REPLACE: invalid header value"):
        filter_headers(
            REQUEST_HEADER,
            {"X": (HTTP_HDR_POLICY, field)},
            [("X", "1")],
            lambda fn, n, v: (HTTP_HDR_REPLACE, "a\nb"),
        )
