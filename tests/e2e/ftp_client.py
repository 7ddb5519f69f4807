"""Raw-socket FTP clients and a hostile FTP server for the end-to-end tests.

Run inside a lab namespace: ``python ftp_client.py SCENARIO HOST PORT``.
Each scenario prints the replies it got, one per line, as ``CODE text``,
and its findings as ``result: ...``. Standalone on purpose (no zfw import).
"""

from __future__ import annotations

import re
import socket
import sys


class Control:
    """A control connection that reads whole (multi-line) replies."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.greeting = self.reply()

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("control connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self) -> tuple[int, list[str]]:
        first = self.line()
        lines = [first]
        if first[3:4] == "-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == " "):
                lines.append(self.line())
        print(" | ".join(lines), flush=True)
        return int(first[:3]), lines

    def send(self, text: str | bytes) -> tuple[int, list[str]]:
        raw = text if isinstance(text, bytes) else text.encode("latin-1")
        self.sock.sendall(raw + b"\r\n")
        return self.reply()

    def login(self) -> None:
        self.send("USER anonymous")
        code, _ = self.send("PASS zfw@example.org")
        assert code == 230, code


def pasv_address(lines: list[str]) -> tuple[str, int]:
    nums = [int(n) for n in re.search(r"(\d+,\d+,\d+,\d+,\d+,\d+)", lines[0]).group(1).split(",")]
    return ".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes."""
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def bounce(host: str, port: int) -> None:
    """PORT/EPRT naming someone else, and a low port: each must be refused."""
    c = Control(host, port)
    c.login()
    my = c.sock.getsockname()[0]
    codes = [
        c.send("PORT 203,0,113,5,4,1")[0],
        c.send("EPRT |1|203.0.113.5|1025|")[0],
        c.send("PORT " + ",".join(my.split(".")) + ",0,80")[0],
        c.send("XYZZ")[0],
        c.send("NOOP")[0],
    ]
    print(f"result: {' '.join(map(str, codes))}")


def theft(host: str, port: int, other: str) -> None:
    """After PASV, a connection from ``other`` is refused; the real client's passes."""
    c = Control(host, port)
    c.login()
    c.send("TYPE I")
    _code, lines = c.send("PASV")
    dhost, dport = pasv_address(lines)
    thief = socket.socket()
    thief.bind((other, 0))
    thief.settimeout(5)
    stolen = "connected"
    try:
        thief.connect((dhost, dport))
        stolen = "no data" if thief.recv(100) == b"" else "got data"
    except OSError as e:
        stolen = type(e).__name__
    data = socket.create_connection((dhost, dport), timeout=10)
    c.sock.sendall(b"RETR hello.txt\r\n")
    c.reply()
    got = read_to_end(data)
    code, _ = c.reply()
    print(f"result: thief={stolen} data={got!r} final={code} pasv={dhost}")


def active(host: str, port: int) -> None:
    """PORT: who connects to the client's data port, and what arrives."""
    c = Control(host, port)
    c.login()
    c.send("TYPE I")
    my = c.sock.getsockname()[0]
    lsock = socket.socket()
    lsock.bind((my, 0))
    lsock.listen(1)
    lsock.settimeout(10)
    p = lsock.getsockname()[1]
    c.send(f"PORT {my.replace('.', ',')},{p >> 8},{p & 255}")
    c.sock.sendall(b"RETR hello.txt\r\n")
    c.reply()
    data, peer = lsock.accept()
    got = read_to_end(data)
    code, _ = c.reply()
    print(f"result: peer={peer[0]}:{peer[1]} data={got!r} final={code}")


def abort(host: str, port: int) -> None:
    """ABOR in the middle of a large download: 426 for RETR, then 226 for ABOR."""
    c = Control(host, port)
    c.login()
    c.send("TYPE I")
    _code, lines = c.send("PASV")
    data = socket.create_connection(pasv_address(lines), timeout=10)
    c.sock.sendall(b"RETR big.bin\r\n")
    c.reply()
    data.recv(65536)
    c.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
    first, _ = c.reply()
    second, _ = c.reply() if first == 426 else (None, None)
    data.close()
    code, _ = c.send("NOOP")
    print(f"result: {first} {second} noop={code}")


def feat(host: str, port: int) -> None:
    """FEAT as the client sees it."""
    c = Control(host, port)
    _code, lines = c.send("FEAT")
    print("result: " + ",".join(ln.strip().split(" ")[0] for ln in lines[1:-1]))


def hostile_server(port: int, lie: str) -> None:
    """An FTP server whose 227 names ``lie`` instead of itself."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 hostile server\r\n")
        for raw in f:
            verb = raw.decode("latin-1").strip().split(" ")[0].upper()
            print(f"got {verb}", flush=True)
            if verb == "PASV":
                conn.sendall(
                    f"227 Entering Passive Mode ({lie.replace('.', ',')},4,1).\r\n".encode()
                )
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            elif verb in ("USER",):
                conn.sendall(b"331 password\r\n")
            elif verb in ("PASS",):
                conn.sendall(b"230 in\r\n")
            elif verb in ("PWD",):
                conn.sendall(b'257 "/"\r\n')
            elif verb in ("EPSV",):
                conn.sendall(b"500 no EPSV here\r\n")
            else:
                conn.sendall(b"200 ok\r\n")
        conn.close()


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    if name == "hostile-server":
        hostile_server(int(args[0]), args[1])
    elif name == "theft":
        theft(args[0], int(args[1]), args[2])
    else:
        {"bounce": bounce, "abort": abort, "feat": feat, "active": active}[name](
            args[0], int(args[1])
        )
