"""The HTTP proxy's policy tables, Zorp style, evaluated without I/O.

A policy fills four dictionaries in ``HttpProxy.config()``:

- ``self.request[METHOD]``: what to do with a request method (``"*"``: any other);
- ``self.response[(METHOD, CODE)]``: what to do with a response, wildcards on both;
- ``self.request_header[NAME]`` / ``self.response_header[NAME]``: per header field.

A value is an action constant, or a tuple of the action and its arguments::

    self.request["DELETE"] = (HTTP_REQ_REJECT, 405, "DELETE is not permitted here")
    self.request["PUT"] = (HTTP_REQ_POLICY, self.check_put)
    self.request_header["User-Agent"] = (HTTP_HDR_REPLACE, "zfw")

The lookups and actions are :mod:`zfw.policytable`'s, shared by every proxy;
this module adds error statuses and texts, turns values into :class:`Verdict`
objects and applies header tables to a list of fields; the proxy acts on the
result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zfw import policytable
from zfw.http.messages import HOP_BY_HOP
from zfw.http.parser import TOKEN
from zfw.policytable import PolicyValueError

HTTP_REQ_ACCEPT = policytable.ACCEPT
HTTP_REQ_DENY = policytable.DENY
HTTP_REQ_REJECT = policytable.REJECT
HTTP_REQ_ABORT = policytable.ABORT
HTTP_REQ_POLICY = policytable.POLICY

HTTP_RSP_ACCEPT = HTTP_REQ_ACCEPT
HTTP_RSP_DENY = HTTP_REQ_DENY
HTTP_RSP_REJECT = HTTP_REQ_REJECT
HTTP_RSP_ABORT = HTTP_REQ_ABORT
HTTP_RSP_POLICY = HTTP_REQ_POLICY

HTTP_HDR_ACCEPT = 1
HTTP_HDR_DROP = 5
HTTP_HDR_ABORT = 4
HTTP_HDR_POLICY = 6
HTTP_HDR_REPLACE = 7
HTTP_HDR_INSERT = 8

_NAME = re.compile(TOKEN.decode())
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Header names a policy cannot set: zfw alone frames messages.
RESERVED_HEADERS = frozenset(n.decode() for n in HOP_BY_HOP) | {"content-length"}


@attrs.define
class Verdict:
    """What to do with a request or response.

    ``action`` is accept, deny, reject or abort; ``status``/``info`` are for
    the error page of deny and reject (None: the proxy's default).
    """

    action: str
    status: int | None = None
    info: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the message passes."""
        return self.action == "accept"


ACCEPT = Verdict("accept")


def _token_key(key: Any) -> str | None:
    return None if key == "*" or (isinstance(key, str) and _NAME.fullmatch(key)) else ""


#: Methods a client sends in upper case: a key in another case would never match.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


def _method_key(key: Any) -> str | None:
    if isinstance(key, str) and key != key.upper() and key.upper() in _METHODS:
        return f"methods are case-sensitive: {key.upper()!r}"
    return _token_key(key)


def _response_key(key: Any) -> str | None:
    if isinstance(key, tuple) and len(key) == 2:
        if _method_key(key[0]) is None and policytable.code_key(key[1]):
            return None
        if isinstance(key[0], str) and _method_key(key[0]):
            return _method_key(key[0])
    elif isinstance(key, int | str) and key != "*" and policytable.code_key(key):
        return f"write ('*', {key!r}) for any method"
    return ""


def field_problem(name: str, value: str) -> str | None:
    """Why a field a policy wants to send cannot be sent: an invalid name, one zfw
    frames itself, or an invalid value (None: it can)."""
    if not _NAME.fullmatch(name):
        return f"{name!r} is not a valid header name"
    if name.lower() in RESERVED_HEADERS:
        return f"{name} is set by zfw, not by the policy"
    return _value_problem(value)


def _value_problem(value: str) -> str | None:
    if _BAD_VALUE.search(value) or value != value.strip(" \t"):
        return f"invalid header value {value[:40]!r}"
    return None


def _one_value(args: tuple[Any, ...]) -> str | None:
    if len(args) != 1 or not isinstance(args[0], str):
        return f"takes one text value, not {args!r}"[:100]
    return _value_problem(args[0])


def _header_entry(key: Any, action: str, args: tuple[Any, ...]) -> str | None:
    if action in ("replace", "insert") and key != "*":
        return field_problem(key, args[0])
    return None


_VERDICTS = {
    HTTP_REQ_ACCEPT: policytable.Action("accept"),
    HTTP_REQ_DENY: policytable.Action("deny", policytable.code_and_text("status")),
    HTTP_REQ_REJECT: policytable.Action("reject", policytable.code_and_text("status")),
    HTTP_REQ_ABORT: policytable.Action("abort"),
    HTTP_REQ_POLICY: policytable.Action("policy"),
}
_HEADER_ACTIONS = {
    HTTP_HDR_ACCEPT: policytable.Action("accept"),
    HTTP_HDR_DROP: policytable.Action("drop"),
    HTTP_HDR_ABORT: policytable.Action("abort"),
    HTTP_HDR_POLICY: policytable.Action("policy"),
    HTTP_HDR_REPLACE: policytable.Action("replace", _one_value),
    HTTP_HDR_INSERT: policytable.Action("insert", _one_value),
}

#: ``self.request[METHOD]``; a POLICY function gets the request.
REQUEST = policytable.TableSpec(
    "request", _method_key, "a method or '*'", _VERDICTS,
    "HTTP_REQ_", "an HTTP_REQ_* action", ("request",),
)  # fmt: skip
#: ``self.response[(METHOD, STATUS)]``; a POLICY function gets the request and response.
RESPONSE = policytable.TableSpec(
    "response", _response_key, "(method or '*', status or '*')", _VERDICTS,
    "HTTP_RSP_", "an HTTP_RSP_* action", ("request", "response"),
)  # fmt: skip
#: ``self.request_header[NAME]``; a POLICY function gets the field's name and value.
REQUEST_HEADER = policytable.TableSpec(
    "request_header", _token_key, "a header name or '*'", _HEADER_ACTIONS,
    "HTTP_HDR_", "an HTTP_HDR_* action", ("name", "value"), _header_entry, fold_case=True,
)  # fmt: skip
#: ``self.response_header[NAME]``, as :data:`REQUEST_HEADER`.
RESPONSE_HEADER = attrs.evolve(REQUEST_HEADER, name="response_header")
#: Every table of HttpProxy, by the attribute that holds it.
TABLES = (REQUEST, RESPONSE, REQUEST_HEADER, RESPONSE_HEADER)


def verdict(
    value: Any,
    call: Callable[[Callable[..., Any]], Any],
    what: str,
    spec: policytable.TableSpec = REQUEST,
) -> Verdict:
    """The :class:`Verdict` for a value of the ``spec`` table; ``call(fn)`` runs a
    POLICY function, which returns a value of the same kind (but not POLICY again)."""
    if isinstance(value, Verdict):
        return value
    action, args = policytable.decide(spec, value, call, what)
    status: int | None = None
    info: str | None = None
    for a in args:
        if isinstance(a, int):
            status = a
        else:
            info = a
    return Verdict(action, status, info)


#: The request table's value for a method (exact, then ``"*"``); None: not listed.
request_entry = policytable.lookup


def response_entry(table: Mapping[Any, Any], method: str, status: int) -> Any:
    """The response table's value for ``(method, status)``, most specific first.

    Codes may be written as ints or strings; ``"*"`` matches any method or code.
    """
    return policytable.lookup_pair(table, method, status)


class HeaderAbort(Exception):
    """A header table said ABORT for a field."""


def check_field(name: str, value: str, what: str) -> tuple[str, str]:
    """A field a policy wants to send: valid, and not one zfw frames itself."""
    problem = field_problem(name, value)
    if problem is not None:
        raise PolicyValueError(f"{what}: {problem}")
    return name, value


def check_fields(fields: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
    """``fields`` once a policy had them (a POLICY function may change a message's
    ``headers``): each valid, and none that zfw frames itself."""
    for name, value in fields:
        problem = field_problem(name, value)
        if problem is not None:
            raise PolicyValueError(f"{what}: {problem}")
    return fields


def filter_headers(
    spec: policytable.TableSpec,
    table: Mapping[str, Any],
    headers: list[tuple[str, str]],
    call: Callable[[Callable[..., Any], str, str], Any],
) -> list[tuple[str, str]]:
    """``headers`` after the header table ``table`` of shape ``spec``;
    ``call(fn, name, value)`` runs POLICY functions.

    Keys match case-insensitively; ``"*"`` is the fallback for fields not
    listed (default ACCEPT). REPLACE and INSERT of names that are not present
    add the field at the end. Raises :class:`HeaderAbort` on ABORT.
    """
    if not table:
        return headers
    rules = {k.lower(): v for k, v in table.items()}
    spelled = {k.lower(): k for k in table}
    fallback = rules.pop("*", HTTP_HDR_ACCEPT)
    out: list[tuple[str, str]] = []
    replaced: set[str] = set()
    for name, value in headers:
        key = name.lower()
        rule = rules.get(key, fallback)
        if rule == HTTP_HDR_ACCEPT and type(rule) is int:
            out.append((name, value))
            continue
        action, args = policytable.decide(
            spec, rule, lambda fn, n=name, v=value: call(fn, n, v), f"{spec.name}[{name!r}]"
        )
        if action == "accept" or action == "insert":
            out.append((name, value))
        elif action == "abort":
            raise HeaderAbort(f"header {name} is not permitted")
        elif action == "replace" and key not in replaced:
            replaced.add(key)
            out.append(check_field(spelled.get(key, name), args[0], spec.name))
    present = {n.lower() for n, _v in headers}
    for key, rule in table.items():
        args = rule if isinstance(rule, tuple) else (rule,)
        if key == "*" or args[0] not in (HTTP_HDR_REPLACE, HTTP_HDR_INSERT):
            continue
        if args[0] == HTTP_HDR_REPLACE and key.lower() in present:
            continue
        problem = policytable.value_problem(spec, args)
        if problem is not None:
            raise PolicyValueError(f"{spec.name}[{key!r}]: {problem}")
        out.append(check_field(key, args[1], spec.name))
    return out
