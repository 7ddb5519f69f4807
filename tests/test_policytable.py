"""The shared policy table machinery: shapes declared per table, checked whole
(``zfw check``) and per decision (run time), and where a wrong entry was set."""

from __future__ import annotations

import inspect

import pytest

from zfw import policytable
from zfw.policytable import (
    ABORT,
    ACCEPT,
    POLICY,
    REJECT,
    Action,
    CallbackError,
    PolicyValueError,
    Recorder,
    TableError,
    TableSpec,
    check_configured,
    check_table,
    code_and_text,
    code_location,
    decide,
    signature_problem,
)

SPEC = TableSpec(
    "request",
    policytable.verb_key,
    "a command or '*'",
    {
        ACCEPT: Action("accept"),
        REJECT: Action("reject", code_and_text("code")),
        ABORT: Action("abort", policytable.text_only),
        POLICY: Action("policy"),
    },
    "T_REQ_",
    "a T_REQ_* action",
    ("command",),
)


def one(command):
    return ACCEPT


def test_a_table_of_the_right_shape_passes():
    check_table(
        SPEC,
        {
            "RETR": ACCEPT,
            "STOR": (ACCEPT,),
            "DELE": (REJECT, 550, "no"),
            "RMD": (REJECT, "no", 450),
            "QUIT": (ABORT, "bye"),
            "USER": (POLICY, one),
            "PASS": (POLICY, lambda c: ACCEPT),
            "*": REJECT,
        },
    )
    check_table(SPEC, {})


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({404: ACCEPT}, 404, "request[404]: a key of request is a command or '*', not 404"),
        ({"stor": ACCEPT}, "stor", "not 'stor' (commands are in upper case: 'STOR')"),
        ({"RETR": 9}, "RETR", "request['RETR']: 9 is not a T_REQ_* action"),
        ({"RETR": True}, "RETR", "True is not a T_REQ_* action"),
        ({"RETR": None}, "RETR", "None is not a T_REQ_* action"),
        ({"RETR": "ACCEPT"}, "RETR", "'ACCEPT' is not a T_REQ_* action"),
        ({"RETR": (ACCEPT, "x")}, "RETR", "T_REQ_ACCEPT takes no arguments, not ('x',)"),
        ({"RETR": (REJECT, 200)}, "RETR", "T_REQ_REJECT: code 200 is not 4xx or 5xx"),
        ({"RETR": (REJECT, 1.5)}, "RETR", "1.5 is neither a code nor a text"),
        ({"RETR": (REJECT, 550, 551)}, "RETR", "takes one code and one text at most"),
        ({"RETR": (ABORT, 421)}, "RETR", "T_REQ_ABORT takes one optional text, not (421,)"),
        ({"RETR": (POLICY,)}, "RETR", "POLICY needs one function"),
        ({"RETR": (POLICY, one, one)}, "RETR", "POLICY needs one function"),
        ({"RETR": (POLICY, "one")}, "RETR", "POLICY needs one function"),
        (
            {"RETR": (POLICY, lambda: ACCEPT)},
            "RETR",
            "the POLICY function <lambda>() cannot be called as <lambda>(command)",
        ),
        (
            {"RETR": (POLICY, lambda a, b: ACCEPT)},
            "RETR",
            "the POLICY function <lambda>(a, b) cannot be called as <lambda>(command)",
        ),
    ],
)
def test_a_wrong_key_or_value_is_refused_naming_it(table, key, message):
    with pytest.raises(TableError) as info:
        check_table(SPEC, {"NOOP": ACCEPT, **table})
    assert message in str(info.value)
    assert info.value.key == key and info.value.table == "request"


def test_a_table_that_is_not_a_dict_is_refused():
    with pytest.raises(TableError, match=r"request must be a dict of a command or '\*' to"):
        check_table(SPEC, [("RETR", ACCEPT)])


def test_keys_differing_in_case_are_refused_where_case_does_not_count():
    spec = TableSpec("h", lambda k: None, "a name", SPEC.actions, "T_", "a T_* action", ("c",),
                     fold_case=True)  # fmt: skip
    with pytest.raises(TableError, match=r"h\['cookie'\]: 'Cookie' names the same, in any case"):
        check_table(spec, {"Cookie": ACCEPT, "cookie": REJECT})
    check_table(SPEC, {"RETR": ACCEPT, "*": REJECT})


@pytest.mark.parametrize(
    "fn, ok",
    [
        (lambda c: 0, True),
        (lambda c, extra=1: 0, True),
        (lambda *args: 0, True),
        (lambda: 0, False),
        (lambda c, d: 0, False),
        (lambda *, c: 0, False),
        (print, True),  # a builtin: whatever inspect says
        (len, True),
    ],
)
def test_signatures_are_bound_to_what_the_proxy_passes(fn, ok):
    assert (signature_problem(fn, ("command",)) is None) == ok


def test_bound_methods_and_callable_objects():
    class P:
        def check(self, command):
            return ACCEPT

        def __call__(self, command):
            return ACCEPT

    assert signature_problem(P().check, ("command",)) is None
    assert signature_problem(P.check, ("command",)) is not None  # self missing
    assert signature_problem(P(), ("command",)) is None
    line = inspect.getsourcelines(P.check)[1]
    assert code_location(P().check) == f"{__file__}:{line}"
    assert code_location(P()) == f"{__file__}:{line + 3}"


def test_decide_acts_and_asks_policy_functions():
    assert decide(SPEC, ACCEPT, None, "w") == ("accept", ())
    assert decide(SPEC, (REJECT, 550, "no"), None, "w") == ("reject", (550, "no"))
    answer = (REJECT, 451)
    assert decide(SPEC, (POLICY, one), lambda fn: answer, "w") == ("reject", (451,))
    with pytest.raises(PolicyValueError, match="w: 9 is not a T_REQ_"):
        decide(SPEC, 9, None, "w")


@pytest.mark.parametrize(
    "answer, message",
    [
        (True, "returned True, not a T_REQ_* action"),
        (None, "returned nothing"),
        ((REJECT, 200), "returned (3, 200): T_REQ_REJECT: code 200 is not 4xx or 5xx"),
        ((POLICY, one), "a policy function cannot answer POLICY"),
    ],
)
def test_a_wrong_answer_of_a_policy_function_names_the_function(answer, message):
    def check(command):
        return answer

    with pytest.raises(CallbackError) as info:
        decide(SPEC, (POLICY, check), lambda fn: fn("c"), "request['USER']")
    text = str(info.value)
    assert text.startswith("request['USER']: POLICY function ") and message in text
    assert "check" in text
    assert info.value.where == f"{__file__}:{inspect.getsourcelines(check)[1]}"


def test_a_policy_function_that_raises_is_a_callback_error_with_its_cause():
    def check(command):
        return 1 / 0

    with pytest.raises(CallbackError, match="raised ZeroDivisionError: division by zero") as info:
        decide(SPEC, (POLICY, check), lambda fn: fn("c"), "w")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_the_recorder_remembers_where_each_key_was_set():
    r = Recorder({"A": 1})
    r["B"] = 2
    line = inspect.currentframe().f_lineno - 1
    r.update({"C": 3}, D=4)
    r.setdefault("E", 5)
    r |= {"F": 6}
    assert dict(r) == {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6}
    assert r.lines["B"] == (__file__, line)
    assert [r.lines[k][1] - line for k in "CDEF"] == [2, 2, 3, 4]
    assert "A" not in r.lines


class Fake:
    table_specs = (SPEC,)

    def __init__(self):
        self.request = {"RETR": ACCEPT}  # a preset's

    def config(self):
        self.request["STOR"] = ACCEPT
        self.request["dele"] = REJECT


class Replaces(Fake):
    def config(self):
        self.request = {"RETR": 99}


def test_check_configured_locates_the_line_that_set_the_entry():
    fake = Fake()
    with pytest.raises(TableError) as info:
        check_configured(fake, fake.config)
    assert (info.value.filename, info.value.lineno) == (
        __file__,
        inspect.getsourcelines(Fake.config)[1] + 2,
    )
    assert "request['dele']" in str(info.value)


class Computes(Fake):
    def config(self):
        self.request = {}
        self.request = {verb: 99 for verb in ("RETR",)}


def test_a_table_replaced_whole_is_located_at_its_assignment_else_at_config():
    fake = Replaces()
    with pytest.raises(TableError) as info:
        check_configured(fake, fake.config)
    line = inspect.getsourcelines(Replaces.config)[1]
    assert (info.value.filename, info.value.lineno) == (__file__, line + 1)
    fake = Computes()
    with pytest.raises(TableError) as info:
        check_configured(fake, fake.config)
    line = inspect.getsourcelines(Computes.config)[1]
    assert (info.value.filename, info.value.lineno) == (__file__, line)
