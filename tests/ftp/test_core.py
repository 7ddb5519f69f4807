"""The FTP control-channel core: commands, replies, and who answers what."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zfw.ftp.core import (
    TRANSFER_COMMANDS,
    BadCommand,
    Command,
    CommandReader,
    Conversation,
    FtpViolation,
    Reply,
    ReplyReader,
    format_reply,
)

# --- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, command",
    [
        (b"USER anonymous\r\n", Command("USER", "anonymous")),
        (b"user anonymous\r\n", Command("USER", "anonymous")),
        (b"PASS \r\n", Command("PASS", "")),
        (b"PASV\r\n", Command("PASV")),
        (b"EPSV ALL\r\n", Command("EPSV", "ALL")),
        (b"RETR my file.txt\r\n", Command("RETR", "my file.txt")),
        (b"RETR  leading space\r\n", Command("RETR", " leading space")),
        (b"STOR caf\xc3\xa9.txt\r\n", Command("STOR", "caf\xc3\xa9.txt")),
        (b"PORT 192,0,2,2,4,1\r\n", Command("PORT", "192,0,2,2,4,1")),
        (b"\xff\xf4\xff\xf2ABOR\r\n", Command("ABOR")),
        (b"\xf2ABOR\r\n", Command("ABOR")),
        (b"XPWD\r\n", Command("XPWD")),
    ],
)
def test_command_lines(line, command):
    assert CommandReader().feed(line) == [command]


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"\r\n", "empty command line"),
        (b" USER x\r\n", "not a command verb"),
        (b"US\r\n", "not a command verb"),
        (b"USERS x\r\n", "not a command verb"),
        (b"RE1R x\r\n", "not a command verb"),
        (b"RETR a\x01b\r\n", "control character"),
        (b"RETR a\x1bb\r\n", "control character"),
        (b"RETR a\x7fb\r\n", "control character"),
        (b"RETR \xff\xfbx\r\n", "Telnet command"),
    ],
)
def test_lines_that_are_not_commands(line, reason):
    [bad] = CommandReader().feed(line)
    assert isinstance(bad, BadCommand) and reason in bad.reason


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"USER x\n", "bare LF"),
        (b"\n", "bare LF"),
        (b"USER x\rPASS y\r\n", "bare CR"),
        (b"RETR a\x00b\r\n", "NUL"),
        (b"RETR " + b"a" * 300 + b"\r\n", "longer than 255"),
        (b"RETR " + b"a" * 300, "longer than 255"),
    ],
)
def test_framing_violations(data, reason):
    with pytest.raises(FtpViolation, match=reason):
        CommandReader().feed(data)


def test_a_line_of_exactly_the_limit_passes_and_one_more_does_not():
    assert CommandReader(10).feed(b"RETR 12345\r\n") == [Command("RETR", "12345")]
    with pytest.raises(FtpViolation):
        CommandReader(10).feed(b"RETR 123456\r\n")


def test_commands_are_parsed_from_reassembled_lines_only():
    r = CommandReader()
    assert r.feed(b"RE") == []
    assert r.feed(b"TR a") == []
    assert r.feed(b"\r") == []
    assert r.feed(b"\nNOOP\r\nQU") == [Command("RETR", "a"), Command("NOOP")]
    assert r.buffered == 2


def test_command_wire_form_round_trips():
    for c in (Command("NOOP"), Command("RETR", "a b"), Command("PASS", "")):
        assert CommandReader().feed(c.line()) == [c]


# --- replies --------------------------------------------------------------------------------


def test_single_and_multi_line_replies():
    r = ReplyReader()
    data = (
        b"220 ready\r\n"
        b"211-Features:\r\n MDTM\r\n EPSV\r\n211 End\r\n"
        b"230-Welcome\r\n230-second line with a dash\r\n230 Done\r\n"
        b"226\r\n"
    )
    assert r.feed(data) == [
        Reply(220, ("ready",)),
        Reply(211, ("Features:", " MDTM", " EPSV", "End")),
        Reply(230, ("Welcome", "230-second line with a dash", "Done")),
        Reply(226, ("",)),
    ]


def test_a_middle_line_starting_with_digits_is_padded_when_serialized():
    reply = Reply(214, ("Help", "200 is not the end", "End"))
    assert reply.serialize() == b"214-Help\r\n 200 is not the end\r\n214 End\r\n"
    assert format_reply(200, "ok") == b"200 ok\r\n"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"ok\r\n", "not a reply line"),
        (b"20 x\r\n", "not a reply line"),
        (b"2000 x\r\n", "not a reply line"),
        (b"600 x\r\n", "not a reply line"),
        (b"099 x\r\n", "not a reply line"),
        (b"260 x\r\n", "not a reply line"),
        (b"200x\r\n", "not a reply line"),
        (b"200 a\x00b\r\n", "control character"),
        (b"200 a\x1bb\r\n", "control character"),
        (b"200 ok\n", "bare LF"),
        (b"200 o\rk\r\n", "bare CR"),
        (b"200 " + b"a" * 3000, "longer than"),
    ],
)
def test_malformed_replies(data, reason):
    with pytest.raises(FtpViolation, match=reason):
        ReplyReader().feed(data)


def test_multi_line_replies_are_limited():
    r = ReplyReader(max_lines=3)
    with pytest.raises(FtpViolation, match="longer than 3 lines"):
        r.feed(b"211-a\r\nb\r\nc\r\nd\r\ne\r\n211 end\r\n")


def test_a_multi_line_reply_ends_only_at_its_own_code():
    r = ReplyReader()
    assert r.feed(b"211-a\r\n226 not mine\r\n") == []
    assert r.feed(b"211 end\r\n") == [Reply(211, ("a", "226 not mine", "end"))]


# --- byte by byte ---------------------------------------------------------------------------

_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"))
_verbs = st.from_regex(r"[A-Za-z]{3,4}", fullmatch=True)
_arg = _text.filter(lambda t: len(t) < 200 and "\xff" not in t)  # 0xFF is Telnet's IAC
_commands = st.builds(Command, _verbs.map(str.upper), st.none() | _arg)
_replies = st.builds(
    Reply,
    st.integers(1, 5).flatmap(lambda a: st.integers(a * 100, a * 100 + 59)),
    st.lists(_text.filter(lambda t: len(t) < 80), min_size=1, max_size=5).map(tuple),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(st.lists(_commands, max_size=6), st.lists(st.integers(0, 10_000), max_size=20))
def test_commands_in_any_chunks_give_the_same_events(commands, cuts):
    data = b"".join(c.line() for c in commands)
    whole = CommandReader().feed(data)
    r = CommandReader()
    pieces = [e for chunk in _split(data, cuts) for e in r.feed(chunk)]
    assert pieces == whole == commands


@given(st.lists(_replies, max_size=6), st.lists(st.integers(0, 10_000), max_size=20))
def test_replies_in_any_chunks_give_the_same_events(replies, cuts):
    data = b"".join(r.serialize() for r in replies)
    whole = ReplyReader().feed(data)
    r = ReplyReader()
    pieces = [e for chunk in _split(data, cuts) for e in r.feed(chunk)]
    assert pieces == whole
    # Serializing pads middle lines that start with a digit; codes and line counts survive.
    assert [(x.code, len(x.lines)) for x in whole] == [(x.code, len(x.lines)) for x in replies]


# --- the conversation -----------------------------------------------------------------------


def test_the_greeting_may_be_preceded_by_120():
    c = Conversation()
    assert not c.received(Reply(120, ("soon",))).final
    assert c.received(Reply(220, ("ready",))).final and c.greeted


def test_a_greeting_other_than_220_or_421_is_a_violation():
    with pytest.raises(FtpViolation, match="greeting"):
        Conversation().received(Reply(230, ("hi",)))


def test_a_reply_without_a_command_is_a_violation():
    c = Conversation()
    c.received(Reply(220, ("ready",)))
    with pytest.raises(FtpViolation, match="no command pending"):
        c.received(Reply(200, ("ok",)))


def test_preliminary_replies_only_for_transfer_commands():
    c = Conversation()
    c.received(Reply(220, ("ready",)))
    c.sent(Command("RETR", "x"))
    a = c.received(Reply(150, ("opening",)))
    assert a.command == Command("RETR", "x") and not a.final
    assert c.received(Reply(226, ("done",))).final
    c.sent(Command("CWD", "x"))
    with pytest.raises(FtpViolation, match="preliminary reply 150 to CWD"):
        c.received(Reply(150, ("?",)))


def test_abor_during_a_transfer_gets_its_own_reply_after_the_transfers():
    c = Conversation()
    c.received(Reply(220, ("ready",)))
    c.sent(Command("RETR", "x"))
    c.received(Reply(150, ("opening",)))
    c.sent(Command("ABOR"))
    assert c.received(Reply(426, ("aborted",))).command == Command("RETR", "x")
    assert c.received(Reply(226, ("abor ok",))).command == Command("ABOR")
    assert not c.pending


def test_an_unsolicited_421_means_the_server_is_closing():
    c = Conversation()
    c.received(Reply(220, ("ready",)))
    a = c.received(Reply(421, ("bye",)))
    assert a.command is None and c.closing


class ConversationMachine(RuleBasedStateMachine):
    """Commands and replies in any legal order, through the real readers in chunks."""

    @initialize(greeting=st.sampled_from([[220], [120, 220]]))
    def greet(self, greeting):
        self.conv = Conversation()
        self.replies = ReplyReader()
        self.sent: list[Command] = []
        self.answered: list[Command] = []
        self.preliminaries: dict[int, int] = {}
        for code in greeting:
            [reply] = self.replies.feed(format_reply(code, "hello"))
            self.conv.received(reply)
        assert self.conv.greeted

    @rule(verb=st.sampled_from(sorted({"NOOP", "CWD", "PASV", "REIN", *TRANSFER_COMMANDS})))
    def send(self, verb):
        cmd = Command(verb, "x" if verb in TRANSFER_COMMANDS else None)
        self.conv.sent(cmd)
        self.sent.append(cmd)

    @precondition(lambda self: len(self.answered) < len(self.sent))
    @rule(code=st.integers(200, 559), lines=st.integers(1, 3), cut=st.integers(0, 200))
    def final(self, code, lines, cut):
        if code % 100 > 59:
            code -= 40
        data = Reply(code, tuple(f"line {i}" for i in range(lines))).serialize()
        got = self.replies.feed(data[:cut]) + self.replies.feed(data[cut:])
        [reply] = got
        answer = self.conv.received(reply)
        assert answer.final and answer.command == self.sent[len(self.answered)]
        self.answered.append(answer.command)

    @precondition(lambda self: len(self.answered) < len(self.sent))
    @rule(code=st.sampled_from([110, 125, 150]))
    def preliminary(self, code):
        [reply] = self.replies.feed(format_reply(code, "wait"))
        pending = self.sent[len(self.answered)]
        first = self.preliminaries.get(len(self.answered), 0) == 0
        if (pending.verb in TRANSFER_COMMANDS or pending.verb == "REIN") and first:
            answer = self.conv.received(reply)
            assert not answer.final and answer.command == pending
            self.preliminaries[len(self.answered)] = 1
        else:  # not one that may have a 1yz reply, or a second one (RFC 959: one)
            with pytest.raises(FtpViolation):
                self.conv.received(reply)

    @precondition(lambda self: len(self.answered) == len(self.sent))
    @rule()
    def unexpected(self):
        with pytest.raises(FtpViolation):
            self.conv.received(Reply(200, ("surprise",)))

    @invariant()
    def pending_are_the_unanswered(self):
        if hasattr(self, "conv"):
            assert list(self.conv.pending) == self.sent[len(self.answered) :]


ConversationMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30)
TestConversation = ConversationMachine.TestCase
