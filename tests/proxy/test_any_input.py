"""No byte sequence and no order of connection events makes an exception escape a proxy.

Twisted would log such an exception as unhandled and drop the connection: a
crash a client or server could trigger at will. The inputs mix protocol
pieces (so that the proxies get deep into their states) with random bytes;
the events are those a real reactor can deliver (data only before the
peer's EOF, an EOF once, a close completing what the proxy asked for).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

import tests.proxy.harness as harness
from tests.proxy.harness import ProxyHarness
from zfw.ftp.policy import FTP_DATA_ACTIVE, FTP_DATA_PASSIVE
from zfw.http.policy import HTTP_HDR_POLICY, HTTP_HDR_REPLACE, HTTP_REQ_ACCEPT, HTTP_REQ_POLICY
from zfw.model import InbandRouter
from zfw.proxy.ftp import FtpProxy
from zfw.proxy.http import HttpProxy, HttpProxyNonTransparent
from zfw.proxy.tls import TlsTunnelProxy

HTTP_CLIENT = [
    b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\n", b"HEAD / HTTP/1.0\r\n",
    b"OPTIONS * HTTP/1.1\r\n", b"GET http://198.51.100.2/ HTTP/1.1\r\n",
    b"CONNECT 198.51.100.3:443 HTTP/1.1\r\n", b"Host: 198.51.100.2\r\n",
    b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n", b"Connection: upgrade\r\n", b"Upgrade: websocket\r\n",
    b"Expect: 100-continue\r\n", b"\r\n", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"X: y\r\n",
    b" \r\n", b"\n", b"\x00",
]  # fmt: skip
HTTP_SERVER = [
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.1 101 Switching\r\n",
    b"HTTP/1.0 204 No\r\n", b"HTTP/1.1 304 NM\r\n", b"HTTP/1.1 500 E\r\n",
    b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n",
    b"Connection: upgrade\r\n", b"Upgrade: websocket\r\n", b"\r\n", b"abc",
    b"3\r\nabc\r\n0\r\n\r\n", b"X: y\r\n", b"\n",
]  # fmt: skip
FTP_CLIENT = [
    b"USER a\r\n", b"PASS b\r\n", b"PASV\r\n", b"EPSV\r\n", b"EPSV ALL\r\n",
    b"PORT 192,0,2,2,156,64\r\n", b"EPRT |1|192.0.2.2|40000|\r\n", b"RETR x\r\n",
    b"STOR x\r\n", b"LIST\r\n", b"ABOR\r\n", b"QUIT\r\n", b"AUTH TLS\r\n", b"REST 5\r\n",
    b"TYPE I\r\n", b"FEAT\r\n", b"XYZ\r\n", b"\r\n", b"\n", b"\x00", b"a" * 600,
]  # fmt: skip
FTP_SERVER = [
    b"220 hi\r\n", b"331 p\r\n", b"230 ok\r\n",
    b"227 Entering Passive Mode (198,51,100,2,117,48).\r\n",
    b"229 Entering Extended Passive Mode (|||30000|)\r\n", b"200 ok\r\n", b"150 go\r\n",
    b"226 done\r\n", b"425 no\r\n", b"500 x\r\n", b"211-Features:\r\n", b" UTF8\r\n",
    b"211 End\r\n", b"421 bye\r\n", b"1234\r\n", b"\n", b"abc",
]  # fmt: skip


def _chunks(pieces: list[bytes]):
    piece = st.sampled_from(pieces)
    return st.lists(
        st.one_of(st.lists(piece, max_size=6).map(b"".join), st.binary(max_size=20)), max_size=8
    )


_EVENTS = st.lists(st.sampled_from("ccsseSECtT"), max_size=25)
_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def _drive(h: ProxyHarness, client: list[bytes], server: list[bytes], events: str) -> None:
    """Play ``events``: c/s data from the client/server, e/S their EOF, E the server's
    connection lost, C a pending connection completed, T one refused, t 70 s pass."""
    eof: set[int] = set()

    def open_(ep) -> bool:
        return not ep.lost and not ep.transport.disconnecting and id(ep) not in eof

    def lose(ep) -> None:
        if not ep.lost:
            ep.connectionLost(Failure(ConnectionDone()))

    for op in events:
        c = h.client
        s = h.servers[-1][0] if h.servers else None
        if op == "c" and client and open_(c):
            c.dataReceived(client.pop(0))
        elif op == "s" and server and s is not None and open_(s):
            s.dataReceived(server.pop(0))
        elif op == "e" and open_(c):
            eof.add(id(c))
            c.readConnectionLost()
        elif op == "S" and s is not None and open_(s):
            eof.add(id(s))
            s.readConnectionLost()
        elif op == "E" and s is not None:
            lose(s)
        elif op == "C" and h.pending:
            h.connect()
        elif op == "T" and h.pending:
            h.pending.pop(0)[1](Failure(ConnectionRefusedError()))
        elif op == "t":
            h.clock.advance(70)
        for ep in [c] + [ep for ep, _st in h.servers]:
            if ep.transport.disconnecting:  # the reactor completes what the proxy asked
                lose(ep)


class RewritingProxy(HttpProxy):
    """Every kind of policy hook on the path."""

    def config(self):
        def rewrite(request):
            request.url += "x"
            return HTTP_REQ_ACCEPT

        self.request["GET"] = (HTTP_REQ_POLICY, rewrite)
        self.request_header["Host"] = (HTTP_HDR_REPLACE, "b")
        self.response_header["X"] = (HTTP_HDR_POLICY, lambda n, v: (HTTP_HDR_REPLACE, v + "1"))
        self.response[("*", 500)] = (2, 403, "no")


def _http(mode: str, upgrade: bool) -> ProxyHarness:
    attrs = {"max_keepalive_requests": 3, "permit_upgrade": ("websocket",) if upgrade else ()}
    if mode == "transparent":
        return ProxyHarness(HttpProxy, ("198.51.100.2", 80), **attrs)
    if mode == "policy":
        return ProxyHarness(RewritingProxy, ("198.51.100.2", 80), **attrs)
    if mode == "tls-tunnel":
        attrs["connect_proxy"] = TlsTunnelProxy
    if mode == "parent":
        attrs["parent_proxy"] = ("198.51.100.9", 3128)
    return ProxyHarness(
        HttpProxyNonTransparent, ("192.0.2.1", 3128), router=InbandRouter(), **attrs
    )


@pytest.mark.parametrize("mode", ["transparent", "policy", "inband", "tls-tunnel", "parent"])
@_SETTINGS
@given(_chunks(HTTP_CLIENT), _chunks(HTTP_SERVER), _EVENTS, st.booleans())
def test_http_proxy(mode, client, server, events, upgrade):
    _drive(_http(mode, upgrade), list(client), list(server), events)


@pytest.mark.parametrize("data_mode", [None, FTP_DATA_PASSIVE, FTP_DATA_ACTIVE])
@_SETTINGS
@given(_chunks(FTP_CLIENT), _chunks(FTP_SERVER), _EVENTS)
def test_ftp_proxy(monkeypatch, data_mode, client, server, events):
    # Data channels listen through the reactor: a fake one (nothing is bound for real).
    monkeypatch.setattr(harness, "Clock", MemoryReactorClock)
    attrs = {} if data_mode is None else {"data_mode": data_mode}
    h = ProxyHarness(FtpProxy, ("198.51.100.2", 21), **attrs)
    _drive(h, list(client), list(server), "C" + "".join(events))
