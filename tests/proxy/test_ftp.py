"""FtpProxy's control channel with in-memory transports: policy, checks, violations."""

from __future__ import annotations

import inspect

import pytest

from tests.proxy.harness import CLIENT, ProxyHarness
from zfw.ftp.policy import (
    FTP_DATA_PASSIVE,
    FTP_REQ_ABORT,
    FTP_REQ_POLICY,
    FTP_REQ_REJECT,
    FTP_RSP_POLICY,
    FTP_RSP_REJECT,
)
from zfw.proxy.ftp import FtpProxy, FtpProxyAnonRO, FtpProxyRO

SERVER = ("198.51.100.2", 21)


class Ftp(ProxyHarness):
    def __init__(self, proxy_class=FtpProxy, **attrs):
        super().__init__(proxy_class, SERVER, **attrs)
        self.connect()
        self.reply(b"220 ready\r\n")
        assert self.to_client() == b"220 ready\r\n"

    def command(self, line: bytes, reply: bytes | None = None) -> bytes:
        """Send ``line``; answer what reaches the server with ``reply``; what the client got."""
        self.send(line)
        if reply is not None:
            self.reply(reply)
        return self.to_client()


def test_commands_and_replies_pass_in_order():
    h = Ftp()
    h.send(b"USER zfw\r\nPASS secret\r\n")
    assert h.to_server() == b"USER zfw\r\n"  # one at a time
    h.reply(b"331 password please\r\n")
    assert h.to_server() == b"PASS secret\r\n"
    h.reply(b"230-Welcome\r\n230 in\r\n")
    assert h.to_client() == b"331 password please\r\n230-Welcome\r\n230 in\r\n"
    assert "PASS ****" in h.log() and "secret" not in h.log()


def test_unknown_and_malformed_commands_get_500_and_the_session_goes_on():
    h = Ftp()
    assert h.command(b"XYZZ\r\n") == b"500 Command not recognized.\r\n"
    assert h.command(b"1234 x\r\n") == b"500 Syntax error, command unrecognized.\r\n"
    assert "ftp.violation(1)" in h.log()
    assert h.command(b"NOOP\r\n", b"200 ok\r\n") == b"200 ok\r\n"


def test_a_framing_violation_closes_the_session():
    h = Ftp()
    h.send(b"NOOP\n")
    assert h.to_client().startswith(b"500 ")
    assert h.ct.disconnecting and h.closed
    assert "bare LF" in h.log()


def test_tls_is_rejected_even_if_the_policy_accepts_it():
    class TlsPlease(FtpProxy):
        def config(self):
            self.request["AUTH"] = 1

    h = Ftp(TlsPlease)
    assert h.command(b"AUTH TLS\r\n") == b"534 TLS is not available through this firewall.\r\n"
    assert h.to_server() == b""


def test_read_only_preset_rejects_writes_with_550():
    h = Ftp(FtpProxyRO)
    for line in (b"STOR x\r\n", b"DELE x\r\n", b"RNFR x\r\n", b"MKD x\r\n"):
        assert h.command(line).startswith(b"550 ")
    assert h.to_server() == b""


def test_anonymous_only_preset():
    h = Ftp(FtpProxyAnonRO)
    assert h.command(b"USER root\r\n") == b"530 Only anonymous logins are permitted.\r\n"
    assert h.command(b"USER anonymous\r\n", b"331 ok\r\n") == b"331 ok\r\n"


def test_policy_functions_and_abort():
    seen = []

    class P(FtpProxy):
        def config(self):
            self.request["CWD"] = (FTP_REQ_POLICY, self.cwd)
            self.request["SITE"] = FTP_REQ_ABORT

        def cwd(self, cmd):
            seen.append(cmd.arg)
            return (FTP_REQ_REJECT, 550, "Not there.") if cmd.arg == "/etc" else 1

    h = Ftp(P)
    assert h.command(b"CWD /etc\r\n") == b"550 Not there.\r\n"
    assert h.command(b"CWD /pub\r\n", b"250 ok\r\n") == b"250 ok\r\n"
    assert seen == ["/etc", "/pub"]
    assert h.command(b"SITE CHMOD 777 x\r\n").startswith(b"421 ")
    assert h.closed


def test_response_policy_replaces_a_reply():
    class P(FtpProxy):
        def config(self):
            self.response[("SYST", "*")] = (FTP_RSP_REJECT, 502, "Not telling.")

    h = Ftp(P)
    assert h.command(b"SYST\r\n", b"215 UNIX Type: L8\r\n") == b"502 Not telling.\r\n"


def test_feat_is_filtered_to_the_permitted_features():
    h = Ftp(FtpProxyRO)
    got = h.command(
        b"FEAT\r\n", b"211-Features:\r\n MDTM\r\n AUTH TLS\r\n MFMT\r\n SIZE\r\n211 End\r\n"
    )
    assert got == b"211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n"


def test_long_user_names_and_passwords_are_refused():
    h = Ftp(max_username_length=8, max_password_length=8)
    assert h.command(b"USER " + b"u" * 9 + b"\r\n").startswith(b"501 ")
    assert h.command(b"PASS " + b"p" * 9 + b"\r\n").startswith(b"501 ")
    assert h.to_server() == b""


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"PORT 203,0,113,5,4,1\r\n", "not the client's address 192.0.2.2 (FTP bounce)"),
        (b"EPRT |1|203.0.113.5|1025|\r\n", "(FTP bounce)"),
        (b"EPRT |2|2001:db8:1::2|1025|\r\n", "(FTP bounce)"),
        (b"PORT 192,0,2,2,0,25\r\n", "names port 25, below 1024"),
        (b"PORT 192,0,2,2,1\r\n", "malformed PORT address"),
        (b"EPRT |1|192.0.2.2|0|\r\n", "EPRT port '0'"),
    ],
)
def test_bounce_low_ports_and_malformed_addresses_are_refused(line, reason):
    h = Ftp()
    got = h.command(line)
    assert got.startswith(b"500 ") or got.startswith(b"501 ")
    assert reason in h.log() and "ftp.violation(1)" in h.log()
    assert h.to_server() == b""


def test_a_hostile_227_is_refused():
    h = Ftp(data_mode=FTP_DATA_PASSIVE)
    h.send(b"PORT 192,0,2,2,156,64\r\n")
    assert h.to_server() == b"PASV\r\n"
    h.reply(b"227 Entering Passive Mode (203,0,113,9,4,1).\r\n")
    assert h.to_client() == b"425 Cannot open the data connection.\r\n"
    assert "names 203.0.113.9, not the server's address 198.51.100.2: refused" in h.log()
    assert h.proxy.data is None and not h.proxy.channels


def test_port_with_a_passive_server_side():
    h = Ftp(data_mode=FTP_DATA_PASSIVE)
    h.send(b"PORT 192,0,2,2,156,64\r\n")
    h.reply(b"227 Entering Passive Mode (198,51,100,2,117,48).\r\n")
    assert h.to_client() == b"200 PORT command successful.\r\n"
    data = h.proxy.data
    assert data.targets == {
        "client": ((CLIENT[0], 40000), (SERVER[0], 20)),
        "server": ((SERVER[0], 30000), (CLIENT[0], 0)),
    }


def test_a_prepared_data_channel_expires():
    h = Ftp(data_mode=FTP_DATA_PASSIVE, data_timeout=10)
    h.send(b"PORT 192,0,2,2,156,64\r\n")
    h.reply(b"227 Entering Passive Mode (198,51,100,2,117,48).\r\n")
    assert h.to_client() == b"200 PORT command successful.\r\n"
    h.clock.advance(11)
    assert not h.proxy.channels
    assert h.command(b"RETR x\r\n") == b"425 Use PORT or PASV first.\r\n"


def test_a_transfer_without_port_or_pasv_is_refused():
    h = Ftp()
    assert h.command(b"RETR x\r\n") == b"425 Use PORT or PASV first.\r\n"


def test_the_server_breaking_the_protocol_ends_the_session():
    h = Ftp()
    h.reply(b"200 nobody asked\r\n")
    assert h.to_client().startswith(b"421 ")
    assert "reply 200 with no command pending" in h.log() and h.closed


def test_a_preliminary_reply_to_a_plain_command_is_a_violation():
    h = Ftp()
    h.command(b"CWD x\r\n", b"150 what\r\n")
    assert "preliminary reply 150 to CWD" in h.log() and h.closed


def test_epsv_all_forbids_port_and_pasv():
    h = Ftp()
    assert h.command(b"EPSV ALL\r\n") == b"200 EPSV ALL ok.\r\n"
    assert h.command(b"PORT 192,0,2,2,156,64\r\n").startswith(b"503 ")
    assert h.command(b"PASV\r\n").startswith(b"503 ")
    assert h.command(b"EPSV 2\r\n").startswith(b"522 ")


def test_too_many_queued_commands_pause_the_client():
    h = Ftp(max_queued_commands=4)
    h.send(b"NOOP\r\n" * 8)
    assert h.ct.producerState == "paused"
    for _ in range(5):
        h.reply(b"200 ok\r\n")
    assert h.ct.producerState == "producing"


def test_idle_control_channel_is_closed():
    h = Ftp(timeout=5)
    h.proxy.idle_timeout = 5
    h.clock.pump([1] * 7)
    assert h.closed and b"421 Timeout" in h.to_client()


def test_a_227_naming_a_low_port_is_refused():
    """The address is the server's, but zfw would connect to its port 25 from the
    client's address: a bounce through the firewall."""
    h = Ftp(data_mode=FTP_DATA_PASSIVE)
    h.send(b"PORT 192,0,2,2,156,64\r\n")
    h.reply(b"227 Entering Passive Mode (198,51,100,2,0,25).\r\n")
    assert h.to_client() == b"425 Cannot open the data connection.\r\n"
    assert "server's 227 names port 25, below 1024: refused" in h.log()
    assert h.proxy.data is None


def test_a_229_naming_a_low_port_is_refused():
    h = Ftp(data_mode=FTP_DATA_PASSIVE)
    h.send(b"PORT 192,0,2,2,156,64\r\n")
    h.reply(b"227 Entering Passive Mode (198,51,100,2,0,22).\r\n")
    assert "below 1024" in h.log()


def test_a_second_preliminary_reply_is_a_violation():
    h = Ftp()
    h.command(b"REIN\r\n", b"120 soon\r\n120 soon, really\r\n")
    assert "a second preliminary reply 120 to REIN" in h.log() and h.closed


def test_site_is_refused_by_default_and_a_policy_may_accept_it():
    h = Ftp()
    assert h.command(b"SITE EXEC /bin/sh\r\n") == (
        b"502 SITE is not permitted through this firewall.\r\n"
    )
    assert h.to_server() == b""
    from zfw.ftp.policy import FTP_REQ_ACCEPT

    h = Ftp()
    h.proxy.request["SITE"] = FTP_REQ_ACCEPT
    assert h.command(b"SITE CHMOD 644 x\r\n", b"200 ok\r\n") == b"200 ok\r\n"


@pytest.mark.parametrize("arg", [b"100", b"0"])
def test_rest_with_an_offset_passes(arg):
    h = Ftp()
    assert h.command(b"REST " + arg + b"\r\n", b"350 ok\r\n") == b"350 ok\r\n"


@pytest.mark.parametrize("arg", [b"-1", b"1e9", b"abc", b"", b"12 34"])
def test_rest_without_digits_is_refused(arg):
    h = Ftp()
    assert h.command(b"REST " + arg + b"\r\n").startswith(b"501 REST takes a byte offset.")
    assert h.to_server() == b""


def test_a_reply_that_never_ends_meets_its_deadline():
    """One byte every half second would keep the idle timeout from ever firing."""
    h = Ftp(line_timeout=5)
    h.send(b"NOOP\r\n")
    h.to_server()
    for _ in range(12):
        if h.closed:
            break
        h.reply(b"2")
        h.clock.pump([0.5] * 2)
    assert h.closed and "server's reply not complete within 5 s" in h.log()
    assert b"421 Timeout" in h.to_client()


def test_a_command_line_that_never_ends_meets_its_deadline():
    h = Ftp(line_timeout=3)
    for _ in range(10):
        if h.closed:
            break
        h.send(b"N")
        h.clock.pump([0.5] * 2)
    assert h.closed and "client's command not complete within 3 s" in h.log()


def test_a_policy_function_answering_wrongly_refuses_that_command_and_the_session_goes_on():
    class P(FtpProxy):
        def config(self):
            self.request["CWD"] = (FTP_REQ_POLICY, self.cwd)
            self.response[("PWD", "*")] = (FTP_RSP_POLICY, self.pwd)

        def cwd(self, cmd):
            return cmd.arg == "/pub"  # a bool: a mistake

        def pwd(self, cmd, reply):
            raise RuntimeError("no")

    h = Ftp(P)
    assert h.command(b"CWD /pub\r\n") == b"451 Local error in the firewall policy.\r\n"
    line = inspect.getsourcelines(P.cwd)[1]
    assert f"{__file__}:{line}: request['CWD']: POLICY function " in h.log()
    assert "returned True, not an FTP_REQ_* action; refused" in h.log()
    assert h.command(b"NOOP\r\n", b"200 ok\r\n") == b"200 ok\r\n"
    assert h.command(b"PWD\r\n", b'257 "/"\r\n') == b"451 Local error in the firewall policy.\r\n"
    assert "response[('PWD', 257)]: POLICY function " in h.log()
    assert "raised RuntimeError: no" in h.log()
    assert h.proxy.session.stats.proxy["policy_failures"] == 2 and not h.closed
