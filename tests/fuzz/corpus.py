"""Seed inputs for the fuzz targets, from the unit tests' own corpora.

Each seed is the target's input: a first byte (the cut pattern) and the stream.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent

_GOOD_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nTrailer-Field: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\nX:\tvalue \r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
]
#: What fuzzing found, kept as seeds (a request whose next one is still arriving: the
#: differential check once compared it with h11, which refuses the unfinished rest).
#: And Transfer-Encoding in the trailers, which zfw accepted and h11 refuses (now a 400).
_REGRESSIONS = [
    b"POST / HTTP/1.1\r\nHost: a\r\n`Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nHost:;a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    b"arTBiler: ost:;a\r\nTransfer-Encoding: chunkedx\r\n\r\n",
]
_GOOD_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",
]
_FTP = [
    b"USER zfw\r\nPASS secret\r\nPORT 192,0,2,2,156,64\r\nEPRT |2|2001:db8::1|40000|\r\n",
    b"220 ready\r\n230-Welcome\r\n230 in\r\n227 Entering Passive Mode (198,51,100,2,117,48).\r\n"
    b"229 Entering Extended Passive Mode (|||40000|)\r\n",
    b"192,0,2,2,156,64",
    b"|1|192.0.2.2|40000|",
]


def seeds(target: str) -> list[bytes]:
    """Seed inputs for ``target`` (each with every first byte's cut pattern once)."""
    if target == "http_requests":
        from tests.http.test_parser import MALFORMED_REQUESTS

        streams = _GOOD_REQUESTS + _REGRESSIONS + [d for _c, d, _s in MALFORMED_REQUESTS]
    elif target == "http_responses":
        from tests.http.test_parser import MALFORMED_RESPONSES

        streams = _GOOD_RESPONSES + [c[1] for c in MALFORMED_RESPONSES]
    elif target == "ftp":
        streams = _FTP
    else:
        streams = [p.read_bytes() for p in sorted((TESTS / "tls" / "hellos").glob("*.bin"))]
    return [bytes([cut]) + s for s in streams for cut in (0, 3, 6)]


def write(target: str, directory: Path) -> Path:
    """The seeds as a libFuzzer corpus folder."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(target)):
        (directory / f"seed-{i:03d}").write_bytes(seed)
    return directory
