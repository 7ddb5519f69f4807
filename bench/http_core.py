"""The HTTP core's cost per proxied transaction, against h11 when it is installed.

    .venv/bin/python bench/http_core.py

A transaction: parse a request, serialize it canonically, parse a response
with a small body, serialize it: what the proxy does per request before any I/O.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zfw.http.messages import Request, Response
from zfw.http.parser import Parser
from zfw.http.serialize import end_to_end, serialize_request, serialize_response

REQUEST = (
    b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.org\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip\r\nCookie: a=b; c=d\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 07:00:00 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 12\r\nConnection: keep-alive\r\n"
    b'ETag: "abc"\r\n\r\nhello world\n'
)


def zfw_transaction() -> None:
    req_parser = Parser("request")
    resp_parser = Parser("response")
    req = req_parser.feed(REQUEST)[0]
    serialize_request(Request(req.method, req.target, req.version, end_to_end(req.headers)))
    resp_parser.expect(req.method)
    events = resp_parser.feed(RESPONSE)
    resp = events[0]
    serialize_response(
        Response(resp.status, resp.reason, resp.version, end_to_end(resp.headers)),
        ((b"Content-Length", b"12"),),
    )


def h11_transaction() -> None:
    import h11

    server = h11.Connection(h11.SERVER)
    client = h11.Connection(h11.CLIENT)
    server.receive_data(REQUEST)
    req = server.next_event()
    server.next_event()
    client.send(h11.Request(method=req.method, target=req.target, headers=req.headers))
    client.send(h11.EndOfMessage())
    client.receive_data(RESPONSE)
    resp = client.next_event()
    body = client.next_event()
    client.next_event()
    server.send(h11.Response(status_code=resp.status_code, headers=resp.headers))
    server.send(body)
    server.send(h11.EndOfMessage())


def measure(fn, n: int = 20000) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    z = measure(zfw_transaction)
    print(f"zfw.http:        {z:6.1f} us per transaction ({1e6 / z:,.0f}/s before any I/O)")
    try:
        import h11  # noqa: F401
    except ImportError:
        print("h11: not installed (pip install h11 to compare)")
        return
    h = measure(h11_transaction, 5000)
    print(
        f"h11:           {h:6.1f} us per transaction ({1e6 / h:,.0f}/s); zfw is {h / z:.1f}x faster"
    )


if __name__ == "__main__":
    main()
