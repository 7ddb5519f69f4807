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
    HTTP_REQ_ACCEPT,
    HTTP_REQ_DENY,
    HTTP_REQ_POLICY,
    HTTP_REQ_REJECT,
    REQUEST_HEADER,
    HeaderAbort,
    PolicyValueError,
    Verdict,
    filter_headers,
    request_entry,
    response_entry,
    verdict,
)


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
