"""One room for TLS decisions: from a ClientHello to inspect, tunnel or reject, with
the reason. No I/O.

TlsTunnelProxy's ``allowed_names``/``denied_names``/``allow_no_sni`` and the
encryption policies' ``reject``/``bypass``/``allow_no_sni`` and
``TlsOptions.h2_only`` are all :class:`Rules`; :func:`decide` applies them in
one order: the name lists in theirs, a hello without a name, the ``only``
list, then ALPN (a client that offers protocols but not ``http/1.1`` gets
``h2_only``, so an HTTP/2-only client is tunnelled or refused, never broken
mid-way), then ``otherwise``. Names are matched by :mod:`zfw.tls.names`.
:func:`destination_mismatch` is the tunnel's ``verify_destination`` check,
given the addresses the name resolves to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zfw.tls.names import matches, normal

INSPECT, TUNNEL, REJECT = "inspect", "tunnel", "reject"
ACTIONS = (INSPECT, TUNNEL, REJECT)


class Hello(Protocol):
    """What a decision reads of a ClientHello (:class:`~zfw.tls.clienthello.ClientHello`)."""

    sni: str | None
    alpn: tuple[str, ...]


@dataclass(frozen=True)
class NameRule:
    """Names (patterns of :mod:`zfw.tls.names`) that get ``action``; ``why`` is the
    reason, with ``{name}`` for the server name."""

    patterns: tuple[str, ...]
    action: str
    why: str


@dataclass(frozen=True)
class Decision:
    """``action`` (inspect, tunnel or reject) and the reason in words."""

    action: str
    reason: str


@dataclass(frozen=True)
class Rules:
    """What decides a ClientHello.

    - ``names``: checked in order, the first that matches decides;
    - ``no_sni``: the action for a hello without a server name;
    - ``only``: when not empty, a name it does not match is refused;
    - ``h2_only``: the action for a client whose ALPN offers no ``http/1.1``
      (None: ALPN decides nothing, as in a blind tunnel);
    - ``otherwise``: the action for the rest.
    """

    names: tuple[NameRule, ...] = ()
    no_sni: str = REJECT
    only: tuple[str, ...] = ()
    h2_only: str | None = None
    otherwise: str = INSPECT


def decide(hello: Hello, rules: Rules) -> Decision:
    """The decision for ``hello`` by ``rules``."""
    sni = hello.sni
    if sni is None:
        if rules.no_sni == REJECT:
            return Decision(REJECT, "no server name (SNI)")
    else:
        for rule in rules.names:
            if matches(sni, rule.patterns):
                return Decision(rule.action, rule.why.format(name=sni))
        if rules.only and not matches(sni, rules.only):
            return Decision(REJECT, f"{sni} is not in the allowed names")
    if rules.h2_only is not None and hello.alpn and "http/1.1" not in hello.alpn:
        offered = ", ".join(hello.alpn)[:80]
        return Decision(rules.h2_only, f"the client offers {offered} (ALPN), not http/1.1")
    if sni is None:
        return Decision(rules.no_sni, "no server name (SNI), permitted")
    return Decision(rules.otherwise, "policy")


def destination_mismatch(
    sni: str, destination: str, addresses: list[str] | None = None
) -> str | None:
    """Why ``sni`` is not where the client was going (TlsTunnelProxy's
    ``verify_destination``), or None. ``destination``: a name (CONNECT through a
    parent proxy), compared with ``sni``; or an address, which must be among the
    ``addresses`` that ``sni`` resolves to (looked up by the caller)."""
    if addresses is None:
        if normal(sni) != normal(destination):
            return f"{sni} does not name the destination {destination}"
        return None
    return None if destination in addresses else f"{sni} does not resolve to {destination}"


def tunnel_rules(allowed: tuple[str, ...], denied: tuple[str, ...], allow_no_sni: bool) -> Rules:
    """TlsTunnelProxy's: ``denied`` first, then ``allowed`` (when not empty)."""
    return Rules(
        names=(NameRule(tuple(denied), REJECT, "{name} is denied"),),
        no_sni=TUNNEL if allow_no_sni else REJECT,
        only=tuple(allowed),
        otherwise=TUNNEL,
    )


def inspection_rules(
    reject: tuple[str, ...], bypass: tuple[str, ...], allow_no_sni: bool, h2_only: str
) -> Rules:
    """An encryption policy's: ``reject`` first, then ``bypass``, then ALPN."""
    return Rules(
        names=(
            NameRule(tuple(reject), REJECT, "{name} is on the reject list"),
            NameRule(tuple(bypass), TUNNEL, "{name} is on the bypass list"),
        ),
        no_sni=INSPECT if allow_no_sni else REJECT,
        h2_only=h2_only,
    )
