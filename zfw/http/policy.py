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

_ACTION_NAMES = {
    HTTP_REQ_ACCEPT: "accept",
    HTTP_REQ_DENY: "deny",
    HTTP_REQ_REJECT: "reject",
    HTTP_REQ_ABORT: "abort",
    HTTP_REQ_POLICY: "policy",
}

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


def _status_and_info(args: tuple[Any, ...], what: str) -> tuple[int | None, str | None]:
    status: int | None = None
    info: str | None = None
    for a in args:
        if isinstance(a, bool):
            raise PolicyValueError(f"{what}: {a!r} is neither a status nor a text")
        if isinstance(a, int):
            if not 400 <= a <= 599:
                raise PolicyValueError(f"{what}: error status {a} is not 4xx or 5xx")
            status = a
        elif isinstance(a, str):
            info = a
        else:
            raise PolicyValueError(f"{what}: {a!r} is neither a status nor a text")
    return status, info


def verdict(value: Any, call: Callable[[Callable[..., Any]], Any], what: str) -> Verdict:
    """The :class:`Verdict` for a table value; ``call(fn)`` runs a POLICY function.

    A POLICY function returns a value of the same kind (but not POLICY again).
    """
    if isinstance(value, Verdict):
        return value
    action, args = policytable.decide(
        value, call, what, _ACTION_NAMES, "an HTTP_REQ_*/HTTP_RSP_* action"
    )
    status, info = _status_and_info(args, what)
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
    if not _NAME.fullmatch(name):
        raise PolicyValueError(f"{what}: {name!r} is not a valid header name")
    if name.lower() in RESERVED_HEADERS:
        raise PolicyValueError(f"{what}: {name} is set by zfw, not by the policy")
    if _BAD_VALUE.search(value) or value != value.strip(" \t"):
        raise PolicyValueError(f"{what}: invalid value {value[:40]!r} for {name}")
    return name, value


def filter_headers(
    table: Mapping[str, Any],
    headers: list[tuple[str, str]],
    call: Callable[[Callable[..., Any], str, str], Any],
    what: str,
) -> list[tuple[str, str]]:
    """``headers`` after the header table; ``call(fn, name, value)`` runs POLICY functions.

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
        args = rule if isinstance(rule, tuple) else (rule,)
        action = args[0]
        if action == HTTP_HDR_POLICY:
            if len(args) != 2 or not callable(args[1]):
                raise PolicyValueError(f"{what}: POLICY needs one function for {name}")
            result = call(args[1], name, value)
            args = result if isinstance(result, tuple) else (result,)
            action = args[0]
            if action == HTTP_HDR_POLICY:
                raise PolicyValueError(f"{what}: a policy function cannot answer POLICY")
        if action == HTTP_HDR_ACCEPT:
            out.append((name, value))
        elif action == HTTP_HDR_DROP:
            continue
        elif action == HTTP_HDR_ABORT:
            raise HeaderAbort(f"header {name} is not permitted")
        elif action == HTTP_HDR_REPLACE:
            if key in replaced:
                continue
            replaced.add(key)
            out.append(check_field(spelled.get(key, name), _one_value(args, what, name), what))
        elif action == HTTP_HDR_INSERT:
            out.append((name, value))
        else:
            raise PolicyValueError(f"{what}: {rule!r} is not an HTTP_HDR_* action for {name}")
    present = {n.lower() for n, _v in headers}
    for key, rule in table.items():
        args = rule if isinstance(rule, tuple) else (rule,)
        if key == "*" or args[0] not in (HTTP_HDR_REPLACE, HTTP_HDR_INSERT):
            continue
        if args[0] == HTTP_HDR_REPLACE and key.lower() in present:
            continue
        out.append(check_field(key, _one_value(args, what, key), what))
    return out


def _one_value(args: tuple[Any, ...], what: str, name: str) -> str:
    if len(args) != 2 or not isinstance(args[1], str):
        raise PolicyValueError(f"{what}: {name} needs one text value: (HTTP_HDR_..., 'value')")
    return args[1]
