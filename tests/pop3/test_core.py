"""zfw.pop3.core: lines, commands and status lines, without I/O."""

from __future__ import annotations

import pytest

from zfw.pop3.core import Command, LineReader, Pop3Violation, multiline, parse_command, reply_ok


def test_lines_are_cut_at_crlf_across_reads():
    r = LineReader(20)
    assert r.feed(b"US") == [] and not r.empty
    assert r.feed(b"ER a\r\nSTAT\r\nNO") == [b"USER a", b"STAT"]
    assert r.feed(b"OP\r\n") == [b"NOOP"] and r.empty


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"USER a\n", "not ended by CRLF"),
        (b"x" * 30, "longer than 20"),
        (b"x" * 25 + b"\r\n", "longer than 20"),
        (b"USER \x01\r\n", "control character"),
    ],
)
def test_bad_lines_are_violations_after_the_lines_before_them(data, reason):
    r = LineReader(20)
    first, broken = r.feed(b"STAT\r\n" + data)
    assert first == b"STAT" and isinstance(broken, Pop3Violation) and reason in str(broken)
    with pytest.raises(Pop3Violation, match=reason):
        r.feed(b"QUIT\r\n")


def test_commands():
    assert parse_command(b"retr 1") == Command("RETR", ("1",))
    assert parse_command(b"QUIT").line == b"QUIT\r\n"
    for bad in (b"HELLO", b"12", b"USER  a", b"USER a ", b"US\xe9R"):
        with pytest.raises(Pop3Violation):
            parse_command(bad)


def test_which_replies_are_multi_line():
    assert multiline(Command("RETR", ("1",))) and multiline(Command("CAPA", ()))
    assert multiline(Command("LIST", ())) and not multiline(Command("LIST", ("1",)))
    assert not multiline(Command("STAT", ()))


def test_status_lines():
    assert reply_ok(b"+OK") and reply_ok(b"+OK 2 320") and not reply_ok(b"-ERR no")
    with pytest.raises(Pop3Violation):
        reply_ok(b"+OKAY")
