"""The Autobahn testsuite's own WebSocket echo server, as the upstream of bench/autobahn.sh.

Usage: python2.7 bench/autobahn_echo.py PORT

Echoes every message. permessage-deflate is accepted when offered, so that the
compression cases (12.*, 13.*) run through the proxies as well. The check of the
port in the Host field is off: each proxy forwards its own Host (nginx drops the
port, HAProxy and Switchyard keep the client's), and that is not what is measured.
"""
import sys

from autobahn.twisted.websocket import (WebSocketServerFactory,
                                        WebSocketServerProtocol, listenWS)
from autobahn.websocket.compress import (PerMessageDeflateOffer,
                                         PerMessageDeflateOfferAccept)
from twisted.internet import reactor


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload, is_binary):
        self.sendMessage(payload, is_binary)


def accept_deflate(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def main():
    port = int(sys.argv[1])
    factory = WebSocketServerFactory("ws://127.0.0.1:%d" % port)
    factory.externalPort = None
    factory.protocol = Echo
    factory.setProtocolOptions(failByDrop=False,
                               perMessageCompressionAccept=accept_deflate)
    listenWS(factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
