"""The option tables of the docs, generated from the declarations (:mod:`zfw.options`).

A table sits between marker comments that name a class of ``zfw.policy`` (or, for
what the policy declares with a function, of ``zfw.model``: ``InstanceOptions``) and
a group of its options, when not the main one::

    <!-- options: HttpProxy inband -->
    ...
    <!-- /options -->

``python -m zfw.optiondocs docs/policy.md docs/tls.md`` rewrites what lies between
them; ``--check`` only says whether that would change anything (exit status 1).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from zfw import model, policy
from zfw.options import declared

_TABLE = re.compile(r"(<!-- options: (\w+)(?: (\w+))? -->\n)(.*?)(<!-- /options -->)", re.S)


def table(class_name: str, group: str = "") -> str:
    """The Markdown table of ``class_name``'s options of ``group``."""
    cls = getattr(policy, class_name, None)
    if not isinstance(cls, type):
        cls = getattr(model, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{class_name} is not a class of zfw.policy or zfw.model")
    rows = ["| option | value | default | what |", "|---|---|---|---|"]
    for opt in declared(cls).values():
        if opt.group == group:
            what = opt.kind.what.replace("|", "\\|")
            rows.append(f"| `{opt.name}` | {what} | {opt.shown_default()} | {opt.doc} |")
    if len(rows) == 2:
        raise ValueError(f"{class_name} declares no option of group {group!r}")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    """``text`` with every marked table generated anew."""
    return _TABLE.sub(
        lambda m: m[1] + table(m[2], m[3] or "") + m[5],
        text,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or with ``--check``, compare) the tables of the files named."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    stale = []
    for name in (a for a in args if a != "--check"):
        path = Path(name)
        old = path.read_text()
        new = render(old)
        if new != old:
            stale.append(name)
            if not check:
                path.write_text(new)
    if check and stale:
        print(f"option tables out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
