"""The files a policy names: relative paths resolved against the policy file's
directory, each recorded with the policy line that named it, so that
``zfw check --as-user USER`` (and a start as that user) can tell who cannot read them.

While the loader runs it sets the :class:`NamedFiles` of the load in progress
(a context variable, as the loader's own builder is); certificate, CA and
verifier constructors pass their paths through :func:`policy_file`.
"""

from __future__ import annotations

import contextvars
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs

from zfw.errors import ZfwError
from zfw.zones import Location

if TYPE_CHECKING:
    from zfw.model import Policy

#: What zfw does with a named path: read a file, list a directory, write into one.
READ, LIST, WRITE = "read", "list", "write"


@attrs.frozen
class NamedFile:
    """A path a policy names, what zfw does with it, and the line that named it."""

    path: str
    need: str = READ
    location: Location | None = attrs.field(default=None, eq=False)


@attrs.define
class NamedFiles:
    """The paths one load has named so far, and where relative ones start from."""

    base: str
    locate: Callable[[], Location]
    named: list[NamedFile] = attrs.Factory(list)


_current: contextvars.ContextVar[NamedFiles | None] = contextvars.ContextVar(
    "zfw_named_files", default=None
)


@contextmanager
def recording(files: NamedFiles) -> Iterator[NamedFiles]:
    """Resolve and record the paths named while the body runs (one policy load)."""
    token = _current.set(files)
    try:
        yield files
    finally:
        _current.reset(token)


def policy_file(path: str, need: str = READ) -> str:
    """``path`` resolved against the directory of the policy being loaded (as it is
    outside a load), and recorded as named by the policy line running."""
    files = _current.get()
    if files is None or not isinstance(path, str):
        return path
    path = os.path.normpath(os.path.join(files.base, path))
    files.named.append(NamedFile(path, need, files.locate()))
    return path


@attrs.frozen
class User:
    """Who a file must be readable by: a uid and all its groups."""

    name: str
    uid: int
    gids: frozenset[int]
    #: This process itself: the kernel answers (ACLs, CAP_DAC_* count), not the mode bits.
    process: bool = False

    @classmethod
    def named(cls, name: str) -> User:
        """The user ``name`` (or a number) from the password and group databases."""
        try:
            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        except KeyError:
            raise ZfwError(f"no user {name!r}") from None
        gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
        return cls(pw.pw_name, pw.pw_uid, frozenset(gids))

    @classmethod
    def current(cls) -> User:
        """The user this process runs as."""
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}), process=True)

    def may(self, path: str, st: os.stat_result, bits: int) -> bool:
        """Whether this user may ``bits`` (an ``rwx`` mask, 0-7) ``path`` (whose stat is
        ``st``): by its mode bits, or for this process by asking the kernel."""
        if self.process:
            mode = (bits & 4 and os.R_OK) | (bits & 2 and os.W_OK) | (bits & 1 and os.X_OK)
            return os.access(path, mode, effective_ids=True)
        if self.uid == 0:  # (execute still needs one x bit, but no named path needs it)
            return True
        if st.st_uid == self.uid:
            shift = 6
        elif st.st_gid in self.gids:
            shift = 3
        else:
            shift = 0
        return (st.st_mode >> shift) & bits == bits


def _describe(path: str, st: os.stat_result) -> str:
    def name(db: Callable[[int], tuple[str, ...]], num: int) -> str:
        try:
            return db(num)[0]
        except KeyError:
            return str(num)

    owner = f"{name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)}"
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}"


def denied(path: str, need: str, user: User) -> str | None:
    """Why ``user`` cannot ``need`` ``path`` (it or a directory above it), or None."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(1, len(parts)):
        above = os.sep.join(parts[:i]) or os.sep
        st = os.stat(above)
        if not user.may(above, st, 1):
            return f"({above}: {_describe(above, st)})"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if need == WRITE:  # made at start: its directory must be writable
            parent = os.path.dirname(os.path.abspath(path))
            pst = os.stat(parent)
            return None if user.may(parent, pst, 3) else f"({parent}: {_describe(parent, pst)})"
        return "(no such file)"
    bits = {READ: 4, LIST: 5, WRITE: 7}[need]
    if stat.S_ISDIR(st.st_mode) != (need != READ):
        return None  # the loader says what is wrong with a directory named as a file
    return None if user.may(path, st, bits) else f"({_describe(path, st)})"


def unreadable(policy: Policy, user: User) -> list[str]:
    """One ``file:line: user U cannot read PATH (mode, owner)`` line per file of
    ``policy`` (its own files and those it names) that ``user`` cannot use as zfw needs to."""
    own = [NamedFile(path, READ, Location(path, None)) for path in policy.files]
    seen: set[tuple[str, str]] = set()
    lines = []
    for f in (*own, *policy.named_files):
        if (f.path, f.need) in seen:
            continue
        seen.add((f.path, f.need))
        try:
            why = denied(f.path, f.need, user)
        except OSError as e:
            why = f"({e.strerror})"
        if why is not None:
            verb = {READ: "read", LIST: "read the directory", WRITE: "write into"}[f.need]
            where = f"{f.location}: " if f.location else ""
            lines.append(f"{where}user {user.name} cannot {verb} {f.path} {why}")
    return lines
