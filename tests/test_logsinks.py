"""Log sinks: a file reopened after rotation, syslog datagrams, the journal's prefix."""

from __future__ import annotations

import io
import socket

import pytest

from zfw.errors import ZfwError
from zfw.log import Log, LogSpec, syslog_severity
from zfw.logsinks import FileSink, StreamSink, SyslogSink


def test_severities():
    assert [syslog_severity("core.info", n) for n in range(6)] == [3, 4, 5, 6, 7, 7]
    assert syslog_severity("http.error", 3) == 3  # an error tag is at least err
    assert syslog_severity("http.error", 0) == 3


def test_file_sink_reopens_a_renamed_file(tmp_path):
    path = tmp_path / "zfw.log"
    log = Log(LogSpec(), FileSink(str(path)))
    log("core.info", 3, "before")
    path.rename(tmp_path / "zfw.log.1")
    log("core.info", 3, "still to the renamed file")
    log.reopen()
    log("core.info", 3, "after")
    assert "before" in (tmp_path / "zfw.log.1").read_text()
    assert "still to the renamed file" in (tmp_path / "zfw.log.1").read_text()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path):
    with pytest.raises(ZfwError, match=r"^cannot open log file .*/nope/zfw.log: No such file"):
        FileSink(str(tmp_path / "nope" / "zfw.log"))


def test_journal_lines_carry_the_priority_and_no_time():
    out = io.StringIO()
    log = Log(LogSpec(), StreamSink(out, journal=True), program="zfw/i")
    log("core.info", 3, "started")
    log("plug.error", 3, "connect failed", session="i/s:1")
    first, second = out.getvalue().splitlines()
    assert first.startswith("<6>zfw/i[") and first.endswith("]: core.info(3): started")
    assert second.startswith("<3>zfw/i[") and "(i/s:1): connect failed" in second


def test_syslog_datagrams(tmp_path):
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        log = Log(LogSpec(), SyslogSink(address, "zfw/i"), program="zfw/i")
        log("core.info", 3, "hello")
        log("core.policy", 1, "reload refused")
        write = log.writer("http.request", 3, "i/web:2")
        assert write is not None
        write("GET http://a.example/ -> 200", client="192.0.2.2")
        got = [server.recv(4096).decode() for _ in range(3)]
    # facility daemon (3): 3 * 8 + severity
    assert got[0].startswith("<30>zfw/i[") and got[0].endswith("core.info(3): hello")
    assert got[1].startswith("<28>") and got[1].endswith("core.policy(1): reload refused")
    assert got[2].startswith("<30>") and "GET http://a.example/ -> 200; client=192.0.2.2" in got[2]


def test_syslog_that_is_not_there_is_one_line(tmp_path):
    with pytest.raises(ZfwError, match=r"^cannot log to syslog at .*: No such file"):
        SyslogSink(str(tmp_path / "none.sock"))


def test_limited_lines(monkeypatch):
    out = io.StringIO()
    log = Log(LogSpec(), out)
    clock = [100.0]
    monkeypatch.setattr("zfw.log.time.monotonic", lambda: clock[0])
    for _ in range(5):
        log.limited("p.py:3", "core.policy", 1, "p.py:3: boom")
    clock[0] += 11
    log.limited("p.py:3", "core.policy", 1, "p.py:3: boom")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("p.py:3: boom (4 more like this in the last 11 s)")
