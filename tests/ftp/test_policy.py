"""The FTP policy tables: values to verdicts, lookups, FEAT filtering."""

from __future__ import annotations

import pytest

from zfw.ftp.policy import (
    FTP_REQ_ABORT,
    FTP_REQ_ACCEPT,
    FTP_REQ_POLICY,
    FTP_REQ_REJECT,
    FTP_RSP_ABORT,
    FTP_RSP_ACCEPT,
    FTP_RSP_POLICY,
    FTP_RSP_REJECT,
    REQUEST,
    RESPONSE,
    PolicyValueError,
    default_requests,
    filter_features,
    request_entry,
    response_entry,
    verdict,
)
from zfw.policytable import check_table


def call(fn):
    return fn()


def test_plain_and_tuple_values():
    assert verdict(FTP_REQ_ACCEPT, call, "x").accepted
    v = verdict((FTP_REQ_REJECT, 550, "no"), call, "x")
    assert (v.action, v.code, v.text) == ("reject", 550, "no")


def test_policy_functions_return_a_value_of_the_same_kind():
    v = verdict((FTP_REQ_POLICY, lambda: (FTP_REQ_REJECT, "nope")), call, "x")
    assert (v.action, v.code, v.text) == ("reject", None, "nope")


@pytest.mark.parametrize(
    "value, message",
    [
        (99, "not an FTP_REQ_"),
        (True, "not an FTP_REQ_"),
        ((FTP_REQ_REJECT, 200), "not 4xx or 5xx"),
        ((FTP_REQ_REJECT, "a\r\n200 ok"), "CR, LF or NUL"),
        ((FTP_REQ_REJECT, 1.5), "neither"),
        ((FTP_REQ_POLICY,), "POLICY needs one function"),
        ((FTP_REQ_POLICY, lambda: None), "returned nothing"),
        ((FTP_REQ_POLICY, lambda: FTP_REQ_POLICY), "cannot answer POLICY"),
    ],
)
def test_bad_values_are_refused_with_a_reason(value, message):
    with pytest.raises(PolicyValueError, match=message):
        verdict(value, call, "request['X']")


def test_default_requests_pass_known_commands_and_reject_the_rest():
    t = default_requests()
    assert request_entry(t, "RETR") == FTP_REQ_ACCEPT
    assert request_entry(t, "AUTH")[:2] == (FTP_REQ_REJECT, 534)
    assert request_entry(t, "XYZZ")[:2] == (FTP_REQ_REJECT, 500)


def test_response_lookup_order():
    t = {("RETR", 550): FTP_RSP_ABORT, ("RETR", "*"): FTP_REQ_REJECT, ("*", "226"): 1}
    assert response_entry(t, "RETR", 550) == FTP_RSP_ABORT
    assert response_entry(t, "RETR", 226) == FTP_REQ_REJECT
    assert response_entry(t, "STOR", 226) == 1
    assert response_entry(t, "STOR", 250) == FTP_RSP_ACCEPT


def test_feat_filtering_keeps_first_and_last_lines():
    lines = ("Features:", " MDTM", " AUTH TLS", " PBSZ", " REST STREAM", "End")
    assert filter_features(lines, frozenset({"MDTM", "REST"})) == (
        "Features:",
        " MDTM",
        " REST STREAM",
        "End",
    )


def test_tables_of_the_declared_shapes_pass():
    check_table(REQUEST, default_requests())
    check_table(REQUEST, {"STOR": (FTP_REQ_ABORT, "Bye."), "CWD": (FTP_REQ_POLICY, lambda c: 1)})
    check_table(
        RESPONSE,
        {
            ("RETR", "*"): FTP_RSP_ACCEPT,
            ("*", 550): (FTP_RSP_REJECT, 550, "no"),
            ("LIST", "226"): (FTP_RSP_POLICY, lambda command, reply: FTP_RSP_ACCEPT),
        },
    )


@pytest.mark.parametrize(
    ("spec", "entry", "message"),
    [
        (REQUEST, {"stor": 1}, "not 'stor' (commands are in upper case: 'STOR')"),
        (REQUEST, {"STORE": 1}, "a key of request is a command (in upper case) or '*'"),
        (REQUEST, {"STOR": (FTP_REQ_POLICY, lambda: 1)}, "cannot be called as <lambda>(command)"),
        (REQUEST, {"STOR": 2}, "2 is not an FTP_REQ_* action"),  # no DENY in FTP
        (REQUEST, {"STOR": (FTP_REQ_REJECT, 250)}, "reply code 250 is not 4xx or 5xx"),
        (REQUEST, {"STOR": (FTP_REQ_REJECT, "a\n200 ok")}, "CR, LF or NUL"),
        (RESPONSE, {550: 1}, "(write ('*', 550) for any command)"),
        (RESPONSE, {("retr", 550): 1}, "commands are in upper case: 'RETR'"),
        (RESPONSE, {("RETR", 55): 1}, "not ('RETR', 55)"),
        (RESPONSE, {("RETR", 550): (FTP_RSP_ABORT, "x")}, "FTP_RSP_ABORT takes no arguments"),
        (RESPONSE, {("*", "*"): (FTP_RSP_POLICY, lambda c: 1)}, "as <lambda>(command, reply)"),
    ],
)
def test_entries_of_the_wrong_shape_are_refused(spec, entry, message):
    with pytest.raises(PolicyValueError) as info:
        check_table(spec, entry)
    assert message in str(info.value)
