"""Error pages: templates read once per directory, read again when the directory changes."""

from __future__ import annotations

import os

from zfw.http import errorpage


def _page(directory, status=404) -> str:
    return errorpage.render(status, "info", "i/http:1", str(directory)).decode()


def test_two_directories_keep_their_templates(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "404.html").write_text(f"{d.name} @STATUS@")
    assert _page(one) == "one 404" and _page(two) == "two 404"
    # Rewritten in place (the directory does not change): both are still cached.
    for d in (one, two):
        (d / "404.html").write_text("changed")
    assert _page(one) == "one 404" and _page(two) == "two 404"


def test_a_changed_directory_is_read_again(tmp_path):
    (tmp_path / "default.html").write_text("default @STATUS@")
    assert _page(tmp_path, 403) == "default 403"
    (tmp_path / "403.html").write_text("forbidden @INFO@")
    st = os.stat(tmp_path)
    os.utime(tmp_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later change
    assert _page(tmp_path, 403) == "forbidden info"
    assert _page(tmp_path, 500) == "default 500"


def test_a_missing_directory_gives_the_built_in_page(tmp_path):
    assert "<h1>404 Not Found</h1>" in _page(tmp_path / "nowhere")
