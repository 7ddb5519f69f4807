"""A small web application for the browser test, behind nginx in the lab's server.

    python -m zfw.lab.webapp PORT RESULTS_DIR   (prints "ready" once on 127.0.0.1:PORT)

What a page's script asks of a real site that static files cannot answer:

- ``POST /app/echo``: the body's length and SHA-256, as a chunked JSON answer;
- ``GET /app/headers``: the request's ``X-Zfw-Test`` and ``Cookie`` fields, as JSON;
- ``GET /app/cookie``: sets the cookie ``zfw=baked``;
- ``GET /app/ws``: a WebSocket (RFC 6455) that echoes each text or binary message;
- ``POST /app/results?run=NAME``: the page's findings, kept as ``RESULTS_DIR/NAME.json``.

HTTP/1.1 with one request per connection (nginx's upstream default); asyncio only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import sys

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        method, target, _version = line.split(" ", 2)
        headers = {}
        for f in fields:
            if f:
                name, _, value = f.partition(":")
                headers[name.strip().lower()] = value.strip()
        if target == "/app/ws" and headers.get("upgrade", "").lower() == "websocket":
            await _websocket(reader, writer, headers["sec-websocket-key"])
            return
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        await _answer(writer, method, target, headers, body)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError):
        pass
    finally:
        writer.close()


async def _answer(
    writer: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str], body: bytes
) -> None:
    extra = ""
    run = re.fullmatch(r"/app/results\?run=([a-z0-9-]{1,64})", target)
    if method == "POST" and run is not None:
        path = os.path.join(sys.argv[2], f"{run.group(1)}.json")
        with open(path + ".part", "wb") as f:
            f.write(body)
        os.rename(path + ".part", path)
        out = {"kept": True}
    elif method == "POST" and target == "/app/echo":
        out = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    elif target == "/app/headers":
        out = {"x-zfw-test": headers.get("x-zfw-test"), "cookie": headers.get("cookie")}
    elif target == "/app/cookie":
        out = {"set": True}
        extra = "Set-Cookie: zfw=baked; Path=/\r\n"
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return
    data = json.dumps(out).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
        + extra.encode()
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    half = len(data) // 2  # two chunks
    for part in (data[:half], data[half:]):
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
    accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    await writer.drain()
    while True:
        first, second = await reader.readexactly(2)
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        mask = await reader.readexactly(4) if second & 0x80 else bytes(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
        writer.write(_frame(opcode, payload))  # echo; a close (8) is answered in kind
        await writer.drain()
        if opcode == 8:
            return


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked, final)."""
    n = len(payload)
    if n < 126:
        size = bytes([n])
    elif n < 65536:
        size = bytes([126]) + n.to_bytes(2, "big")
    else:
        size = bytes([127]) + n.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + size + payload


async def _main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
