"""zfw.tls.openssl_compat: the checked fast path through pyOpenSSL's binding, and the
public API it falls back to."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from zfw.tls import openssl_compat
from zfw.tls.openssl_compat import FastIO, PublicIO


@pytest.fixture(autouse=True)
def fresh():
    openssl_compat.use(None)
    yield
    openssl_compat.use(None)


def test_the_internals_hold_on_this_pyopenssl():
    assert openssl_compat.check() == []
    assert openssl_compat.io().name == "fast"
    assert openssl_compat.status() == "pyOpenSSL internals checked: the TLS data path is fast"


def test_the_switch_chooses_the_public_api(monkeypatch):
    monkeypatch.setenv(openssl_compat.SWITCH, "public")
    assert openssl_compat.io().name == "public"
    assert "ZFW_OPENSSL_INTERNALS=public" in openssl_compat.status()


def test_a_missing_binding_or_attribute_is_found(monkeypatch):
    monkeypatch.setattr(openssl_compat, "_LIB_NAMES", (*openssl_compat._LIB_NAMES, "SSL_gone"))
    assert openssl_compat.check() == ["OpenSSL.SSL._lib.SSL_gone is gone"]
    monkeypatch.undo()
    monkeypatch.setattr(openssl_compat, "_CONNECTION_NAMES", ("_ssl", "_vanished"))
    assert openssl_compat.check() == ["SSL.Connection has no _vanished"]
    assert openssl_compat.io().name == "public"  # and zfw takes the public API
    assert "_vanished" in openssl_compat.status()


def test_changed_behaviour_is_found(monkeypatch):
    monkeypatch.setattr(FastIO, "drain", lambda self, conn: [])  # loses every record
    assert openssl_compat.check() != []
    assert openssl_compat.io().name == "public"


@pytest.mark.parametrize("io", [FastIO(), PublicIO()], ids=["fast", "public"])
def test_both_ways_agree_on_records_errors_and_close_notify(io):
    client, server = openssl_compat._pair()
    openssl_compat._handshake(client, server, io)
    data = memoryview(b"x" * 100_000)
    sizes = []
    while data:
        taken = io.encrypt(client, data[: openssl_compat.CHUNK])
        sizes.append(taken)
        data = data[taken:]
        io.feed(server, io.drain(client))
    assert max(sizes) <= openssl_compat.RECORD  # one record at a time (partial writes)
    pieces, eof = io.read(server)
    assert b"".join(pieces) == b"x" * 100_000 and not eof
    assert io.read(server) == ([], False) and io.drain(server) == b""
    io.feed(server, b"\x17\x03\x03\x00\x05hello")  # a record that does not decrypt
    with pytest.raises(SSL.Error):
        io.read(server)
