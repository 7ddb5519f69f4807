"""TLS records in memory: what TlsStream's data path costs per HTTP round trip.

    .venv/bin/python bench/tls_records.py [--trips 50000] [--valgrind]

A client and a server TlsStream (TLS 1.3, the contexts zfw inspects with) joined
by an in-memory pipe; each round trip is a small request one way and a small
response back: four TLS operations, as zfw does per inspected keep-alive request
(decrypt the request, encrypt it toward the server, decrypt the response,
encrypt it toward the client). Timed on both of openssl_compat's ways through
pyOpenSSL; with ``--valgrind``, the instructions per round trip too (valgrind's
count for 3,000 trips less that for 1,000, over 2,000), which this noisy machine
cannot blur.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from zfw.tls import openssl_compat
from zfw.tls.certs import CertificateAuthority, LeafMinter, create_ca
from zfw.tls.contexts import ClientSide, ServerSide, TlsOptions
from zfw.tls.stream import TlsStream

REQUEST = b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: wrk\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 6\r\nConnection: keep-alive\r\n"
    b"\r\nhello\n"
)


class Pipe:
    """One end of an in-memory connection (the part of the stream contract TLS uses)."""

    def __init__(self, side: str):
        self.side = side
        self.other: Pipe | None = None
        self.lost = False
        self.on_data: Any = None

    def write(self, data: bytes) -> None:
        assert self.other is not None
        self.other.on_data(data)


def pair(d: str) -> tuple[TlsStream, TlsStream]:
    """A client and a server stream after their handshake; the server answers each
    request with RESPONSE."""
    ca = CertificateAuthority.load(*create_ca(f"{d}/ca", "bench CA"))
    minter = LeafMinter()
    leaf = minter.named(ca, ["www.example.com"])
    a, b = Pipe("client"), Pipe("server")
    a.other, b.other = b, a
    server = TlsStream(b, ClientSide(TlsOptions()).connection(leaf, minter.key))
    client = TlsStream(
        a, ServerSide(TlsOptions(), f"{d}/ca/ca.pem", None).connection("www.example.com")
    )
    client.start()
    assert client.handshaken and server.handshaken
    server.on_data = lambda _data: server.write(RESPONSE)
    return client, server


def trips(client: TlsStream, n: int) -> None:
    for _ in range(n):
        client.write(REQUEST)


def timed(way: str, n: int) -> float:
    """Microseconds per round trip on ``way`` (best of three)."""
    openssl_compat.use(openssl_compat.FastIO() if way == "fast" else openssl_compat.PublicIO())
    with tempfile.TemporaryDirectory() as d:
        client, _server = pair(d)
        trips(client, 1000)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            trips(client, n)
            best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def instructions(n: int) -> int:
    """valgrind's instruction count for a run of ``n`` round trips (fast way)."""
    proc = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--only", str(n)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.split(":")[1].replace(",", ""))
    raise RuntimeError(f"no instruction count from valgrind: {proc.stderr[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trips", type=int, default=50000)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--only", type=int, help=argparse.SUPPRESS)  # one run, for valgrind
    a = ap.parse_args()
    if a.only is not None:
        openssl_compat.use(openssl_compat.FastIO())
        with tempfile.TemporaryDirectory() as d:
            client, _server = pair(d)
            trips(client, 200 + a.only)
        return
    fast, public = timed("fast", a.trips), timed("public", a.trips)
    print(f"round trip (4 TLS operations), best of 3 x {a.trips}:")
    print(f"  openssl_compat fast path   {fast:6.1f} us")
    print(f"  pyOpenSSL public API       {public:6.1f} us   ({public / fast:.2f}x)")
    if a.valgrind:
        per_trip = (instructions(3000) - instructions(1000)) / 2000
        print(f"  fast path: {per_trip:,.0f} instructions per round trip (valgrind)")


if __name__ == "__main__":
    main()
