"""The sans-IO ClientHello reader: real hellos, every split, malformed input."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfw.tls.clienthello import ClientHelloReader, TlsViolation

HELLOS = Path(__file__).parent / "hellos"

# Captured with tests/tls/capture_hellos.py from openssl 3.0 s_client, curl 7.88 and
# Chromium 156 (GREASE in its suites, extensions, groups, versions; a GREASE ECH).
EXPECTED = {
    "chromium": ("chromium.example", ("h2", "http/1.1"), (0x0304, 0x0303), 0x0304),
    "openssl_tls12": ("tls12.example", (), (), 0x0303),
    "openssl_tls13": ("tls13.example", ("h2", "http/1.1"), (0x0304,), 0x0304),
    "curl": ("curl.example", ("h2", "http/1.1"), (0x0304, 0x0303, 0x0302, 0x0301), 0x0304),
    "openssl_no_sni": (None, (), (0x0304, 0x0303, 0x0302, 0x0301), 0x0304),
    "openssl_large_fragmented": ("large.example", None, (0x0304, 0x0303, 0x0302, 0x0301), 0x0304),
}


def read_all(chunks) -> object:
    r = ClientHelloReader()
    result = None
    for chunk in chunks:
        got = r.feed(chunk)
        result = result or got
    return result


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_hellos(name):
    data = (HELLOS / f"{name}.bin").read_bytes()
    hello = read_all([data])
    sni, alpn, versions, highest = EXPECTED[name]
    assert hello.sni == sni
    if alpn is not None:
        assert hello.alpn == alpn
    assert hello.versions == versions
    assert hello.highest_version == highest
    assert hello.size == len(data)
    assert hello.ech is (name == "chromium")


def test_a_real_chromium_hello_without_its_grease():
    hello = read_all([(HELLOS / "chromium.bin").read_bytes()])
    values = (*hello.suites, *hello.groups, *hello.signature_algorithms, *hello.extensions)
    assert not [v for v in values if v & 0x0F0F == 0x0A0A]
    assert hello.suites[:3] == (0x1301, 0x1302, 0x1303)
    assert 0x001D in hello.groups and 0xFE0D in hello.extensions


def test_large_hello_spans_several_records():
    data = (HELLOS / "openssl_large_fragmented.bin").read_bytes()
    assert len(data) > 2048 and data[3:5] == b"\x02\x00"  # 512-byte records
    hello = read_all([data])
    assert len(hello.alpn) == 100


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_split_gives_the_same_result(name):
    data = (HELLOS / f"{name}.bin").read_bytes()
    whole = read_all([data])
    for i in range(1, len(data)):
        r = ClientHelloReader()
        first = r.feed(data[:i])
        assert first is None, f"complete after {i} of {len(data)} bytes"
        assert r.feed(data[i:]) == whole
    assert read_all([data[i : i + 1] for i in range(len(data))]) == whole


@given(st.lists(st.integers(1, 300), min_size=1, max_size=40))
def test_any_segmentation_gives_the_same_result(cuts):
    data = (HELLOS / "curl.bin").read_bytes()
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(data[pos : pos + n])
        pos += n
    chunks.append(data[pos:])
    assert read_all(chunks) == read_all([data])


_EDITS = st.lists(
    st.tuples(st.integers(0, 2000), st.sampled_from(["set", "cut", "add"]), st.binary(max_size=8)),
    min_size=1,
    max_size=6,
)


@given(st.sampled_from(sorted(p.name for p in HELLOS.glob("*.bin"))), _EDITS)
def test_a_damaged_hello_is_a_violation_or_a_hello_never_a_crash(name, edits):
    data = bytearray((HELLOS / name).read_bytes())
    for pos, kind, piece in edits:
        pos %= len(data) or 1
        if kind == "set":
            data[pos : pos + len(piece)] = piece
        elif kind == "cut":
            del data[pos : pos + len(piece) + 1]
        else:
            data[pos:pos] = piece
    with contextlib.suppress(TlsViolation):
        ClientHelloReader().feed(bytes(data))


def test_bytes_after_the_hello_are_kept_for_the_server():
    data = (HELLOS / "curl.bin").read_bytes()
    r = ClientHelloReader()
    assert r.feed(data + b"\x17\x03\x03\x00\x01x") is not None
    r.feed(b"more")
    assert bytes(r.buffer) == data + b"\x17\x03\x03\x00\x01x" + b"more"


# --- crafted hellos --------------------------------------------------------------------------


def ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(struct.pack("!BH", name_type, len(n)) + n for n in names)
    return ext(0, struct.pack("!H", len(entries)) + entries)


def hello(
    extensions: bytes | None = b"",
    version: int = 0x0303,
    suites: bytes = b"\x13\x01",
    session: bytes = b"",
    compression: bytes = b"\x00",
    record_version: int = 0x0301,
    handshake_type: int = 1,
    trailing: bytes = b"",
) -> bytes:
    body = struct.pack("!H", version) + bytes(32)
    body += bytes([len(session)]) + session
    body += struct.pack("!H", len(suites)) + suites
    body += bytes([len(compression)]) + compression
    if extensions is not None:
        body += struct.pack("!H", len(extensions)) + extensions
    body += trailing
    hs = bytes([handshake_type]) + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, record_version, len(hs)) + hs


def test_crafted_valid_hello():
    h = read_all([hello(sni_ext(b"WWW.Example.COM") + ext(16, b"\x00\x03\x02h2"))])
    assert h.sni == "www.example.com" and h.alpn == ("h2",)


def ech_outer(payload: bytes = b"\x5a" * 144, trailing: bytes = b"") -> bytes:
    """An outer ECHClientHello: HKDF-SHA256, AES-128-GCM, config id, enc, payload."""
    body = b"\x00" + struct.pack("!HHBH", 1, 1, 0x42, 32) + b"\x20" * 32
    return ext(0xFE0D, body + struct.pack("!H", len(payload)) + payload + trailing)


def test_an_ech_offer_is_reported():
    h = read_all([hello(sni_ext(b"public.example") + ech_outer())])
    assert h.ech and h.sni == "public.example"


def test_the_inner_ech_type_is_no_offer():
    # What a client-facing server passes on to a backend: already decrypted.
    h = read_all([hello(sni_ext(b"inner.example") + ext(0xFE0D, b"\x01"))])
    assert not h.ech and h.sni == "inner.example"


G1, G2, G3, G4 = 0x2A2A, 0x7A7A, 0xBABA, 0xFAFA  # GREASE values (RFC 8701)


def chromium_like_hello() -> bytes:
    """A hello as Chromium (BoringSSL) builds it: GREASE in the cipher suites, the
    extensions (first and last), the groups, the key shares, the versions and ALPN's
    absence of it aside, and a GREASE ECH extension, which is a well-formed offer."""
    u16s = lambda *vs: b"".join(struct.pack("!H", v) for v in vs)  # noqa: E731
    groups = u16s(G2, 0x11EC, 0x001D, 0x0017, 0x0018)
    sigalgs = u16s(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    shares = struct.pack("!HH", G2, 1) + b"\x00" + struct.pack("!HH", 0x001D, 32) + bytes(32)
    exts = (
        ext(G1, b"")
        + sni_ext(b"www.example.com")
        + ext(23, b"")
        + ext(0xFF01, b"\x00")
        + ext(10, struct.pack("!H", len(groups)) + groups)
        + ext(11, b"\x01\x00")
        + ext(35, b"")
        + ext(16, b"\x00\x0c\x02h2\x08http/1.1")
        + ext(5, b"\x01\x00\x00\x00\x00")
        + ext(13, struct.pack("!H", len(sigalgs)) + sigalgs)
        + ext(18, b"")
        + ext(51, struct.pack("!H", len(shares)) + shares)
        + ext(45, b"\x01\x01")
        + ext(43, b"\x06" + u16s(G3, 0x0304, 0x0303))
        + ext(27, b"\x02\x00\x02")
        + ext(17613, b"\x00\x03\x02h2")
        + ech_outer()
        + ext(G4, b"\x00")
    )
    return hello(exts, suites=u16s(G1, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F), session=bytes(32))


def test_grease_values_are_left_out_everywhere():
    h = read_all([chromium_like_hello()])
    assert h.versions == (0x0304, 0x0303) and h.highest_version == 0x0304
    assert h.suites == (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F)
    assert h.groups == (0x11EC, 0x001D, 0x0017, 0x0018)
    assert h.signature_algorithms[:2] == (0x0403, 0x0804)
    assert h.extensions[0] == 0 and h.extensions[-1] == 0xFE0D
    assert not {G1, G2, G3, G4} & set(h.extensions)
    assert h.alpn == ("h2", "http/1.1") and h.sni == "www.example.com"
    assert h.ech  # GREASE ECH is built to be indistinguishable from a real offer


def test_grease_alpn_and_a_grease_only_version_list():
    h = read_all([hello(ext(16, b"\x00\x06\x02\x8a\x8a\x02h2") + ext(43, b"\x02\xda\xda"))])
    assert h.alpn == ("h2",)
    assert h.versions == () and h.highest_version == 0x0303


def test_no_extensions_at_all_is_a_hello_without_sni():
    h = read_all([hello(None)])
    assert h.sni is None and h.alpn == ()


MALFORMED = [
    ("sslv2 hello", b"\x80\x2e\x01\x00\x02" + bytes(43), "SSLv2"),
    ("application data first", b"\x17\x03\x03\x00\x05hello", "record of type 23"),
    ("alert first", b"\x15\x03\x03\x00\x02\x02\x28", "record of type 21"),
    ("http instead of tls", b"GET / HTTP/1.1\r\n\r\n", "record of type 71"),
    ("server hello", hello(handshake_type=2), "handshake message 2"),
    ("record version 2.0", hello(record_version=0x0200), "record version"),
    ("record version too new", hello(record_version=0x0305), "record version"),
    ("empty record", b"\x16\x03\x01\x00\x00", "record length 0"),
    ("oversized record", b"\x16\x03\x01\x40\x01" + bytes(16385), "record length 16385"),
    ("sslv3 client version", hello(version=0x0300), "offers SSLv3"),
    ("odd cipher suites", hello(suites=b"\x13\x01\x13"), "odd length"),
    ("no cipher suites", hello(suites=b""), "cipher suites has a bad length"),
    ("no compression", hello(compression=b""), "compression methods has a bad length"),
    ("session id too long", hello(session=bytes(33)), "session id has a bad length"),
    ("duplicate extension", hello(sni_ext(b"a.example") + sni_ext(b"b.example")), "duplicate"),
    ("duplicate other extension", hello(ext(16, b"\x00\x03\x02h2") * 2), "duplicate extension 16"),
    ("two server names", hello(sni_ext(b"a.example", b"b.example")), "2 server names"),
    ("empty name list", hello(ext(0, b"\x00\x00")), "server name list has a bad length"),
    ("unknown name type", hello(sni_ext(b"a.example", name_type=1)), "unknown type 1"),
    ("bad characters", hello(sni_ext(b"bad_name!.example")), "invalid server name"),
    ("leading hyphen", hello(sni_ext(b"-a.example")), "invalid server name"),
    ("trailing dot", hello(sni_ext(b"a.example.")), "invalid server name"),
    ("empty label", hello(sni_ext(b"a..example")), "invalid server name"),
    ("ip literal", hello(sni_ext(b"192.0.2.1")), "is an IP address"),
    ("non ascii", hello(sni_ext("é.example".encode())), "not ASCII"),
    ("nul in name", hello(sni_ext(b"a\x00.example")), "invalid server name"),
    ("long label", hello(sni_ext(b"a" * 64 + b".example")), "invalid server name"),
    ("truncated extension", hello(b"\x00\x00\x00\x09\x00"), "truncated"),
    ("trailing bytes in sni", hello(ext(0, b"\x00\x04\x00\x00\x01a" + b"zz")), "trailing"),
    ("bytes after extensions", hello(b"", trailing=b"\x00"), "trailing"),
    ("empty alpn protocol", hello(ext(16, b"\x00\x01\x00")), "ALPN"),
    ("odd supported versions", hello(ext(43, b"\x03\x03\x04\x03")), "odd length"),
    ("odd groups", hello(ext(10, b"\x00\x03\x00\x1d\x00")), "groups have an odd length"),
    ("trailing bytes in groups", hello(ext(10, b"\x00\x02\x00\x1dzz")), "trailing"),
    ("empty signature algorithms", hello(ext(13, b"\x00\x00")), "signature algorithms has a bad"),
    ("ech of unknown type", hello(ext(0xFE0D, b"\x02")), "ECH extension of unknown type 2"),
    ("truncated ech", hello(ext(0xFE0D, b"\x00\x00\x01\x00\x01\x07\x00\x20")), "truncated"),
    ("ech without payload", hello(ext(0xFE0D, bytes(10))), "ECH payload has a bad length"),
    ("trailing bytes in ech", hello(ech_outer(trailing=b"\x00")), "trailing"),
]


@pytest.mark.parametrize(("case", "data", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_hellos_are_rejected(case, data, reason):
    with pytest.raises(TlsViolation, match=reason):
        r = ClientHelloReader()
        r.feed(data)
        raise AssertionError(f"{case}: accepted")


def test_second_handshake_message_in_the_same_records_is_rejected():
    data = hello(sni_ext(b"a.example"))
    record = data[5:]
    doubled = struct.pack("!BHH", 22, 0x0301, 2 * len(record)) + record + record
    with pytest.raises(TlsViolation, match="more handshake data"):
        ClientHelloReader().feed(doubled)


def test_size_limit():
    big = hello(ext(16, struct.pack("!H", 3000) + (b"\x09" + b"x" * 9) * 300))
    with pytest.raises(TlsViolation, match="larger than 2048 bytes"):
        ClientHelloReader(max_size=2048).feed(big)
    assert ClientHelloReader(max_size=4096).feed(big) is not None
