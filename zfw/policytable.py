"""Zorp-style policy tables, shared by every proxy: lookup with ``"*"`` fallbacks,
actions with arguments, POLICY functions, and the declared shape of each table;
no I/O.

A proxy's ``config()`` fills dictionaries such as ``self.request[VERB]``.
A value is an action constant or a tuple of the action and its arguments::

    self.request["DELE"] = (POP3_REQ_REJECT, "Deleting is not permitted.")
    self.request["USER"] = (POP3_REQ_POLICY, self.check_user)

A POLICY function gets what the proxy passes it and returns a value of the
same kind (but not POLICY again). Each table is described by a
:class:`TableSpec` beside the proxy's constants (``zfw.http.policy``,
``zfw.ftp.policy``, ``zfw.proxy.pop3``): the shape of its keys, the actions it
admits with the arguments each takes, and what a POLICY function is given.
:func:`check_table` holds a table to its spec (``zfw check``); :func:`decide`
holds each value and each POLICY function's answer to it (run time).
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import attrs

ACCEPT = 1
DENY = 2
REJECT = 3
ABORT = 4
POLICY = 6

#: Every action a table may name; a protocol admits a subset.
ACTIONS = {ACCEPT: "accept", DENY: "deny", REJECT: "reject", ABORT: "abort", POLICY: "policy"}

_VERB = re.compile(r"[A-Z]{3,4}")

#: Why the arguments of an action are wrong (None: they are right).
ArgsCheck = Callable[[tuple[Any, ...]], "str | None"]


class PolicyValueError(Exception):
    """A policy table holds something zfw cannot act on."""


class TableError(PolicyValueError):
    """An entry of a table does not have its table's shape; ``key`` names it (None: the
    table as a whole)."""

    def __init__(self, message: str, table: str, key: Any = None):
        super().__init__(message)
        self.table = table
        self.key = key
        #: Where the entry was set (:func:`check_configured` finds it).
        self.filename: str | None = None
        self.lineno: int | None = None


class CallbackError(PolicyValueError):
    """A POLICY function raised or answered something that is not an action of its
    table; ``where`` is the function's ``file:line``."""

    def __init__(self, message: str, func: Callable[..., Any]):
        super().__init__(message)
        self.func = func
        self.where = code_location(func)


def no_arguments(args: tuple[Any, ...]) -> str | None:
    """For actions that take no arguments."""
    return f"takes no arguments, not {_short(args)}" if args else None


def text_only(args: tuple[Any, ...]) -> str | None:
    """For actions that take an optional text (any characters)."""
    if len(args) > 1 or (args and not isinstance(args[0], str)):
        return f"takes one optional text, not {_short(args)}"
    return None


def code_and_text(noun: str, text: Callable[[str], str | None] | None = None) -> ArgsCheck:
    """For actions that take an optional code (4xx or 5xx; ``noun`` names it) and an
    optional text (``text(t)``: why it is wrong), in either order."""

    def check(args: tuple[Any, ...]) -> str | None:
        seen: set[str] = set()
        for a in args:
            if isinstance(a, int) and not isinstance(a, bool):
                if not 400 <= a <= 599:
                    return f"{noun} {a} is not 4xx or 5xx"
                kind = noun
            elif isinstance(a, str):
                problem = text(a) if text is not None else None
                if problem is not None:
                    return problem
                kind = "text"
            else:
                return f"{_short(a)} is neither a {noun} nor a text"
            if kind in seen:
                return f"takes one {noun} and one text at most, not {_short(args)}"
            seen.add(kind)
        return None

    return check


def code_key(code: Any) -> bool:
    """Whether ``code`` is a status or reply code in a key: 100 to 599, as an int or in
    digits, or ``"*"``."""
    if code == "*":
        return True
    if isinstance(code, str) and code.isdigit() and code.isascii() and code[0] != "0":
        code = int(code)  # as the lookup writes it: "404", never "0404"
    return isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599


def verb_key(key: Any) -> str | None:
    """Why ``key`` is not a command verb of 3 or 4 letters in upper case (FTP, POP3),
    nor ``"*"`` (None: it is; ``""``: it is nothing like one)."""
    if key == "*" or (isinstance(key, str) and _VERB.fullmatch(key)):
        return None
    if isinstance(key, str) and _VERB.fullmatch(key.upper()):
        return f"commands are in upper case: {key.upper()!r}"
    return ""


@attrs.frozen
class Action:
    """An action a table admits: its name (``"reject"``) and the check of its arguments."""

    name: str
    args: ArgsCheck = no_arguments


@attrs.frozen
class TableSpec:
    """The declared shape of one policy table, named by the proxy attribute holding it.

    ``key(k)`` says why a key is wrong (None: right; ``""``: no more than that it is
    not ``key_text``, which describes a right one). ``prefix`` starts the names of
    its constants (``"HTTP_REQ_"``) and ``kind`` names them in errors (``"an
    HTTP_REQ_* action"``); ``calls`` names what a POLICY function is given, in
    order. ``entry(key, action, args)`` checks a key with its action (None: nothing
    more to check). With ``fold_case`` keys are matched case-insensitively, so two
    that differ only in case are refused.
    """

    name: str
    key: Callable[[Any], str | None]
    key_text: str
    actions: Mapping[int, Action]
    prefix: str
    kind: str
    calls: tuple[str, ...]
    entry: Callable[[Any, str, tuple[Any, ...]], str | None] | None = None
    fold_case: bool = False


def lookup(table: Mapping[str, Any], key: str) -> Any:
    """The table's value for ``key``, else for ``"*"``; None: not listed."""
    value = table.get(key)
    return table.get("*") if value is None else value


def lookup_pair(table: Mapping[Any, Any], first: str, code: int) -> Any:
    """The value for ``(first, code)``, most specific first: ``(first, code)``,
    ``(first, "*")``, ``("*", code)``, ``("*", "*")``; a code may be written as an
    int or a string. None: not listed."""
    for key in (
        (first, code),
        (first, str(code)),
        (first, "*"),
        ("*", code),
        ("*", str(code)),
        ("*", "*"),
    ):
        value = table.get(key)
        if value is not None:
            return value
    return None


def decide(
    spec: TableSpec, value: Any, call: Callable[[Callable[..., Any]], Any], what: str
) -> tuple[str, tuple[Any, ...]]:
    """The action a table value names, and its arguments; ``call(fn)`` runs a POLICY
    function. A value without its table's shape raises :class:`PolicyValueError`; a
    POLICY function that raises or answers one, :class:`CallbackError`."""
    args: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
    problem = value_problem(spec, args)
    if problem is not None:
        raise PolicyValueError(f"{what}: {_subject(value, 'is', problem)}")
    action = spec.actions[args[0]]
    if action.name != "policy":
        return action.name, args[1:]
    fn = args[1]
    try:
        result = call(fn)
    except Exception as e:  # policy code
        text = " ".join(str(e).split())[:200]  # one line
        raise CallbackError(
            f"{what}: POLICY function {_name(fn)} raised {type(e).__name__}: {text}", fn
        ) from e
    inner = result if isinstance(result, tuple) else (result,)
    problem = "nothing" if result is None else value_problem(spec, inner, answer=True)
    if problem is not None:
        raise CallbackError(
            f"{what}: POLICY function {_name(fn)} {_subject(result, 'returned', problem)}", fn
        )
    return spec.actions[inner[0]].name, inner[1:]


def value_problem(
    spec: TableSpec, args: tuple[Any, ...], answer: bool = False, signature: bool = False
) -> str | None:
    """Why a value (as a tuple) is not one of ``spec``'s actions with its arguments;
    ``answer``: it is a POLICY function's answer, which cannot be POLICY again;
    ``signature``: also whether a POLICY function takes what it will be given (not
    per request: it costs). A text starting ``"not "`` is about the value as a whole."""
    head = args[0] if args else None
    if not isinstance(head, int) or isinstance(head, bool) or head not in spec.actions:
        return f"not {spec.kind}"
    action = spec.actions[head]
    if action.name != "policy":
        problem = action.args(args[1:])
        if problem is None:
            return None
        const = spec.prefix + action.name.upper()
        return f"{const} {problem}" if problem.startswith("takes ") else f"{const}: {problem}"
    if answer:
        return "a policy function cannot answer POLICY"
    if len(args) != 2 or not callable(args[1]):
        return "POLICY needs one function: (..._POLICY, func)"
    return signature_problem(args[1], spec.calls) if signature else None


def signature_problem(fn: Callable[..., Any], calls: tuple[str, ...]) -> str | None:
    """Why ``fn`` cannot be called with the arguments named ``calls`` (None: it can, or
    its signature cannot be known)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*calls)
    except TypeError:
        given = ", ".join(calls)
        return f"the POLICY function {_name(fn)}{sig} cannot be called as {_name(fn)}({given})"
    return None


def check_table(spec: TableSpec, table: Any) -> None:
    """Raise :class:`TableError` for the first key or value of ``table`` that does not
    have ``spec``'s shape; the message names the table and the key."""
    if not isinstance(table, Mapping):
        raise TableError(
            f"{spec.name} must be a dict of {spec.key_text} to actions, not {_short(table)}",
            spec.name,
        )
    folded: dict[str, Any] = {}
    for key, value in table.items():
        what = f"{spec.name}[{key!r}]"
        problem = spec.key(key)
        if problem is not None:
            hint = f" ({problem})" if problem else ""
            raise TableError(
                f"{what}: a key of {spec.name} is {spec.key_text}, not {_short(key)}{hint}",
                spec.name,
                key,
            )
        if spec.fold_case and isinstance(key, str):
            if key.lower() in folded:
                other = folded[key.lower()]
                raise TableError(f"{what}: {other!r} names the same, in any case", spec.name, key)
            folded[key.lower()] = key
        args = value if isinstance(value, tuple) else (value,)
        problem = value_problem(spec, args, signature=True)
        if problem is None and spec.entry is not None:
            problem = spec.entry(key, spec.actions[args[0]].name, args[1:])
        if problem is not None:
            raise TableError(f"{what}: {_subject(value, 'is', problem)}", spec.name, key)


class Recorder(dict):  # type: ignore[type-arg]
    """A table that remembers the ``(file, line)`` each key was set at (the dry run of
    ``config()`` at ``zfw check``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, tuple[str, int]] = {}

    def _mark(self, keys: Any) -> None:
        frame = sys._getframe(2)
        for key in keys:
            self.lines[key] = (frame.f_code.co_filename, frame.f_lineno)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._mark((key,))
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Like dict's, remembering where each key was set."""
        items = dict(*args, **kwargs)
        self._mark(items)
        super().update(items)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Like dict's, remembering where the key was set."""
        if key not in self:
            self._mark((key,))
        return super().setdefault(key, default)

    def __ior__(self, other: Any) -> Recorder:  # type: ignore[override]
        items = dict(other)
        self._mark(items)
        super().update(items)
        return self


def check_configured(proxy: Any, config: Callable[[], None]) -> None:
    """Run ``config()`` with each table of ``proxy`` (its class's ``table_specs``)
    recording where its entries are set, then hold every table to its spec.

    A wrong entry raises :class:`TableError` with ``filename``/``lineno``: where the
    entry was set, else where ``config`` is defined (a table replaced as a whole)."""
    specs = getattr(type(proxy), "table_specs", ())
    for spec in specs:
        setattr(proxy, spec.name, Recorder(getattr(proxy, spec.name)))
    config()
    for spec in specs:
        table = getattr(proxy, spec.name)
        try:
            check_table(spec, table)
        except TableError as e:
            if isinstance(table, Recorder):
                where = table.lines.get(e.key) if e.key is not None else None
            else:
                where = _assigned_at(config, spec.name, e.key)
            e.filename, e.lineno = where or _defined_at(config)
            raise


def code_location(fn: Any) -> str:
    """``file:line`` where a function (or method, or callable object) is defined."""
    code = _code(fn)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else repr(fn)[:80]


def _code(fn: Any) -> Any:
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None and not inspect.isroutine(fn):
        code = getattr(getattr(type(fn).__call__, "__func__", type(fn).__call__), "__code__", None)
    return code


def _assigned_at(config: Any, name: str, key: Any) -> tuple[str, int] | None:
    """Where ``config`` assigns ``self.<name> = ...`` (only once): the line of ``key``
    in a dict literal, else of the assignment; None: not found."""
    try:
        lines, first = inspect.getsourcelines(config)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return None
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Attribute) and t.attr == name and isinstance(t.value, ast.Name)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    if len(found) != 1:
        return None
    node: ast.AST = found[0]
    value = getattr(node, "value", None)
    if isinstance(value, ast.Dict):
        for k in value.keys:
            try:
                if k is not None and ast.literal_eval(k) == key:
                    node = k
                    break
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue
    filename = _defined_at(config)[0]
    return None if filename is None else (filename, first + getattr(node, "lineno", 1) - 1)


def _defined_at(fn: Any) -> tuple[str | None, int | None]:
    code = _code(fn)
    return (code.co_filename, code.co_firstlineno) if code is not None else (None, None)


def _name(fn: Any) -> str:
    fn = getattr(fn, "__func__", fn)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return name.rsplit("<locals>.", 1)[-1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _subject(value: Any, verb: str, problem: str) -> str:
    """``problem`` about ``value``: ``"True is not an HTTP_REQ_* action"``,
    ``"returned True, not an HTTP_REQ_* action"``, ``"HTTP_REQ_ABORT takes no ..."``."""
    if problem == "nothing":
        return f"{verb} nothing"
    if verb == "is":
        return f"{_short(value)} is {problem}" if problem.startswith("not ") else problem
    sep = "," if problem.startswith("not ") else ":"
    return f"{verb} {_short(value)}{sep} {problem}"
