"""Error responses the HTTP proxy sends itself, from templates.

A template directory holds ``<status>.html`` files and a ``default.html``;
``@STATUS@``, ``@REASON@``, ``@INFO@`` and ``@SESSION@`` are replaced with
HTML-escaped values. Templates are read once and read again when the
directory changes (a file added, removed or replaced by rename).
"""

from __future__ import annotations

import html
from http import HTTPStatus
from pathlib import Path

DEFAULT_TEMPLATE = """<!DOCTYPE html>
<html><head><title>@STATUS@ @REASON@</title></head>
<body><h1>@STATUS@ @REASON@</h1>
<p>@INFO@</p>
<hr><address>zfw, session @SESSION@</address></body></html>
"""

#: Per template directory: its mtime when read, and its templates. One entry per
#: directory a policy names, so services with different directories do not evict
#: each other (and read their files again on every error).
_cache: dict[str, tuple[int, dict[str, str]]] = {}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _templates(directory: str) -> dict[str, str]:
    try:
        mtime = Path(directory).stat().st_mtime_ns
    except OSError:
        return {}
    cached = _cache.get(directory)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    found = {}
    for path in Path(directory).glob("*.html"):
        found[path.stem] = path.read_text(encoding="utf-8", errors="replace")
    _cache[directory] = (mtime, found)
    return found


def render(status: int, info: str, session: str, directory: str | None = None) -> bytes:
    """The body of an error page."""
    template = DEFAULT_TEMPLATE
    if directory is not None:
        found = _templates(directory)
        template = found.get(str(status)) or found.get("default") or DEFAULT_TEMPLATE
    values = {
        "@STATUS@": str(status),
        "@REASON@": reason_phrase(status),
        "@INFO@": info,
        "@SESSION@": session,
    }
    for key, value in values.items():
        template = template.replace(key, html.escape(value))
    return template.encode("utf-8")


def response(
    status: int,
    info: str,
    session: str,
    directory: str | None = None,
    silent: bool = False,
    close: bool = True,
) -> bytes:
    """A complete error response; ``silent`` leaves out the page (no fingerprint)."""
    body = b"" if silent else render(status, info, session, directory)
    head = [
        f"HTTP/1.1 {status} {reason_phrase(status)}",
        "Content-Type: text/html; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
    ]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
