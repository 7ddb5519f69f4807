"""Pop3Proxy with in-memory connections: the table, multi-line replies, CAPA, violations."""

from __future__ import annotations

import inspect
import re

import pytest

from tests.proxy.harness import ProxyHarness
from zfw.policy import (
    POP3_REQ_ABORT,
    POP3_REQ_ACCEPT,
    POP3_REQ_POLICY,
    POP3_REQ_REJECT,
    Pop3Proxy,
)
from zfw.policytable import PolicyValueError, check_table
from zfw.proxy.pop3 import REQUEST

SERVER = ("198.51.100.2", 110)


def session(**attrs):
    h = ProxyHarness(Pop3Proxy, SERVER, **attrs)
    st = h.connect()
    h.reply(b"+OK ready\r\n")
    assert h.to_client() == b"+OK ready\r\n"
    return h, st


def test_a_multi_line_reply_passes_until_the_dot_then_the_next_command_goes():
    h, st = session()
    h.send(b"RETR 1\r\nSTAT\r\n")  # pipelined: STAT waits for the end of RETR
    assert st.value() == b"RETR 1\r\n"
    h.reply(b"+OK\r\nSubject: x\r\n..stuffed\r\n")
    assert h.to_client() == b"+OK\r\nSubject: x\r\n..stuffed\r\n" and st.value() == b"RETR 1\r\n"
    h.reply(b".\r\n")
    assert h.to_client() == b".\r\n" and st.value() == b"RETR 1\r\nSTAT\r\n"


def test_capa_hides_stls_and_sasl():
    h, _st = session()
    h.send(b"CAPA\r\n")
    h.reply(b"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\nTOP\r\n.\r\n")
    assert h.to_client() == b"+OK\r\nUSER\r\nTOP\r\n.\r\n"


def test_the_table_rejects_aborts_and_asks_a_function():
    seen = []

    def only_one(cmd):
        seen.append(cmd)
        return POP3_REQ_REJECT if cmd.args != ("1",) else 1

    h, st = session()
    h.proxy.request["DELE"] = (POP3_REQ_REJECT, "Not here.")
    h.proxy.request["TOP"] = (POP3_REQ_POLICY, only_one)
    h.send(b"DELE 1\r\n")
    assert h.to_client() == b"-ERR Not here.\r\n" and st.value() == b""
    h.send(b"TOP 2 0\r\n")
    assert h.to_client() == b"-ERR Rejected by policy.\r\n" and seen[0].args == ("2", "0")
    h.send(b"STLS\r\n")
    assert h.to_client().startswith(b"-ERR TLS is not available") and st.value() == b""
    h.proxy.request["NOOP"] = POP3_REQ_ABORT
    h.send(b"NOOP\r\n")
    assert h.ct.disconnecting and st.disconnecting and h.closed


def test_violations_close_both_sides():
    h, st = session()
    h.send(b"RETR 1\n")
    assert h.to_client() == b"-ERR Protocol violation; closing.\r\n"
    assert h.ct.disconnecting and st.disconnecting and h.closed
    assert "pop3.violation" in h.log() and "not ended by CRLF" in h.log()


def test_a_reply_nobody_asked_for_is_a_violation():
    h, _st = session()
    h.reply(b"+OK surprise\r\n")
    assert h.closed and "a line nobody asked for" in h.log()


def test_a_policy_table_mistake_is_answered_not_crashed():
    h, st = session()
    h.proxy.request["STAT"] = ("nonsense",)
    h.send(b"STAT\r\n")
    assert h.to_client() == b"-ERR The firewall policy failed on this command.\r\n"
    assert "is not a POP3_REQ_* action" in h.log() and st.value() == b""


def test_a_policy_function_answering_wrongly_refuses_that_command():
    def check(command):
        return "ok"

    h, st = session()
    h.proxy.request["STAT"] = (POP3_REQ_POLICY, check)
    h.send(b"STAT\r\n")
    assert h.to_client() == b"-ERR The firewall policy failed on this command.\r\n"
    line = inspect.getsourcelines(check)[1]
    assert f"{__file__}:{line}: request['STAT']: POLICY function " in h.log()
    assert "returned 'ok', not a POP3_REQ_* action; refused" in h.log() and st.value() == b""
    h.send(b"NOOP\r\n")
    assert st.value() == b"NOOP\r\n"


def test_the_request_table_has_its_declared_shape():
    check_table(REQUEST, {"TOP": POP3_REQ_ACCEPT, "*": (POP3_REQ_REJECT, "No.")})
    for entry, message in [
        ({"dele": 1}, "commands are in upper case: 'DELE'"),
        ({"DELE": (POP3_REQ_REJECT, 550, "x")}, "POP3_REQ_REJECT takes one optional text"),
        ({"DELE": (POP3_REQ_REJECT, "a\r\n+OK")}, "the text of -ERR is printable ASCII"),
        ({"DELE": (POP3_REQ_ABORT, "x")}, "POP3_REQ_ABORT takes no arguments"),
        ({"DELE": (POP3_REQ_POLICY, lambda: 1)}, "cannot be called as <lambda>(command)"),
    ]:
        with pytest.raises(PolicyValueError, match=re.escape(message)):
            check_table(REQUEST, entry)
