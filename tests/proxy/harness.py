"""A proxy between a fake client and fake servers, on in-memory transports."""

from __future__ import annotations

import io

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from zfw.engine.decision import Decision
from zfw.engine.endpoint import Endpoint
from zfw.engine.idle import IdleWatch
from zfw.engine.session import Session
from zfw.log import Log, LogSpec
from zfw.model import Service

CLIENT = ("192.0.2.2", 5000)


class FakeAttempt:
    """What a connection attempt returns: ``cancel()`` gives up."""

    pending = True

    def cancel(self):
        self.pending = False


class ProxyHarness:
    """``proxy_class`` serving one session from CLIENT to ``destination``.

    The proxy's server connections stay pending until :meth:`connect`; the
    transports know their addresses (the server sees the client's, as with
    ``forge_addr``).
    """

    def __init__(
        self,
        proxy_class,
        destination,
        router=None,
        handover=None,
        like=None,
        encryption=None,
        **attrs,
    ):
        """``like``: another harness whose log and counters this one's session shares,
        as sessions of one service do; ``encryption``: the service's policy."""
        self.clock = Clock()
        self.out = like.out if like is not None else io.StringIO()
        self._log = like._log if like is not None else Log(LogSpec.parse("*:9"), self.out)
        self.closed = []
        self.pending = []  # (on_connected, on_failed) of connection attempts
        self.servers = []
        self.decisions = []  # the decision of each connection attempt (None: the session's)
        self.destination = destination
        session = Session(
            f"i/{proxy_class.log_tag}:1",
            Service(
                proxy_class.log_tag,
                proxy_class,
                **({"router": router} if router else {}),
                **({"encryption": encryption} if encryption else {}),
            ),
            None,
            CLIENT,
            destination,
            Decision(True, "ok", target=destination, source=(CLIENT[0], 0)),
            self._log,
            self.clock,
            self.closed.append,
            IdleWatch(self.clock),
            stats=like.proxy.session.stats if like is not None else None,
        )
        session.connect_server = self._connect
        self.proxy = proxy_class(session)
        for k, v in attrs.items():
            setattr(self.proxy, k, v)
        self.proxy.configure()
        self.client = Endpoint("client")
        self.ct = StringTransport(
            hostAddress=IPv4Address("TCP", *destination), peerAddress=IPv4Address("TCP", *CLIENT)
        )
        self.client.makeConnection(self.ct)
        session.track(self.client)
        self.proxy.start(self.client, handover)

    def _connect(self, timeout, on_connected, on_failed, decision=None):
        self.pending.append((on_connected, on_failed))
        self.decisions.append(decision)
        return FakeAttempt()

    def connect(self):
        """Complete the pending connection attempt; the new server transport."""
        on_connected, _failed = self.pending.pop(0)
        ep = Endpoint("server")
        st = StringTransport(
            hostAddress=IPv4Address("TCP", CLIENT[0], 40000),
            peerAddress=IPv4Address("TCP", *self.destination),
        )
        ep.makeConnection(st)
        self.proxy.session.track(ep)
        on_connected(ep)
        self.servers.append((ep, st))
        return st

    def send(self, data):
        self.client.dataReceived(data)

    def reply(self, data, n=-1):
        ep, _st = self.servers[n]
        ep.dataReceived(data)

    def to_client(self):
        data = self.ct.value()
        self.ct.clear()
        return data

    def to_server(self, n=-1):
        _ep, st = self.servers[n]
        data = st.value()
        st.clear()
        return data

    def log(self):
        return self.out.getvalue()
