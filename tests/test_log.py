"""Log specs and line formats."""

from __future__ import annotations

import io
import json

import pytest

from zfw.errors import ZfwError
from zfw.log import Log, LogSpec


@pytest.mark.parametrize(
    ("tag", "level"),
    [
        ("core.session", 5),
        ("core.policy", 5),
        ("plug.info", 3),
        ("plug", 3),
        ("http.request", 1),
        ("plugin.x", 1),  # 'plug' covers plug.* only, not plugin
        ("core", 1),
    ],
)
def test_spec_levels(tag, level):
    spec = LogSpec.parse("core.*:5, plug:3", default=1)
    assert spec.level(tag) == level


def test_last_matching_pattern_wins():
    spec = LogSpec.parse("*:2,core.*:6,core.policy:1")
    assert spec.level("core.policy") == 1
    assert spec.level("core.session") == 6
    assert spec.level("tls.info") == 2


@pytest.mark.parametrize("bad", ["core", "core:x", ":3", "core.*:"])
def test_bad_specs(bad):
    with pytest.raises(ZfwError, match="bad log spec"):
        LogSpec.parse(bad)


def test_human_and_json_lines():
    out = io.StringIO()
    log = Log(LogSpec.parse("core.*:4"), out, program="zfw/intra")
    log("core.session", 4, "start", session="intra/p:1", bytes=3)
    log("core.session", 5, "too verbose")
    line = out.getvalue()
    assert line.count("\n") == 1
    assert "zfw/intra[" in line and "]: core.session(4): (intra/p:1): start; bytes=3" in line
    out = io.StringIO()
    Log(LogSpec(), out, json_lines=True)("plug.info", 3, "end", session="i/s:2", bytes=7)
    record = json.loads(out.getvalue())
    assert record["tag"] == "plug.info" and record["session"] == "i/s:2" and record["bytes"] == 7


def test_writer_writes_the_same_line_as_a_call():
    out = io.StringIO()
    log = Log(LogSpec.parse("http.request:3"), out, program="zfw/t")
    log("http.request", 3, "GET / -> 200", "i/http:1", client="192.0.2.2", bytes=6)
    write = log.writer("http.request", 3, "i/http:1")
    assert write is not None
    write("GET / -> 200", client="192.0.2.2", bytes=6)
    first, second = out.getvalue().splitlines()
    assert first.split(" ", 1)[1] == second.split(" ", 1)[1]  # all but the time
    assert second.endswith(": http.request(3): (i/http:1): GET / -> 200; client=192.0.2.2; bytes=6")


def test_writer_is_none_when_the_level_is_off():
    assert Log(LogSpec.parse("http.request:2"), io.StringIO()).writer("http.request", 3) is None


def test_writer_in_json_mode():
    out = io.StringIO()
    write = Log(LogSpec(), out, json_lines=True).writer("http.request", 3, "i/http:1")
    assert write is not None
    write("GET / -> 200", bytes=6)
    record = json.loads(out.getvalue())
    assert record["msg"] == "GET / -> 200" and record["session"] == "i/http:1"
    assert record["bytes"] == 6 and record["tag"] == "http.request"
