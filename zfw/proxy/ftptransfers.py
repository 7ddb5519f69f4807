"""FtpProxy's data channels: the commands that set one up (PASV/EPSV, PORT/EPRT), the
server side as ``data_mode`` says, and the transfers that run on them."""

from __future__ import annotations

from collections.abc import Callable

from zfw.engine.decision import plain_host
from zfw.errors import NetError
from zfw.ftp.addresses import (
    format_eprt,
    format_epsv_reply,
    format_pasv_reply,
    format_port,
    parse_eprt,
    parse_epsv_reply,
    parse_pasv_reply,
    parse_port,
)
from zfw.ftp.core import (
    Command,
    FtpViolation,
    Reply,
)
from zfw.ftp.policy import (
    FTP_DATA_ACTIVE,
    FTP_DATA_KEEP,
    FTP_DATA_PASSIVE,
)
from zfw.proxy.ftpdata import DataChannel, DataSettings

#: Transfer commands whose data goes to the server.
UPLOAD_COMMANDS = frozenset({"STOR", "STOU", "APPE"})


class Transfers:
    """Part of :class:`~zfw.proxy.ftp.FtpProxy`: one :class:`DataChannel` per transfer,
    its listeners and connections on the addresses transparency needs, and the
    transfer command's replies in step with the data."""

    def _addresses(self) -> dict[str, str]:
        """client, the server address the client sees, the server, and our address toward it."""
        assert self.client is not None and self.server is not None
        return {
            "client": plain_host(self.client.peer[0]),
            "client_side": plain_host(self.client.local[0]),
            "server": plain_host(self.server.peer[0]),
            "server_side": plain_host(self.server.local[0]),
        }

    def _listen(self, data: DataChannel, side: str, host: str, peer: str) -> int | None:
        """A data listener of ``side`` on ``host`` for ``peer``; None (and 425 to the
        client) when no port of the range is free."""
        try:
            return data.listen(side, host, peer)
        except NetError as e:
            self.log("error", 1, f"data listener toward the {side}: {e}")
            self._drop_data("no listener")
            self._send_client(425, "Cannot open the data connection.")
            return None

    def _new_channel(self) -> DataChannel:
        settings = DataSettings(
            self.timeout,
            self.data_timeout,
            self.connect_timeout,
            (self.data_port_min, self.data_port_max),
        )
        channel = DataChannel(self, settings, self.channels.discard)
        self.channels.add(channel)
        return channel

    def _drop_data(self, reason: str) -> None:
        if self.data is not None:
            self.data.abort(reason)
            self.data = None

    def _client_passive(self, cmd: Command) -> None:
        extended = cmd.verb == "EPSV"
        addr = self._addresses()
        v6 = ":" in addr["client_side"]
        if extended and cmd.arg is not None:
            arg = cmd.arg.upper()
            if arg == "ALL":
                self._epsv_all = True
                self._send_client(200, "EPSV ALL ok.")
                return
            if arg not in ("1", "2"):
                self._send_client(501, "Unknown network protocol.")
                return
            if (arg == "2") != v6:
                self._send_client(522, f"Network protocol not supported, use ({2 if v6 else 1}).")
                return
        if not extended and (v6 or self._epsv_all):
            self._send_client(500 if v6 else 503, "Use EPSV.")
            return
        self._drop_data("replaced")
        data = self.data = self._new_channel()

        def listen() -> None:
            port = self._listen(data, "client", addr["client_side"], addr["client"])
            if port is None:
                return
            if extended:
                self._send_client(229, format_epsv_reply(port))
            else:
                self._send_client(227, format_pasv_reply(addr["client_side"], port))

        self._server_side(data, True, addr, listen)

    def _client_active(self, cmd: Command) -> None:
        extended = cmd.verb == "EPRT"
        addr = self._addresses()
        if self._epsv_all:
            self._send_client(503, f"{cmd.verb} is not allowed after EPSV ALL.")
            return
        try:
            host, port = parse_eprt(cmd.arg) if extended else parse_port(cmd.arg)
        except FtpViolation as e:
            self.violation(e.reason)
            self._send_client(501, f"Syntax error in the {cmd.verb} argument.")
            return
        if host != addr["client"]:
            self.violation(
                f"{cmd.verb} names {host}, not the client's address {addr['client']} "
                "(FTP bounce): refused"
            )
            self._send_client(500, f"Illegal {cmd.verb} command.")
            return
        if port < 1024 and not self.permit_low_data_ports:
            self.violation(f"{cmd.verb} names port {port}, below 1024: refused")
            self._send_client(500, f"Illegal {cmd.verb} command.")
            return
        self._drop_data("replaced")
        data = self.data = self._new_channel()
        data.connect_later("client", (host, port), (addr["client_side"], self.active_source_port))
        self._server_side(
            data, False, addr, lambda: self._send_client(200, f"{cmd.verb} command successful.")
        )

    def _server_side(
        self,
        data: DataChannel,
        client_passive: bool,
        addr: dict[str, str],
        then: Callable[[], None],
    ) -> None:
        """Prepare the server half (passive or active, per ``data_mode``), then call ``then``."""
        mode = self.data_mode
        if mode not in (FTP_DATA_KEEP, FTP_DATA_PASSIVE, FTP_DATA_ACTIVE):
            self.log("error", 1, f"policy: data_mode {mode!r} is not an FTP_DATA_* value")
            mode = FTP_DATA_KEEP
        passive = client_passive if mode == FTP_DATA_KEEP else mode == FTP_DATA_PASSIVE
        v6 = ":" in addr["server"]
        forging = self.session.decision.source is not None
        source = (addr["server_side"], 0) if forging else None

        def failed(reply: Reply) -> None:
            if data is self.data:
                self._drop_data("the server refused")
            self._send_client(reply.code, reply.lines)

        if passive:

            def passive_reply(_cmd: Command, reply: Reply) -> None:
                if data is not self.data:
                    return
                if reply.code not in (227, 229):
                    failed(reply)
                    return
                try:
                    if reply.code == 229:
                        host, port = addr["server"], parse_epsv_reply(reply.text)
                    else:
                        host, port = parse_pasv_reply(reply.text)
                except FtpViolation as e:
                    self.violation(f"server: {e.reason}")
                    self._drop_data("bad passive reply")
                    self._send_client(425, "Cannot open the data connection.")
                    return
                refused = None
                if host != addr["server"]:
                    refused = f"names {host}, not the server's address {addr['server']}"
                elif port < 1024 and not self.permit_low_data_ports:
                    # zfw would connect there from the client's address: a bounce.
                    refused = f"names port {port}, below 1024"
                if refused is not None:
                    self.violation(f"server's {reply.code} {refused}: refused")
                    self._drop_data("hostile passive reply")
                    self._send_client(425, "Cannot open the data connection.")
                    return
                data.connect_later("server", (host, port), source)
                then()

            self._send(Command("EPSV" if v6 else "PASV"), passive_reply)
            return
        port = self._listen(data, "server", addr["server_side"], addr["server"])
        if port is None:
            return

        def active_reply(_cmd: Command, reply: Reply) -> None:
            if data is not self.data:
                return
            if reply.code != 200:
                failed(reply)
                return
            then()

        arg = (
            format_eprt(addr["server_side"], port) if v6 else format_port(addr["server_side"], port)
        )
        self._send(Command("EPRT" if v6 else "PORT", arg), active_reply)

    def _transfer(self, cmd: Command) -> None:
        data = self.data
        if data is None or data.started or data.done:  # none, used, or expired
            self._send_client(425, "Use PORT or PASV first.")
            return
        self._send(cmd, self._transfer_reply)
        self._transfer_text = f"{cmd.verb} {cmd.arg or ''}".rstrip()
        data.start("server" if cmd.verb in UPLOAD_COMMANDS else "client")

    def state(self) -> str:
        """The transfer in progress, if any (``RETR big.bin: 1048576 bytes``)."""
        data = self.data
        if data is None or not data.started:
            return "control connection"
        up, down = data.bytes()
        return f"{self._transfer_text}: {up + down} bytes"

    def _transfer_reply(self, cmd: Command, reply: Reply) -> None:
        data = self.data
        if data is None:  # aborted meanwhile (ABOR): the reply goes on as it is
            self._pass(cmd, reply)
            return
        if 200 <= reply.code < 300:
            self._holding = True  # until the data has been delivered
            data.when_delivered(lambda ok: self._transfer_done(cmd, reply, data, ok))
            return
        if not data.done:
            data.abort(f"the server answered {reply.code}")
        self._transfer_done(cmd, reply, data, data.ok or reply.code >= 300)

    def _transfer_done(self, cmd: Command, reply: Reply, data: DataChannel, ok: bool) -> None:
        self._holding = False
        if data is self.data:
            self.data = None
        up, down = data.bytes()
        if ok:
            self._pass(cmd, reply)
        else:
            self._send_client(426, "Data connection failed; transfer aborted.")
        self.session.stats.count("ftp_transfers" if ok else "ftp_transfers_failed")
        self.log(
            "transfer",
            3,
            f"{cmd.verb} {cmd.arg or ''}".rstrip() + f" -> {reply.code if ok else 426}",
            client_bytes=up,
            server_bytes=down,
            data=data.end_reason or ("delivered" if ok else "failed"),
        )
        self._next()

    def _abort_transfer(self, cmd: Command) -> None:
        """``ABOR`` during a transfer: drop the data channel and tell the server at once."""
        data = self.data
        assert data is not None
        self._policy_log("ABOR during a transfer")
        data.abort("ABOR")
        self._send(Command("ABOR"), self._pass)
