"""The control protocol, without I/O: one JSON object a line each way.

A request names its command and its arguments::

    {"command": "status"}
    {"command": "sessions"}
    {"command": "kill", "session": "intra/intra_http:12"}
    {"command": "reload"}
    {"command": "loglevel", "spec": "http.*:6", "seconds": 600}

The answer is ``{"ok": true, ...}`` with the command's data, or
``{"ok": false, "error": "what is wrong"}``. Unknown commands, unknown or
missing arguments and lines longer than :data:`MAX_LINE` bytes are errors;
the connection stays usable after an error, except after a line that is too long.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

#: The longest request line, in bytes.
MAX_LINE = 65536

_NUMBER = (int, float)

#: Each command's arguments: name -> (accepted types, required).
COMMANDS: Mapping[str, Mapping[str, tuple[tuple[type, ...], bool]]] = MappingProxyType(
    {
        "status": {},
        "sessions": {},
        "kill": {"session": ((str,), True)},
        "reload": {},
        "loglevel": {"spec": ((str,), True), "seconds": ((*_NUMBER, type(None)), False)},
    }
)


class ControlError(Exception):
    """A request that cannot be carried out; its text goes back to the client."""


@attrs.frozen
class Request:
    """A parsed request."""

    command: str
    args: Mapping[str, Any] = attrs.field(factory=dict)


def parse_request(line: bytes) -> Request:
    """The request in ``line`` (without its newline); :class:`ControlError` if invalid."""
    if len(line) > MAX_LINE:
        raise ControlError(f"request longer than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError("not a JSON object") from None
    if not isinstance(data, dict):
        raise ControlError("not a JSON object")
    command = data.pop("command", None)
    if not isinstance(command, str) or command not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise ControlError(f"unknown command {command!r} (commands: {known})")
    spec = COMMANDS[command]
    for name, value in data.items():
        if name not in spec:
            raise ControlError(f"{command}: unknown argument {name!r}")
        types, _required = spec[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise ControlError(f"{command}: {name} has the wrong type")
    for name, (_types, required) in spec.items():
        if required and name not in data:
            raise ControlError(f"{command}: {name} is missing")
    return Request(command, MappingProxyType(data))


def encode(answer: Mapping[str, Any]) -> bytes:
    """One answer line."""
    return json.dumps(answer, default=str, separators=(",", ":")).encode() + b"\n"


def ok(**data: Any) -> dict[str, Any]:
    """A successful answer."""
    return {"ok": True, **data}


def error(message: str) -> dict[str, Any]:
    """A refusal."""
    return {"ok": False, "error": message}
