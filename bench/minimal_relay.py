"""The baseline: a minimal transparent Twisted relay, without any policy work.

    python bench/minimal_relay.py PORT [--half-close]

Accepts TPROXY-diverted connections on PORT, connects to the original
destination from the client's address (with zfw.net.connect, the same
socket code zfw uses) and relays with backpressure both ways. zfw's
PlugProxy is measured against it in the same run.

Without options it closes both connections when either side closes, as a
minimal relay does. With ``--half-close`` it passes a half-close on (and
closes when both sides have), as PlugProxy must: the difference between
the two is the price of half-close, the rest of PlugProxy's gap is the
engine's.
"""

import socket
import sys

from twisted.internet import reactor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.python import log
from zope.interface import implementer

from zfw import net

HALF_CLOSE = "--half-close" in sys.argv


def half_closeable(cls):
    """Twisted reports a FIN as readConnectionLost only to IHalfCloseableProtocol."""
    return implementer(IHalfCloseableProtocol)(cls) if HALF_CLOSE else cls


@half_closeable
class Side(Protocol):
    peer = None
    eof = False

    def dataReceived(self, data):
        self.peer.transport.write(data)

    def readConnectionLost(self):
        self.eof = True
        if self.peer.eof:
            self.transport.loseConnection()
            self.peer.transport.loseConnection()
        else:
            self.peer.transport.unregisterProducer()
            self.peer.transport.loseWriteConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        if self.peer is not None:
            self.peer.transport.unregisterProducer()
            self.peer.transport.loseConnection()


class Inbound(Side):
    def connectionMade(self):
        self.transport.pauseProducing()
        dest = self.transport.getHost()
        source = (self.transport.getPeer().host, 0)
        net.connect(reactor, dest.host, dest.port, OutboundFactory(self), source)


class OutboundFactory(ClientFactory):
    noisy = False

    def __init__(self, inbound):
        self.inbound = inbound

    def buildProtocol(self, addr):
        p = Outbound()
        p.factory = self
        return p

    def clientConnectionFailed(self, connector, reason):
        self.inbound.transport.loseConnection()


class Outbound(Side):
    def connectionMade(self):
        inbound = self.factory.inbound
        self.peer, inbound.peer = inbound, self
        self.transport.registerProducer(inbound.transport, True)
        inbound.transport.registerProducer(self.transport, True)
        inbound.transport.resumeProducing()


def main():
    log.startLogging(sys.stderr, setStdout=False)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    net.set_transparent(s)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    s.listen(511)
    s.setblocking(False)
    f = Factory.forProtocol(Inbound)
    f.noisy = False
    reactor.adoptStreamPort(s.fileno(), socket.AF_INET, f)
    s.close()
    print("ready", flush=True)
    reactor.run()


main()
