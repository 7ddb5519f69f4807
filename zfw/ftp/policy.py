"""The FTP proxy's policy tables, Zorp style, evaluated without I/O.

``FtpProxy.config()`` fills two dictionaries:

- ``self.request[VERB]``: what to do with a command (``"*"``: any other);
- ``self.response[(VERB, CODE)]``: what to do with a final reply, ``"*"``
  for either part.

A value is an action constant or a tuple of the action and its arguments::

    self.request["STOR"] = (FTP_REQ_REJECT, 550, "Uploads are not permitted.")
    self.request["USER"] = (FTP_REQ_POLICY, self.check_user)
    self.response[("RETR", "*")] = FTP_RSP_ACCEPT

A POLICY function gets the command (or the command and the reply) and
returns a value of the same kind. Lookups and actions are
:mod:`zfw.policytable`'s, shared by every proxy; this module adds reply codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zfw import policytable
from zfw.policytable import PolicyValueError as PolicyValueError  # re-exported

FTP_REQ_ACCEPT = policytable.ACCEPT
FTP_REQ_REJECT = policytable.REJECT
FTP_REQ_ABORT = policytable.ABORT
FTP_REQ_POLICY = policytable.POLICY

FTP_RSP_ACCEPT = FTP_REQ_ACCEPT
FTP_RSP_REJECT = FTP_REQ_REJECT
FTP_RSP_ABORT = FTP_REQ_ABORT
FTP_RSP_POLICY = FTP_REQ_POLICY

#: ``data_mode``: the server side does as the client did, or always passive/active.
FTP_DATA_KEEP = 0
FTP_DATA_PASSIVE = 1
FTP_DATA_ACTIVE = 2

#: The commands of RFC 959, 2389, 2428, 2640, 3659 (and the X* aliases of RFC 775)
#: that the proxy understands; any other is "not recognized".
KNOWN_COMMANDS = frozenset(
    {
        *("USER", "PASS", "ACCT", "CWD", "CDUP", "SMNT", "QUIT", "REIN", "PORT", "PASV"),
        *("TYPE", "STRU", "MODE", "RETR", "STOR", "STOU", "APPE", "ALLO", "REST", "RNFR"),
        *("RNTO", "ABOR", "DELE", "RMD", "MKD", "PWD", "LIST", "NLST", "SITE", "SYST"),
        *("STAT", "HELP", "NOOP", "FEAT", "OPTS", "EPRT", "EPSV", "LANG", "MDTM", "SIZE"),
        *("MLST", "MLSD", "XPWD", "XCWD", "XCUP", "XMKD", "XRMD", "AUTH", "PBSZ", "PROT"),
        "CCC",
    }
)
#: Commands that change the server's files: rejected by the read-only presets.
WRITE_COMMANDS = frozenset(
    {"STOR", "STOU", "APPE", "DELE", "RMD", "XRMD", "MKD", "XMKD", "RNFR", "RNTO", "SITE"}
)
#: TLS on the control channel would hide the data channel addresses from the proxy.
TLS_COMMANDS = frozenset({"AUTH", "PBSZ", "PROT", "CCC"})
#: FEAT lines (by their first word) passed to the client by default.
DEFAULT_FEATURES = frozenset(
    {"MDTM", "SIZE", "REST", "EPSV", "EPRT", "MLST", "UTF8", "LANG", "TVFS"}
)
#: Users the anonymous-only presets let log in.
ANONYMOUS_USERS = frozenset({"anonymous", "ftp"})


@attrs.frozen
class FtpVerdict:
    """What to do with a command or reply; ``code``/``text`` form the reply of a reject."""

    action: str
    code: int | None = None
    text: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the command or reply passes."""
        return self.action == "accept"


ACCEPT = FtpVerdict("accept")


def _response_key(key: Any) -> str | None:
    if isinstance(key, tuple) and len(key) == 2:
        if policytable.verb_key(key[0]) is None and policytable.code_key(key[1]):
            return None
        if isinstance(key[0], str) and policytable.verb_key(key[0]):
            return policytable.verb_key(key[0])
    elif isinstance(key, int | str) and key != "*" and policytable.code_key(key):
        return f"write ('*', {key!r}) for any command"
    return ""


def _reply_text(text: str) -> str | None:
    return "a reply text cannot hold CR, LF or NUL" if any(c in text for c in "\r\n\0") else None


_REJECT = policytable.Action("reject", policytable.code_and_text("reply code", _reply_text))

#: ``self.request[VERB]``; a POLICY function gets the command.
REQUEST = policytable.TableSpec(
    "request", policytable.verb_key, "a command (in upper case) or '*'",
    {
        FTP_REQ_ACCEPT: policytable.Action("accept"),
        FTP_REQ_REJECT: _REJECT,
        FTP_REQ_ABORT: policytable.Action("abort", policytable.text_only),
        FTP_REQ_POLICY: policytable.Action("policy"),
    },
    "FTP_REQ_", "an FTP_REQ_* action", ("command",),
)  # fmt: skip
#: ``self.response[(VERB, CODE)]``; a POLICY function gets the command and the reply.
RESPONSE = policytable.TableSpec(
    "response", _response_key, "(command or '*', reply code or '*')",
    {
        FTP_RSP_ACCEPT: policytable.Action("accept"),
        FTP_RSP_REJECT: _REJECT,
        FTP_RSP_ABORT: policytable.Action("abort"),
        FTP_RSP_POLICY: policytable.Action("policy"),
    },
    "FTP_RSP_", "an FTP_RSP_* action", ("command", "reply"),
)  # fmt: skip
#: Every table of FtpProxy, by the attribute that holds it.
TABLES = (REQUEST, RESPONSE)


def verdict(
    value: Any,
    call: Callable[[Callable[..., Any]], Any],
    what: str,
    spec: policytable.TableSpec = REQUEST,
) -> FtpVerdict:
    """The :class:`FtpVerdict` for a value of the ``spec`` table; ``call(fn)`` runs a
    POLICY function."""
    if isinstance(value, FtpVerdict):
        return value
    action, args = policytable.decide(spec, value, call, what)
    code: int | None = None
    text: str | None = None
    for a in args:
        if isinstance(a, int):
            code = a
        else:
            text = a
    return FtpVerdict(action, code, text)


def request_entry(table: Mapping[str, Any], verb: str) -> Any:
    """The table value for ``verb``: its own, else ``"*"``, else None."""
    return policytable.lookup(table, verb)


def response_entry(table: Mapping[tuple[Any, Any], Any], verb: str, code: int) -> Any:
    """The table value for a reply: (verb, code), (verb, *), (*, code), (*, *); accept
    when none is listed."""
    value = policytable.lookup_pair(table, verb, code)
    return FTP_RSP_ACCEPT if value is None else value


#: Commands a firewall cannot judge (``SITE EXEC``, ``SITE CHMOD``: whatever the server
#: makes of them): refused unless a policy accepts them.
OPAQUE_COMMANDS = frozenset({"SITE"})


def _rest_offset(cmd: Any) -> Any:
    """``REST`` takes a byte offset (RFC 3659): digits only."""
    arg = (cmd.arg or "").strip()
    if arg.isdigit() and arg.isascii() and len(arg) <= 19:
        return FTP_REQ_ACCEPT
    return (FTP_REQ_REJECT, 501, "REST takes a byte offset.")


def default_requests() -> dict[str, Any]:
    """The request table every FtpProxy starts with: known commands pass, except TLS and
    what a firewall cannot judge (SITE); REST only with a numeric offset."""
    table: dict[str, Any] = {verb: FTP_REQ_ACCEPT for verb in KNOWN_COMMANDS}
    for verb in TLS_COMMANDS:
        table[verb] = (FTP_REQ_REJECT, 534, "TLS is not available through this firewall.")
    for verb in OPAQUE_COMMANDS:
        table[verb] = (FTP_REQ_REJECT, 502, f"{verb} is not permitted through this firewall.")
    table["REST"] = (FTP_REQ_POLICY, _rest_offset)
    table["*"] = (FTP_REQ_REJECT, 500, "Command not recognized.")
    return table


def filter_features(lines: tuple[str, ...], permitted: frozenset[str]) -> tuple[str, ...]:
    """A FEAT reply's lines with only the ``permitted`` features left."""
    if len(lines) < 2:
        return lines
    kept = [ln for ln in lines[1:-1] if ln.strip().split(" ", 1)[0].upper() in permitted]
    return (lines[0], *kept, lines[-1])
