"""Server name patterns: one grammar and one matcher for every list of names in a
policy (TlsTunnelProxy's ``allowed_names``/``denied_names``, the encryption
policies' ``bypass``/``reject``, SNIBasedCertificate's keys). No I/O.

A pattern is an exact DNS name (``www.example.com``) or ``*.domain`` for every name
strictly below that domain (``*.example.com`` matches ``a.example.com`` and
``a.b.example.com``, not ``example.com``). Anything else (``*bank.example``,
``bank.*``, ``a*b``) is refused with the reason. Names compare case-insensitively
and without a trailing dot.
"""

from __future__ import annotations

from collections.abc import Iterable

_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` is not a name pattern; None when it is one."""
    if not isinstance(pattern, str):
        return f"{pattern!r} is not a name (a string)"
    name = pattern.lower()
    name = name[:-1] if name.endswith(".") else name
    if name.startswith("*."):
        name = name[2:]
        if "*" in name:
            return f"{pattern!r}: '*' may only stand alone as the first label ('*.example.com')"
    elif "*" in name:
        if name == "*":
            return f"{pattern!r}: '*' alone would match every name; leave the list empty instead"
        return (
            f"{pattern!r}: a wildcard is a whole first label, '*.domain' for the names "
            "below domain; '*' cannot be part of a label or come later"
        )
    if not name:
        return f"{pattern!r} is not a name"
    if len(name) > 253:
        return f"{pattern[:40]!r}...: a name is at most 253 characters"
    for label in name.split("."):
        if not label:
            return f"{pattern!r}: an empty label (two dots, or a dot at the start)"
        if len(label) > 63:
            return f"{pattern!r}: a label is at most 63 characters"
        if not set(label) <= _LABEL_CHARS:
            bad = sorted(set(label) - _LABEL_CHARS)[0]
            return f"{pattern!r}: {bad!r} is not allowed in a DNS name"
    return None


def check_patterns(patterns: object) -> str | None:
    """Why ``patterns`` is not a list of name patterns (``not ...`` when it is no list
    at all); None when it is one."""
    if isinstance(patterns, str | bytes):
        return f"not the string {patterns!r} (write [{patterns!r}])"
    if not isinstance(patterns, list | tuple | set | frozenset):
        return f"not {patterns!r}"
    for p in patterns:
        error = pattern_error(p)
        if error:
            return error
    return None


def normal(name: str) -> str:
    """``name`` as names are compared: lower case, no trailing dot."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def matches(name: str | None, patterns: Iterable[str]) -> bool:
    """Whether ``name`` is matched by one of ``patterns`` (checked by
    :func:`pattern_error` when the policy was loaded)."""
    if not name:
        return False
    name = normal(name)
    for p in patterns:
        p = normal(p)
        if p.startswith("*."):
            if name.endswith(p[1:]) and len(name) > len(p) - 1:
                return True
        elif name == p:
            return True
    return False
