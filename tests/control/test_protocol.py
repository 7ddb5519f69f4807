"""The control protocol's requests, without I/O."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfw.control.protocol import MAX_LINE, ControlError, encode, error, ok, parse_request


@pytest.mark.parametrize(
    "line,command,args",
    [
        (b'{"command": "status"}', "status", {}),
        (b'{"command": "kill", "session": "i/s:3"}', "kill", {"session": "i/s:3"}),
        (
            b'{"command": "loglevel", "spec": "http.*:6", "seconds": 2}',
            "loglevel",
            {"spec": "http.*:6", "seconds": 2},
        ),
        (
            b'{"command": "loglevel", "spec": "x:1", "seconds": null}',
            "loglevel",
            {"spec": "x:1", "seconds": None},
        ),
    ],
)
def test_valid_requests(line, command, args):
    request = parse_request(line)
    assert request.command == command and dict(request.args) == args


@pytest.mark.parametrize(
    "line,message",
    [
        (b"", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not a JSON object"),
        (b'{"command": "shutdown"}', "unknown command 'shutdown'"),
        (b'{"cmd": "status"}', "unknown command None"),
        (b'{"command": "status", "all": true}', "status: unknown argument 'all'"),
        (b'{"command": "kill"}', "kill: session is missing"),
        (b'{"command": "kill", "session": 3}', "kill: session has the wrong type"),
        (b'{"command": "loglevel", "spec": "a:1", "seconds": true}', "seconds has the wrong type"),
        (b'{"command": "status"}' + b" " * MAX_LINE, "longer than"),
    ],
)
def test_refused_requests(line, message):
    with pytest.raises(ControlError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_request(line)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_control_error(data):
    with contextlib.suppress(ControlError):
        parse_request(data)


def test_answers_are_one_line():
    assert encode(ok(text="a\nb")).count(b"\n") == 1
    assert json.loads(encode(error("no"))) == {"ok": False, "error": "no"}
