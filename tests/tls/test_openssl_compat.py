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
    monkeypatch.setattr(FastIO, "drain", lambda self, conn: b"")  # the handshake never ends
    assert openssl_compat.check() != []
    assert openssl_compat.io().name == "public"


def records(ciphertext: bytes) -> list[int]:
    """The lengths of the TLS records in ``ciphertext``."""
    sizes = []
    while ciphertext:
        size = int.from_bytes(ciphertext[3:5], "big")
        sizes.append(size)
        ciphertext = ciphertext[5 + size :]
    return sizes


def bound(io):
    """A client and a server after their handshake, and the data path of each."""
    client, server = openssl_compat._pair()
    openssl_compat._handshake(client, server, io)
    return client, server, io.bind(client), io.bind(server)


@pytest.mark.parametrize("io", [FastIO(), PublicIO()], ids=["fast", "public"])
@pytest.mark.parametrize("kind", [bytes, memoryview])
def test_both_ways_agree_on_records_errors_and_close_notify(io, kind):
    _client, server, (client_read, client_seal), (server_read, server_seal) = bound(io)
    sealed = client_seal(kind(b"x" * 100_000))
    sizes = records(sealed)
    assert len(sizes) == 7 and max(sizes) <= openssl_compat.RECORD + 256  # a record each
    assert server_read(sealed[:1000]) == (b"", False)  # not a whole record yet
    assert server_read(sealed[1000:]) == (b"x" * 100_000, False)
    assert server_read() == (b"", False) and io.drain(server) == b""
    assert client_read(server_seal(kind(b"pong"))) == (b"pong", False)
    assert server_seal(kind(b"")) == b""  # nothing to send
    server.shutdown()
    assert client_read(io.drain(server)) == (b"", True)
    with pytest.raises(SSL.Error):  # a record that does not decrypt
        server_read(b"\x17\x03\x03\x00\x05hello")


class SmallRecords:
    """OpenSSL's binding, with SSL_write as under a fragment length of 700 bytes."""

    def __init__(self, lib):
        self.lib = lib

    def __getattr__(self, name):
        return getattr(self.lib, name)

    def SSL_write(self, ssl, buf, size):  # OpenSSL's name
        return self.lib.SSL_write(ssl, buf, min(size, 700))


def test_what_a_record_does_not_take_is_written_next():
    """A peer may ask for records smaller than 16 KiB (Max Fragment Length): SSL_write
    takes less than it is given, and FastIO goes on from there."""
    io = FastIO()
    io.lib = SmallRecords(io.lib)
    _client, _server, (_, client_seal), (server_read, _) = bound(io)
    sealed = client_seal(b"0123456789" * 1000)
    assert max(records(sealed)) <= 700 + 256
    assert server_read(sealed) == (b"0123456789" * 1000, False)


def test_records_left_unread_are_found(monkeypatch):
    """FastIO stops reading when the BIO is empty; were OpenSSL to take more than a
    record from it at once, records would stay unread. The probe would see that."""
    bind = FastIO.bind

    def one_record_each(self, conn):
        read, seal = bind(self, conn)

        def first(data=b""):
            plain, eof = read(data)
            return plain[: openssl_compat.RECORD], eof

        return first, seal

    monkeypatch.setattr(FastIO, "bind", one_record_each)
    assert "data did not come through" in openssl_compat.check()
    assert openssl_compat.io().name == "public"
