"""Small TCP programs for the lab's hosts: ``python -m zfw.lab.tools NAME ...``.

- ``whoami PORT``: tells each client the address it sees, then echoes;
  prints ``peer HOST PORT`` per connection.
- ``echo PORT``: echoes everything (many connections at once).
- ``sink PORT [--slow-seconds S]``: reads a stream, replies and prints
  ``{"bytes": N, "sha256": ...}``; reads slowly for the first S seconds.
- ``send HOST PORT BYTES [--source ADDR]``: sends BYTES of deterministic data,
  half-closes, prints the sink's reply and its own checksum.
- ``hold HOST PORT COUNT``: opens COUNT connections, checks each echoes,
  keeps them open until stdin closes; prints ``open N`` / ``failed N``.
- ``slowloris HOST PORT COUNT [--source ADDR]``: connections that dribble a request
  head one header line at a time and never end it, until stdin closes.
- ``burst HOST PORT COUNT [--source ADDR] [--tls NAME] [--path P]``: COUNT clients at
  once, each connecting (a TLS handshake with NAME), asking for P and reading the
  answer; all held open until every one is done; prints ``{"ok": N, "failed": N,
  "errors": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket
import sys
import time

CHUNK = 1 << 16


def pattern_block() -> bytes:
    """1 MiB of deterministic data that does not compress into a repeat too easily."""
    return hashlib.sha256(b"zfw").digest() * (1 << 15)


async def _serve(handler, port: int) -> None:
    servers = [
        await asyncio.start_server(handler, "0.0.0.0", port, reuse_address=True, backlog=1024)
    ]
    with contextlib.suppress(OSError):
        servers.append(
            await asyncio.start_server(handler, "::", port, reuse_address=True, backlog=1024)
        )
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _whoami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    host, port = writer.get_extra_info("peername")[:2]
    print(f"peer {host} {port}", flush=True)
    writer.write(f"you are {host} port {port}\n".encode())
    await _echo(reader, writer)


def _sink_handler(slow_seconds: float):
    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h = hashlib.sha256()
        n = 0
        start = time.monotonic()
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            h.update(data)
            n += len(data)
            if time.monotonic() - start < slow_seconds:
                await asyncio.sleep(0.01)
        result = json.dumps({"bytes": n, "sha256": h.hexdigest()})
        print(result, flush=True)
        writer.write(result.encode() + b"\n")
        await writer.drain()
        writer.close()

    return sink


def _send(host: str, port: int, total: int, source: str | None) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    block = pattern_block()
    h = hashlib.sha256()
    left = total
    while left:
        piece = block[: min(left, len(block))]
        s.sendall(piece)
        h.update(piece)
        left -= len(piece)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while data := s.recv(CHUNK):
        reply += data
    print(
        json.dumps(
            {"sent": total, "sha256": h.hexdigest(), "reply": json.loads(reply) if reply else None}
        ),
        flush=True,
    )


def _hold(host: str, port: int, count: int, source: str | None) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks, failed = [], 0
    for i in range(count):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            msg = f"hello {i}\n".encode()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                data = s.recv(64)
                if not data:
                    break
                got += data
            if got != msg:
                raise OSError("bad echo")
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    print(f"open {len(socks)}", flush=True)
    print(f"failed {failed}", flush=True)
    sys.stdin.read()  # keep them open until told
    alive = 0
    for s in socks:
        try:
            s.sendall(b"bye\n")
            if s.recv(64):
                alive += 1
        except OSError:
            pass
        s.close()
    print(f"alive {alive}", flush=True)


async def _slowloris(host: str, port: int, count: int, source: str | None, every: float) -> None:
    """``count`` connections that each send a request head one header line every
    ``every`` seconds and never finish it, until stdin closes."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    writers = []
    refused = 0
    for _ in range(count):
        try:
            _r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(source, 0) if source else None),
                5,
            )
            w.write(b"GET / HTTP/1.1\r\nHost: slow.example\r\n")
            writers.append(w)
        except (TimeoutError, OSError):
            refused += 1
    print(f"open {len(writers)} refused {refused}", flush=True)
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, sys.stdin.read)
    n = 0
    while not done.done():
        for w in writers:
            if not w.is_closing():
                w.write(f"X-Slow-{n}: a\r\n".encode())
        n += 1
        await asyncio.sleep(every)
    alive = sum(1 for w in writers if not w.is_closing())
    print(f"still open {alive}", flush=True)


def _burst(host: str, port: int, count: int, source: str | None, tls: str | None, path: str):
    """``count`` clients in threads, started together, each with one request; the
    connections stay open until all are done, so that they run at once."""
    import resource
    import ssl
    import threading
    from collections import Counter

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    start = threading.Barrier(count)
    done = threading.Barrier(count)
    errors: Counter[str] = Counter()
    ok = []
    lock = threading.Lock()

    def client() -> None:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(60)
        start.wait()
        try:
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            if tls:
                s = ctx.wrap_socket(s, server_hostname=tls)
            name = tls or host
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
            reply = s.recv(CHUNK)
            if not reply.startswith(b"HTTP/1.1 200"):
                raise OSError(f"answer {reply[:20]!r}")
            with lock:
                ok.append(1)
        except (OSError, ValueError) as e:
            with lock:
                errors[type(e).__name__ + ": " + str(e)[:60]] += 1
        finally:
            try:
                done.wait()
            finally:
                s.close()

    threads = [threading.Thread(target=client) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"ok": len(ok), "failed": sum(errors.values()), "errors": errors}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="zfw.lab.tools")
    sub = p.add_subparsers(dest="tool", required=True)
    for name in ("whoami", "echo"):
        sub.add_parser(name).add_argument("port", type=int)
    sk = sub.add_parser("sink")
    sk.add_argument("port", type=int)
    sk.add_argument("--slow-seconds", type=float, default=0.0)
    sd = sub.add_parser("send")
    sd.add_argument("host")
    sd.add_argument("port", type=int)
    sd.add_argument("bytes", type=int)
    sd.add_argument("--source")
    hd = sub.add_parser("hold")
    hd.add_argument("host")
    hd.add_argument("port", type=int)
    hd.add_argument("count", type=int)
    hd.add_argument("--source")
    sl = sub.add_parser("slowloris")
    sl.add_argument("host")
    sl.add_argument("port", type=int)
    sl.add_argument("count", type=int)
    sl.add_argument("--source")
    sl.add_argument("--every", type=float, default=0.5)
    bu = sub.add_parser("burst")
    bu.add_argument("host")
    bu.add_argument("port", type=int)
    bu.add_argument("count", type=int)
    bu.add_argument("--source")
    bu.add_argument("--tls")
    bu.add_argument("--path", default="/")
    a = p.parse_args(argv)
    if a.tool == "whoami":
        asyncio.run(_serve(_whoami, a.port))
    elif a.tool == "echo":
        asyncio.run(_serve(_echo, a.port))
    elif a.tool == "sink":
        asyncio.run(_serve(_sink_handler(a.slow_seconds), a.port))
    elif a.tool == "send":
        _send(a.host, a.port, a.bytes, a.source)
    elif a.tool == "hold":
        _hold(a.host, a.port, a.count, a.source)
    elif a.tool == "slowloris":
        asyncio.run(_slowloris(a.host, a.port, a.count, a.source, a.every))
    elif a.tool == "burst":
        _burst(a.host, a.port, a.count, a.source, a.tls, a.path)


if __name__ == "__main__":
    main()
