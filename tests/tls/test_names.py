"""Name patterns: the one grammar and the one matcher."""

from __future__ import annotations

import pytest

from zfw.tls.names import check_patterns, matches, pattern_error


@pytest.mark.parametrize(
    "pattern",
    [
        "example.com",
        "WWW.Example.COM",
        "example.com.",
        "*.example.com",
        "*.com",
        "_dmarc.x",
        "a-b.c",
    ],
)
def test_good_patterns(pattern):
    assert pattern_error(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("*bank.example", "a wildcard is a whole first label"),
        ("bank.*", "a wildcard is a whole first label"),
        ("a*b.example", "a wildcard is a whole first label"),
        ("*.*.example", "'*' may only stand alone as the first label"),
        ("*", "would match every name"),
        ("", "is not a name"),
        ("a..example", "an empty label"),
        (".example", "an empty label"),
        ("exa mple.com", "' ' is not allowed"),
        ("x" * 64 + ".example", "at most 63"),
        (5, "is not a name (a string)"),
    ],
)
def test_bad_patterns_say_why(pattern, reason):
    error = pattern_error(pattern)
    assert error is not None and reason in error


def test_a_string_is_not_a_list_of_patterns():
    assert check_patterns("*.bank.example") == (
        "not the string '*.bank.example' (write ['*.bank.example'])"
    )
    assert check_patterns(["*.bank.example", "a.example"]) is None
    assert "a wildcard" in check_patterns(("ok.example", "*bank.example"))
    assert check_patterns(None) == "not None"


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("a.example", ["a.example"], True),
        ("A.Example.", ["a.example"], True),
        ("a.example", ["A.EXAMPLE."], True),
        ("b.a.example", ["*.a.example"], True),
        ("c.b.a.example", ["*.A.example"], True),
        ("B.a.example.", ["*.a.example."], True),
        ("a.example", ["*.a.example"], False),
        ("xa.example", ["*.a.example"], False),
        ("evilbank.example", ["*.bank.example"], False),
        (".a.example", ["*.a.example"], False),
        ("a.example", [], False),
        (None, ["a.example"], False),
        ("", ["a.example"], False),
    ],
)
def test_matches(name, patterns, expected):
    assert matches(name, patterns) is expected
