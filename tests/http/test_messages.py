"""What the HTTP messages module gives the parser and the proxy."""

from __future__ import annotations

from zfw.http.messages import tokens


def test_tokens_of_connection_values():
    assert tokens(None) == frozenset() == tokens([])
    assert tokens([b"Keep-Alive"]) == {b"keep-alive"}
    assert tokens([b"close, X-Hop", b" Upgrade ,,"]) == {b"close", b"x-hop", b"upgrade"}
