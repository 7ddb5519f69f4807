"""A real FTP server for the lab's server host: ``python -m zfw.lab.ftpserver``.

pyftpdlib, listening on IPv4 and IPv6, with user ``zfw`` (password
``secret``, read-write) and anonymous (read-only) on one directory. It
logs every control connection and, what matters for transparency, the peer
address of every **data** connection::

    192.0.2.10:40312-[zfw] data connection from 192.0.2.10:20 (RETR)

pyftpdlib also refuses data connections from an address other than the
control connection's and PORT commands naming another address, so a
successful transfer already shows that the firewall kept the client's
address on both channels.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.servers import FTPServer

USER, PASSWORD = "zfw", "secret"


class _LoggingDTP(DTPHandler):
    def __init__(self, sock, cmd_channel):
        super().__init__(sock, cmd_channel)
        host, port = sock.getpeername()[:2]
        cmd_channel.log(f"data connection from {host}:{port}")


def main(argv: list[str] | None = None) -> int:
    """Serve ``--root`` on ``--port`` until killed; print ``ready`` when listening."""
    ap = argparse.ArgumentParser(prog="python -m zfw.lab.ftpserver")
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--log", required=True, help="file for the server's log")
    args = ap.parse_args(argv)
    logging.basicConfig(
        filename=args.log, level=logging.INFO, format="%(asctime)s %(message)s", force=True
    )
    auth = DummyAuthorizer()
    auth.add_user(USER, PASSWORD, args.root, perm="elradfmwMT")
    auth.add_anonymous(args.root)
    handler = type("LabFTPHandler", (FTPHandler,), {})
    handler.authorizer = auth
    handler.dtp_handler = _LoggingDTP
    handler.banner = "zfw lab FTP server ready."
    servers = [FTPServer(("0.0.0.0", args.port), handler)]
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # v4 clients stay plain v4
    v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v6.bind(("::", args.port))
    v6.listen(64)
    servers.append(FTPServer(v6, handler))
    print("ready", flush=True)
    servers[0].serve_forever(handle_exit=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
