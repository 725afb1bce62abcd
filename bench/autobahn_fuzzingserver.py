"""The Autobahn testsuite's fuzzing server, as the upstream of bench/autobahn.sh.

Usage: python2.7 bench/autobahn_fuzzingserver.py SPEC.json

It tests WebSocket clients: here a conforming client (the testsuite's own testee
client) behind each proxy, so what is judged is the proxy's handling of what a server
sends, violations included. The check of the port in the Host field is off, as in
autobahn_echo.py.
"""
import json
import sys

from autobahn.twisted.websocket import listenWS
from autobahntestsuite.fuzzing import FuzzingServerFactory
from twisted.internet import reactor


def main():
    spec = json.load(open(sys.argv[1]))
    factory = FuzzingServerFactory(spec)
    factory.externalPort = None
    listenWS(factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
