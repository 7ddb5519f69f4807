"""zfw.options: kinds, declarations and checks."""

from __future__ import annotations

import attrs
import pytest

from zfw.errors import PolicyError
from zfw.options import (
    REQUIRED,
    Declared,
    OptionError,
    argument,
    arguments,
    boolean,
    check_instance,
    choice,
    declared,
    field,
    function,
    host_port,
    integer,
    names,
    number,
    option,
    optional,
    ordered,
    port,
    ports,
    problems,
    seconds,
    size,
    strings,
    subclass_of,
    table,
    text,
)

GOOD_AND_BAD = [
    (boolean(), [True, False], ["false", 1, 0, None]),
    (integer(1, 10), [1, 10], [0, 11, True, 2.0, "3"]),
    (number(0), [0, 1.5, 3], [-1, True, "1", float("nan"), float("inf")]),
    (seconds(), [0.5, 60], [0, "60", -1, False]),
    (seconds(zero=True), [0, 60], ["0", -1]),
    (size(), [0, 10 * 1024 * 1024], ["10M", 1.5, -1, True]),
    (port(1024), [1024, 65535], [1023, 65536, "2000", True]),
    (choice(("reject", "drop")), ["reject", "drop"], ["Reject", None, ["drop"]]),
    (choice({1: "ONE"}), [1], [True, 2]),
    (strings(), [(), ["a"], ("a", "b"), frozenset({"a"})], ["a", [1], None, {"a": 1}]),
    (ports(), [(443,), [80, 8080]], [443, "443", [0], [True]]),
    (names(), [(), ["a.example", "*.b.example"]], ["a.example", ["*b.example"], ["a", None]]),
    (text(), ["x"], ["", None, b"x"]),
    (host_port(), [("proxy.example", 3128)], [("proxy.example", "3128"), ["h", 1], ("", 1)]),
    (function(), [len, lambda: 0], ["len", None]),
    (subclass_of(Exception), [ValueError], [ValueError(), "ValueError", int]),
    (table(), [{}, {"GET": 1}], [[("GET", 1)], None, "GET"]),
    (optional(size()), [None, 5], ["5"]),
]


@pytest.mark.parametrize(
    ("kind", "good", "bad"), GOOD_AND_BAD, ids=lambda k: getattr(k, "what", "")
)
def test_kinds(kind, good, bad):
    for value in good:
        assert kind.problem(value) is None, value
    for value in bad:
        assert kind.problem(value) is not None, value


def test_messages_say_what_and_what_not():
    assert seconds().problem("60") == "must be a number of seconds, more than 0, not '60'"
    assert boolean().problem("false") == "must be True or False, not 'false'"
    assert size().problem("10M") == "must be a number of bytes, not '10M'"
    assert strings().problem("websocket") == (
        "must be a list of strings, not the string 'websocket' (write ['websocket'])"
    )
    assert "a wildcard is a whole first label" in names().problem(["*bank.example"])
    assert choice(("reject", "drop")).problem("x") == 'must be one of "reject" or "drop", not \'x\''
    assert len(boolean().problem("x" * 500)) < 120


class Base(Declared):
    timeout = option(seconds(), 60.0, "idle seconds")
    low = option(port(1024), 2000, "lowest")
    high = option(port(1024), 3000, "highest")
    __option_checks__ = (ordered("low", "high"),)


def test_the_default_is_a_plain_class_attribute():
    assert Base.timeout == 60.0 and type(Base.__dict__["timeout"]) is float
    opt = Base.__options__["timeout"]
    assert (opt.name, opt.owner, opt.default, opt.doc) == ("timeout", "Base", 60.0, "idle seconds")


def test_a_subclass_inherits_and_adds_declarations():
    class Sub(Base):
        extra = option(boolean(), False, "more")

    assert list(Sub.__options__) == ["timeout", "low", "high", "extra"]
    assert Sub.__options__["timeout"].owner == "Base"


def test_a_subclass_value_of_an_option_is_checked_when_the_class_is_made():
    with pytest.raises(OptionError, match=r"Sub: Base\.timeout must be a number of seconds"):

        class Sub(Base):
            timeout = "60"

    class Fine(Base):
        timeout = 5
        own = "anything"  # not an option: the policy's own

    assert Fine.timeout == 5


def test_a_wrong_default_is_a_programming_error():
    with pytest.raises(TypeError, match=r"the default of Bad\.flag must be True or False"):

        class Bad(Declared):
            flag = option(boolean(), 0, "")


def test_check_instance_checks_what_the_instance_holds():
    b = Base()
    check_instance(b)
    b.timeout = "60"
    with pytest.raises(OptionError, match=r"^Base\.timeout must be"):
        check_instance(b)
    b.timeout = 1
    b.low, b.high = 3000, 2000
    with pytest.raises(OptionError, match=r"^Base: low \(3000\) is above high \(2000\)"):
        check_instance(b)


def test_problems_lists_every_wrong_option():
    b = Base()
    b.timeout = 0
    b.low = 80
    found = problems(b)
    assert [n for n, _m in found] == [("timeout",), ("low",)]
    b.low = 5000
    assert problems(b)[-1] == (("low", "high"), "Base: low (5000) is above high (3000)")


@arguments(
    name=argument(text(), "the name"),
    flag=argument(boolean(), "a flag"),
)
class Made:
    def __init__(self, name, flag=True):
        self.name = name
        self.flag = flag


def test_arguments_are_checked_with_defaults_from_the_signature():
    assert Made("x").flag is True
    opts = declared(Made)
    assert opts["name"].default is REQUIRED and opts["flag"].default is True
    assert opts["flag"].shown_default() == "True" and opts["name"].shown_default() == "(required)"
    with pytest.raises(OptionError, match=r"^Made: flag must be True or False, not .no.$"):
        Made("x", flag="no")
    with pytest.raises(PolicyError, match=r"^Made: missing a required argument: .name."):
        Made()


def test_every_argument_must_be_declared():
    with pytest.raises(TypeError, match="declared as"):

        @arguments(a=argument(text(), ""))
        class Half:
            def __init__(self, a, b):
                pass


@attrs.frozen
class Record:
    port: int = field(port(), 80, "the port")
    host: str = field(text(), "h", "the host")


def test_attrs_fields():
    assert Record().port == 80
    with pytest.raises(OptionError, match=r"^Record: port must be a port from 1 to 65535, not 0$"):
        Record(port=0)
    assert list(declared(Record)) == ["port", "host"]
    assert declared(Record)["port"].owner == "Record"


def test_values_found_good_are_remembered_by_type_and_value():
    class Counted(Declared):
        n = option(integer(1), 5, "a count")

    c = Counted()
    c.n = 1
    check_instance(c)
    c.n = True  # equal to 1, and still no integer
    with pytest.raises(OptionError, match="not True"):
        check_instance(c)
    c.n = [1]  # unhashable: checked, not remembered
    with pytest.raises(OptionError):
        check_instance(c)
