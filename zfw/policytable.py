"""Zorp-style policy tables, shared by every proxy: lookup with ``"*"`` fallbacks,
actions with arguments, POLICY functions; no I/O.

A proxy's ``config()`` fills dictionaries such as ``self.request[VERB]``.
A value is an action constant or a tuple of the action and its arguments::

    self.request["DELE"] = (POP3_REQ_REJECT, "Deleting is not permitted.")
    self.request["USER"] = (POP3_REQ_POLICY, self.check_user)

A POLICY function gets what the proxy passes it and returns a value of the
same kind (but not POLICY again). Each protocol's module (``zfw.http.policy``,
``zfw.ftp.policy``) names its constants and checks the arguments its actions
take: error statuses, reply codes, texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

ACCEPT = 1
DENY = 2
REJECT = 3
ABORT = 4
POLICY = 6

#: Every action a table may name; a protocol admits a subset.
ACTIONS = {ACCEPT: "accept", DENY: "deny", REJECT: "reject", ABORT: "abort", POLICY: "policy"}


class PolicyValueError(Exception):
    """A policy table holds something zfw cannot act on."""


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
    value: Any,
    call: Callable[[Callable[..., Any]], Any],
    what: str,
    actions: Mapping[int, str] = ACTIONS,
    kind: str = "an action",
) -> tuple[str, tuple[Any, ...]]:
    """The action a table value names, and its arguments; ``call(fn)`` runs a POLICY
    function. ``actions``: the constants this protocol admits; ``kind`` names them in
    the error (``"an HTTP_REQ_* action"``)."""
    args: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
    head = args[0] if args else None
    if not isinstance(head, int) or isinstance(head, bool) or head not in actions:
        raise PolicyValueError(f"{what}: {value!r} is not {kind}")
    action = actions[head]
    if action != "policy":
        return action, args[1:]
    if len(args) != 2 or not callable(args[1]):
        raise PolicyValueError(f"{what}: POLICY needs one function: (..._POLICY, func)")
    result = call(args[1])
    if result is None:
        raise PolicyValueError(f"{what}: the policy function returned nothing")
    inner = result if isinstance(result, tuple) else (result,)
    if inner and inner[0] in actions and actions[inner[0]] == "policy":
        raise PolicyValueError(f"{what}: a policy function cannot answer POLICY")
    return decide(result, call, what, actions, kind)
