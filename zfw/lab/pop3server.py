"""A small POP3 server for the lab (RFC 1939, with CAPA): ``python -m zfw.lab.pop3server``.

It serves the files of ``--mail DIR`` (sorted by name) as messages to one
user, ``--user NAME:PASSWORD``, advertises STLS and SASL in CAPA (which zfw
must not pass on unless it answers STLS itself), answers STLS with TLS when given
``--tls CERT:KEY`` (a test certificate) and writes every command it receives to
``--log FILE``
(``command VERB ...``, with the client's address), so that tests can tell
what reached it. DELE is kept for the session and
applied at QUIT, as RFC 1939 says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl


class Mailbox:
    """The messages of ``directory``: one file each."""

    def __init__(self, directory: str):
        self.directory = directory

    def messages(self) -> list[str]:
        return sorted(os.listdir(self.directory))

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.directory, name), "rb") as f:
            return f.read()


def _stuffed(message: bytes) -> bytes:
    """A message as a multi-line reply body: CRLF lines, dots stuffed, the end line."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    return body + b".\r\n"


def handler(mailbox: Mailbox, user: str, password: str, log: str, tls: ssl.SSLContext | None):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        names = mailbox.messages()
        deleted: set[int] = set()
        authorized = False
        given_user = None

        def send(text: str | bytes) -> None:
            writer.write(text if isinstance(text, bytes) else text.encode() + b"\r\n")

        send("+OK zfw lab POP3 ready")
        try:
            while line := await reader.readline():
                words = line.decode("ascii", "replace").strip().split(" ")
                verb, args = words[0].upper(), words[1:]
                with open(log, "a") as f:
                    f.write(f"{peer} command {' '.join(words)}\n")
                number = int(args[0]) if args and args[0].isdigit() else 0
                valid = 0 < number <= len(names) and number not in deleted
                if verb == "STLS" and tls is not None and not writer.get_extra_info("sslcontext"):
                    send("+OK Begin TLS")
                    await writer.drain()
                    await writer.start_tls(tls)
                    given_user, authorized = None, False
                    continue
                if verb == "CAPA":
                    send("+OK\r\nUSER\r\nUIDL\r\nTOP\r\nSTLS\r\nSASL PLAIN LOGIN\r\n.")
                elif verb == "USER":
                    given_user = args[0] if args else None
                    send("+OK")
                elif verb == "PASS":
                    authorized = given_user == user and args == [password]
                    send("+OK logged in" if authorized else "-ERR invalid login")
                elif verb == "QUIT":
                    for n in deleted:
                        os.unlink(os.path.join(mailbox.directory, names[n - 1]))
                    send("+OK bye")
                    break
                elif not authorized:
                    send("-ERR log in first")
                elif verb == "STAT":
                    size = sum(len(mailbox.read(names[i])) for i in range(len(names)))
                    send(f"+OK {len(names) - len(deleted)} {size}")
                elif verb in ("LIST", "UIDL") and not args:
                    send(f"+OK {len(names)} messages")
                    for i, name in enumerate(names, 1):
                        if i not in deleted:
                            value = len(mailbox.read(name)) if verb == "LIST" else name
                            send(f"{i} {value}")
                    send(".")
                elif verb in ("RETR", "TOP") and valid:
                    send("+OK message follows")
                    send(_stuffed(mailbox.read(names[number - 1])))
                elif verb == "DELE" and valid:
                    deleted.add(number)
                    send(f"+OK message {number} deleted")
                elif verb in ("NOOP", "RSET"):
                    if verb == "RSET":
                        deleted.clear()
                    send("+OK")
                else:
                    send("-ERR no such command or message")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    return serve


async def _main(a: argparse.Namespace) -> None:
    user, _sep, password = a.user.partition(":")
    tls = None
    if a.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*a.tls.split(":", 1))
    serve = handler(Mailbox(a.mail), user, password, a.log, tls)
    servers = [await asyncio.start_server(serve, "0.0.0.0", a.port, reuse_address=True)]
    with contextlib.suppress(OSError):
        servers.append(await asyncio.start_server(serve, "::", a.port, reuse_address=True))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="zfw.lab.pop3server")
    p.add_argument("--port", type=int, default=110)
    p.add_argument("--mail", required=True)
    p.add_argument("--user", default="zfw:secret")
    p.add_argument("--log", default=os.devnull)
    p.add_argument("--tls", help="CERT:KEY, PEM files: STLS is answered")
    asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    main()
