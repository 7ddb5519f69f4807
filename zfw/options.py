"""Declared, typed options: one declaration per option of a proxy class, encryption
policy, certificate, verifier or router (name, kind, range or choices, default, one
line of documentation). No I/O, no Twisted.

What a declaration is used for: checking ``config()`` assignments (at ``zfw check``,
start and reload by :mod:`zfw.proxycheck`, and for every session by
:meth:`zfw.proxy.base.Proxy.configure`), checking constructor arguments, the
did-you-mean of a mistyped name, and the option tables of ``docs/policy.md``
(``python -m zfw.optiondocs docs/policy.md docs/tls.md``).

Three ways to declare:

- a proxy class: ``timeout = option(seconds(), 600.0, "idle seconds")`` in the class
  body; :class:`Declared` collects them into ``__options__`` and leaves the plain
  default as the class attribute, so reading an option costs nothing;
- a class with an ``__init__``: the :func:`arguments` decorator, defaults from the
  signature;
- an attrs class: :func:`field` in place of ``attrs.field``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from zfw.errors import PolicyError
from zfw.tls.names import check_patterns

#: The default of a required argument.
REQUIRED: Any = attrs.NOTHING


class OptionError(PolicyError):
    """An option has a value of the wrong type or out of range. ``where``: the
    ``file:line`` to blame at run time (set by :meth:`Proxy.configure`)."""

    where: str | None = None


@attrs.frozen
class Kind:
    """What values an option takes: ``what`` describes them (in errors and the
    docs); ``test(value)`` is True, False, or the reason a value is wrong."""

    what: str
    test: Callable[[Any], bool | str]
    show: Callable[[Any], str] | None = None
    #: A type whose every instance is good (checked by its type alone, per session).
    quick: type | None = None

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is good, else ``must be ..., not ...``."""
        result = self.test(value)
        if result is True:
            return None
        if result is False:
            text = repr(value)
            return f"must be {self.what}, not {text if len(text) <= 60 else text[:57] + '...'}"
        sep = ", " if result.startswith("not ") else ": "
        return f"must be {self.what}{sep}{result}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f", at least {low:g}"
    if high is not None:
        return f", at most {high:g}"
    return ""


def _within(v: Any, low: float | None, high: float | None) -> bool:
    return (low is None or v >= low) and (high is None or v <= high)


def optional(kind: Kind) -> Kind:
    """``kind`` or None."""
    return Kind(f"{kind.what} or None", lambda v: v is None or kind.test(v), kind.show)


def boolean() -> Kind:
    """True or False; anything else (``"false"``, ``1``) is refused."""
    return Kind("True or False", lambda v: isinstance(v, bool), quick=bool)


def integer(low: int | None = None, high: int | None = None) -> Kind:
    """A whole number (not a bool) within ``low``-``high``."""
    return Kind(
        "an integer" + _range_text(low, high), lambda v: _is_int(v) and _within(v, low, high)
    )


def number(low: float | None = None, high: float | None = None) -> Kind:
    """An int or float (not a bool) within ``low``-``high``."""
    return Kind(
        "a number" + _range_text(low, high), lambda v: _is_number(v) and _within(v, low, high)
    )


def seconds(zero: bool = False) -> Kind:
    """A positive number of seconds; with ``zero``, 0 too (no limit)."""
    what = "a number of seconds" + ("" if zero else ", more than 0")
    return Kind(what, lambda v: _is_number(v) and (v > 0 or (zero and v == 0)))


def size(low: int = 0) -> Kind:
    """A number of bytes (an integer, not ``"10M"``)."""
    return Kind(
        "a number of bytes" + _range_text(low or None, None), lambda v: _is_int(v) and v >= low
    )


def port(low: int = 1) -> Kind:
    """A TCP port from ``low`` to 65535."""
    return Kind(f"a port from {low} to 65535", lambda v: _is_int(v) and low <= v <= 65535)


def choice(values: Iterable[Any] | Mapping[Any, str]) -> Kind:
    """One of ``values`` (a mapping: value to the name a policy writes)."""
    names = dict(values) if isinstance(values, Mapping) else {v: _quoted(v) for v in values}
    listed = list(names.values())
    what = (
        "one of " + ", ".join(listed[:-1]) + f" or {listed[-1]}" if len(listed) > 1 else listed[0]
    )
    return Kind(
        what,
        lambda v: not isinstance(v, bool) and _hashable(v) and v in names,
        lambda v: f"`{names.get(v, repr(v))}`",
    )


def _quoted(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _items(v: Any, item: Callable[[Any], bool | str], name: str) -> bool | str:
    if isinstance(v, str | bytes):
        return f"not the string {v!r} (write [{v!r}])"
    if not isinstance(v, list | tuple | set | frozenset):
        return False
    for x in v:
        result = item(x)
        if result is not True:
            return result if isinstance(result, str) else f"{x!r} is not {name}"
    return True


def strings() -> Kind:
    """A list (tuple, set) of strings; a bare string is refused."""
    return Kind(
        "a list of strings",
        lambda v: _items(v, lambda x: isinstance(x, str), "a string"),
        _show_list,
    )


def ports(low: int = 1) -> Kind:
    """A list of ports."""
    p = port(low)
    return Kind(f"a list of ports from {low} to 65535", lambda v: _items(v, p.test, "a port"))


def names() -> Kind:
    """A list of server name patterns (:mod:`zfw.tls.names`)."""
    return Kind(
        "a list of names or '*.domain' patterns", lambda v: check_patterns(v) or True, _show_list
    )


def text() -> Kind:
    """A non-empty string."""
    return Kind("a non-empty string", lambda v: isinstance(v, str) and bool(v))


def host_port() -> Kind:
    """A ``(host, port)`` pair."""
    return Kind(
        "a (host, port) pair",
        lambda v: (
            isinstance(v, tuple)
            and len(v) == 2
            and isinstance(v[0], str)
            and bool(v[0])
            and port().test(v[1]) is True
        ),
    )


def function() -> Kind:
    """Something callable."""
    return Kind("a function", callable)


def subclass_of(base: type) -> Kind:
    """A class derived from ``base``."""
    return Kind(
        f"a {base.__name__} class",
        lambda v: isinstance(v, type) and issubclass(v, base),
        lambda v: f"`{v.__name__}`",
    )


def instance_of(*types: type, what: str = "") -> Kind:
    """An instance of one of ``types`` (``what``: how to name them)."""
    listed = [t.__name__ for t in types]
    if not what:
        what = ", ".join(listed[:-1]) + f" or {listed[-1]}" if len(listed) > 1 else listed[0]
    return Kind(what, lambda v: isinstance(v, types))


def table() -> Kind:
    """A policy table (a dict); its keys and actions are checked by :func:`check_table`."""
    return Kind("a table (dict)", lambda v: isinstance(v, Mapping) and check_table(v), quick=dict)


def check_table(value: Mapping[Any, Any]) -> bool | str:
    """The hook point for the shape of a policy table's keys and actions: True, or
    what is wrong. Here only that it is a mapping; the shapes of each proxy's tables
    are :mod:`zfw.policytable`'s (checked by :mod:`zfw.proxycheck` at load time)."""
    return True


def _show_list(v: Any) -> str:
    if isinstance(v, set | frozenset):
        return " ".join(sorted(v))
    return repr(tuple(v)) if v else "()"


def show(value: Any) -> str:
    """A default as the docs show it."""
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, type):
        return f"`{value.__name__}`"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return repr(value)
    if isinstance(value, MappingProxyType):
        return "the preset's"
    return str(value)


@attrs.frozen
class Option:
    """One declared option. ``owner``: the class that declares it (named in errors);
    ``group``: which of the owner's tables in the docs lists it."""

    kind: Kind
    default: Any
    doc: str
    group: str = ""
    name: str = ""
    owner: str = ""
    #: Values found good already (a few), so that a session's check is a lookup.
    good: set[Any] = attrs.field(factory=set, eq=False, repr=False)

    def problem(self, value: Any) -> str | None:
        """``Owner.name must be ...`` when ``value`` is wrong, else None."""
        wrong = self.kind.problem(value)
        return f"{self.owner}.{self.name} {wrong}" if wrong else None

    def shown_default(self) -> str:
        """The default as the docs show it."""
        if self.default is REQUIRED:
            return "(required)"
        if self.kind.show is not None and self.default is not None:
            return self.kind.show(self.default)
        return show(self.default)


def option(kind: Kind, default: Any, doc: str, group: str = "") -> Any:
    """Declare an option in a :class:`Declared` class body (the class attribute
    becomes ``default``)."""
    return Option(kind, default, doc, group)


def argument(kind: Kind, doc: str) -> Option:
    """Declare a constructor argument for :func:`arguments` (its default is the
    signature's)."""
    return Option(kind, REQUIRED, doc)


Check = Callable[[Any], "tuple[tuple[str, ...], str] | None"]


def ordered(low: str, high: str) -> Check:
    """A check that option ``low`` is not above option ``high``."""

    def check(obj: Any) -> tuple[tuple[str, ...], str] | None:
        a, b = getattr(obj, low), getattr(obj, high)
        if _is_number(a) and _is_number(b) and a > b:
            return (low, high), f"{low} ({a}) is above {high} ({b})"
        return None

    return check


def not_both(first: str, second: str, why: str) -> Check:
    """A check that options ``first`` and ``second`` are not both set (not None)."""

    def check(obj: Any) -> tuple[tuple[str, ...], str] | None:
        if getattr(obj, first) is not None and getattr(obj, second) is not None:
            return (first, second), f"{first} and {second} cannot both be set: {why}"
        return None

    return check


class Declared:
    """Collects the options a class body declares with :func:`option` (and those it
    inherits) into ``__options__``; checks a subclass's class-level values of them."""

    __options__: ClassVar[Mapping[str, Option]] = MappingProxyType({})
    #: Checks across options (:func:`ordered`, :func:`not_both`).
    __option_checks__: ClassVar[tuple[Check, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Option] = {}
        for base in reversed(cls.__mro__[1:]):
            found.update(vars(base).get("__options__", {}))
        for name, value in list(vars(cls).items()):
            if isinstance(value, Option):
                opt = attrs.evolve(value, name=name, owner=cls.__name__)
                wrong = opt.problem(opt.default)
                if wrong:
                    raise TypeError(f"the default of {wrong}")
                found[name] = opt
                setattr(cls, name, opt.default)
            elif name in found:
                wrong = found[name].problem(value)
                if wrong:
                    raise OptionError(f"{cls.__name__}: {wrong}")
        cls.__options__ = MappingProxyType(found)


def check_instance(obj: Declared) -> None:
    """Raise :class:`OptionError` for the first option ``obj`` itself holds (set by
    ``__init__``, a preset or ``config()``) with a wrong value; cheap enough for every
    session (class-level values were checked when the class was made)."""
    declared = obj.__options__
    for name, value in vars(obj).items():
        opt = declared.get(name)
        if opt is None or value is opt.default or type(value) is opt.kind.quick:
            continue
        key = (type(value), value)
        try:
            if key in opt.good:
                continue
        except TypeError:  # unhashable: checked every time
            pass
        wrong = opt.problem(value)
        if wrong:
            raise OptionError(wrong)
        if len(opt.good) < 16 and type(value) in (int, float, str, tuple, frozenset):
            opt.good.add(key)
    for check in obj.__option_checks__:
        found = check(obj)
        if found:
            raise OptionError(f"{type(obj).__name__}: {found[1]}")


def problems(obj: Declared) -> list[tuple[tuple[str, ...], str]]:
    """Every wrong option of ``obj`` (class and instance values): the names to blame
    and what is wrong."""
    out: list[tuple[tuple[str, ...], str]] = []
    for name, opt in obj.__options__.items():
        wrong = opt.problem(getattr(obj, name))
        if wrong:
            out.append(((name,), wrong))
    for check in obj.__option_checks__:
        found = check(obj)
        if found:
            out.append((found[0], f"{type(obj).__name__}: {found[1]}"))
    return out


# --- constructor arguments ----------------------------------------------------------------


def arguments(**declared: Option) -> Callable[[type], type]:
    """Class decorator: check ``__init__``'s arguments against ``declared`` (each an
    :func:`argument`; the defaults are the signature's)."""

    def decorate(cls: type) -> type:
        init = cls.__init__  # type: ignore[misc]
        sig = inspect.signature(init)
        params = [p for p in list(sig.parameters)[1:]]
        if set(params) != set(declared):
            raise TypeError(f"{cls.__name__}: arguments {params} declared as {list(declared)}")
        opts = {}
        for name in params:
            default = sig.parameters[name].default
            opts[name] = attrs.evolve(
                declared[name],
                default=REQUIRED if default is inspect.Parameter.empty else default,
                name=name,
                owner=cls.__name__,
            )

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError as e:
                raise PolicyError(f"{cls.__name__}: {e}") from None
            for name, value in list(bound.arguments.items())[1:]:
                wrong = opts[name].kind.problem(value)
                if wrong:
                    raise OptionError(f"{cls.__name__}: {name} {wrong}")
            init(self, *args, **kwargs)

        cls.__init__ = __init__  # type: ignore[misc]
        cls.__options__ = MappingProxyType(opts)  # type: ignore[attr-defined]
        return cls

    return decorate


def field(kind: Kind, default: Any, doc: str) -> Any:
    """An attrs field checked against ``kind`` (``default`` may be REQUIRED)."""
    return attrs.field(
        default=default,
        validator=_validator(kind),
        metadata={"zfw_option": Option(kind, default, doc)},
    )


def _validator(kind: Kind) -> Callable[[Any, Any, Any], None]:
    def validate(inst: Any, attr: Any, value: Any) -> None:
        wrong = kind.problem(value)
        if wrong:
            raise OptionError(f"{type(inst).__name__}: {attr.name} {wrong}")

    return validate


def declared(cls: type) -> Mapping[str, Option]:
    """The options ``cls`` declares, in whichever of the three ways."""
    if attrs.has(cls):
        return {
            f.name: attrs.evolve(f.metadata["zfw_option"], name=f.name, owner=cls.__name__)
            for f in attrs.fields(cls)
            if "zfw_option" in f.metadata
        }
    return getattr(cls, "__options__", {})
