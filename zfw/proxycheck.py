"""Run each service's ``config()`` once while the policy loads, so that what would
fail for every connection fails at ``zfw check`` instead.

A proxy class is configured Zorp-style, by assignments in ``config()``. Two
mistakes there used to show only at run time: ``config()`` raising (every
session refused) and an assignment to an attribute the proxy does not have
(``self.timout = 5`` sets nothing zfw reads). Both are reported here, at the
line of ``config()`` that made them. A policy keeps state of its own on names
that start with ``_`` or that its class declares. So is an option of the wrong
type or out of range (:mod:`zfw.options`), at the line that last assigned it.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from zfw.addr import SockAddrInet
from zfw.engine.decision import Decision
from zfw.engine.session import Session
from zfw.errors import PolicyError
from zfw.log import Log, LogSpec
from zfw.model import Listener, Service
from zfw.options import problems

#: Addresses of the dry session (documentation ranges).
_DRY_CLIENT = ("192.0.2.1", 40000)
_DRY_SERVER = ("198.51.100.1", 80)


class _NullOut:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def dry_session(service: Service) -> Session:
    """A session that no connection belongs to, for running ``config()`` once."""
    listener = Listener(SockAddrInet("", 1), service.name)
    return Session(
        f"check/{service.name}:0",
        service,
        listener,
        _DRY_CLIENT,
        _DRY_SERVER,
        Decision(True, "check", target=_DRY_SERVER),
        Log(LogSpec(default=-1), _NullOut()),
        reactor=None,
        on_close=lambda _s: None,
    )


def check_proxy_config(service: Service) -> None:
    """Configure a proxy of ``service`` once; raise :class:`PolicyError` (located at the
    offending line) for an unknown attribute or an option of the wrong type or out of
    range (:mod:`zfw.options`). Exceptions from ``config()`` propagate."""
    cls = service.proxy_class
    unknown: list[tuple[str, str, int]] = []
    assigned: dict[str, tuple[str, int]] = {}
    state = {"checking": False}
    known = set(dir(cls))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if state["checking"]:
            frame = sys._getframe(1)
            assigned.pop(name, None)  # so that the dict's order is that of the last assignment
            assigned[name] = (frame.f_code.co_filename, frame.f_lineno)
            if name not in known and not name.startswith("_"):
                unknown.append((name, frame.f_code.co_filename, frame.f_lineno))
        object.__setattr__(self, name, value)

    dry = type(cls.__name__, (cls,), {"__setattr__": __setattr__, "__module__": cls.__module__})
    proxy = dry(dry_session(service))
    proxy.apply_presets()
    known.update(vars(proxy))
    state["checking"] = True
    proxy.config()
    if unknown:
        name, filename, lineno = unknown[0]
        declared = list(cls.__options__)
        close = difflib.get_close_matches(name, declared, 1) or difflib.get_close_matches(
            name, [k for k in known if not k.startswith("_")], 1
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PolicyError(
            f"service {service.name!r}: {cls.__name__} has no attribute {name!r}{hint}; "
            "a name of the policy's own starts with '_' or is declared on the class",
            filename,
            lineno,
        )
    wrong = problems(proxy)
    if wrong:
        names, message = wrong[0]
        code = cls.config.__code__
        order = list(assigned)
        made = sorted((n for n in names if n in assigned), key=order.index)
        filename, lineno = assigned[made[-1]] if made else (code.co_filename, code.co_firstlineno)
        raise PolicyError(f"service {service.name!r}: {message}", filename, lineno)
