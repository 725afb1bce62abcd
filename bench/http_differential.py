#!/usr/bin/env python3
"""HTTP/1.1 request differential through a proxy (run by bench/differential.sh).

Mutated requests (pipelines, Content-Length and chunked bodies, trailers, upgrades,
mangled by inserted, deleted and replaced bytes, repeated lines and flipped case) go
to the proxy, each on a connection of its own. The upstream reads every connection
with h11, a strict parser, and answers each request it completes. Afterwards every
upstream connection's bytes are read again by h11 and by llhttp (httptools, the
parser of Node.js): a proxy must send its upstream only what both read without error
and as the same requests (method, target, body). Where they disagree, a server behind
the proxy could read requests the proxy never meant to send: request smuggling.

    http_differential.py backend --port P --log FILE
    http_differential.py drive --addr HOST:PORT --seed S --inputs N --out FILE
    http_differential.py report --work DIR --targets "nginx haproxy switchyard" --out FILE
"""

import argparse
import collections
import concurrent.futures
import datetime
import json
import os
import random
import re
import socket
import sys
import threading

import h11
import httptools

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    b"abcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nTE: trailers\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a:80\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n",
    # Upgrades the upstream refuses (it answers 200): what follows is the next request.
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nPOST /after HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
]

TOKENS = [
    b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b",", b";", b"0", b"1", b"f", b"chunked",
    b"Chunked", b"identity", b"gzip", b"Content-Length", b"Transfer-Encoding",
    b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"\x00", b"\x0b", b"\x0c",
    b"\x7f", b"\xff", b'"', b"=", b"HTTP/1.1", b"HTTP/1.0", b"\r\n\r\n", b"Host: b\r\n",
    b" chunked", b"-", b"+", b"\\", b"Connection: keep-alive\r\n", b"Connection: close\r\n",
    b"Upgrade: x\r\n",
]


def mutate(rng, data, tokens=None):
    """One to four random edits of `data`, inserting from `tokens` (the request ones by
    default)."""
    tokens = tokens or TOKENS
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op, p = rng.random(), rng.randint(0, len(b))
        if op < 0.45:
            b[p:p] = rng.choice(tokens)
        elif op < 0.65 and len(b) > 1:
            del b[p:min(len(b), p + rng.randint(1, 4))]
        elif op < 0.8 and p < len(b):
            b[p] = rng.randrange(256) if rng.random() < 0.3 else rng.choice(b"\r\n :;,\t0aA")
        elif op < 0.9:
            lines = bytes(b).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            b = bytearray(b"\r\n".join(lines))
        else:
            q = min(len(b), p + rng.randint(1, 8))
            b[p:q] = bytes(b[p:q]).swapcase()
    return bytes(b)


# ---------------------------------------------------------------- sockets
def serve_forever(port, serve):
    """Accepts on 127.0.0.1:`port` and runs `serve(sock)` for each connection in a
    thread of its own."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


def exchange(addr, data):
    """Sends `data` on a fresh connection to `addr` (HOST:PORT) and returns what comes
    back until the proxy closes or is silent for 0.6 s."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(0.6)
    out = b""
    try:
        sock.sendall(data)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    sock.close()
    return out


# ---------------------------------------------------------------- upstream
def backend(port, log_path):
    """Reads each connection with h11 and answers every request it completes with 200
    (an upgrade is thereby refused); logs the connection's bytes when it ends."""
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def serve(sock):
        conn = h11.Connection(h11.SERVER)
        raw, err = b"", None
        sock.settimeout(2.0)
        try:
            while True:
                data = sock.recv(65536)
                raw += data
                conn.receive_data(data)
                if not data:
                    break
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA or event is h11.PAUSED:
                        break
                    if isinstance(event, h11.ConnectionClosed):
                        raise EOFError
                    if isinstance(event, h11.EndOfMessage):
                        sock.sendall(
                            conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
                            + conn.send(h11.Data(data=b"ok"))
                            + conn.send(h11.EndOfMessage())
                        )
                        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                            raise EOFError
                        conn.start_next_cycle()
        except EOFError:
            pass
        except socket.timeout:
            err = "timeout"
        except h11.RemoteProtocolError as e:
            err = "h11: %s" % e
        except OSError as e:
            err = "%s: %s" % (type(e).__name__, e)
        with lock:
            log.write(json.dumps({"raw": raw.decode("latin1"), "err": err}) + "\n")
        sock.close()

    serve_forever(port, serve)


# ---------------------------------------------------------------- clients
def drive(addr, seed, count, out_path):
    rng = random.Random(seed)
    inputs = [mutate(rng, rng.choice(SEEDS)) for _ in range(count)]

    def one(data):
        out = exchange(addr, data)
        return {"in": data.decode("latin1"), "out": out.decode("latin1")}

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, inputs))
    json.dump(results, open(out_path, "w"))


# ---------------------------------------------------------------- the two readings
def h11_reading(raw):
    """The requests h11 reads from `raw` (method, target, body), and its error if any."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    conn.receive_data(b"")
    requests, current = [], None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            return requests, str(e)
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return requests, None
        if isinstance(event, h11.Request):
            current = [event.method.decode(), event.target.decode("latin1"), b""]
        elif isinstance(event, h11.Data):
            current[2] += event.data
        elif isinstance(event, h11.EndOfMessage):
            requests.append(tuple(current))
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return requests, None
            conn.start_next_cycle()


class _LlhttpRequests:
    def __init__(self):
        self.requests, self.url, self.body, self.parser = [], b"", b"", None

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        method = self.parser.get_method().decode()
        self.requests.append((method, self.url.decode("latin1"), self.body))
        self.url, self.body = b"", b""


def llhttp_reading(raw):
    """The requests llhttp reads from `raw`, and its error if any. llhttp stops at a
    request that asks for an upgrade; the upstream here never switches (it answers
    200), so reading goes on after it, as it does on the wire."""
    requests = []
    while raw:
        sink = _LlhttpRequests()
        sink.parser = httptools.HttpRequestParser(sink)
        try:
            sink.parser.feed_data(raw)
            raw = b""
        except httptools.HttpParserUpgrade as e:
            offset = e.args[0] if e.args and isinstance(e.args[0], int) else len(raw)
            raw = raw[offset:] if sink.requests else b""
        except httptools.HttpParserError as e:
            return requests + sink.requests, "%s: %s" % (type(e).__name__, e)
        requests += sink.requests
    return requests, None


def first_difference(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    return min(len(ours), len(theirs))


def judge(record):
    """How one upstream connection's bytes read: None when h11 and llhttp read the
    same requests without error; else "two ways" (both read it, differently: what
    smuggling needs), "refused by one" or "refused by both", with a description.
    A truncated last body (the client left mid-body and the proxy closed) is not a
    fault; llhttp's closed list of methods is its own limit (any token is a method)."""
    raw = record["raw"].encode("latin1")
    ours, our_error = h11_reading(raw)
    theirs, their_error = llhttp_reading(raw)
    if our_error is not None and "without sending complete message body" in our_error:
        our_error, theirs = None, theirs[: len(ours)]
    if their_error is not None and "method" in their_error.lower():
        their_error, theirs = None, ours
    if our_error and their_error:
        return "refused by both", "h11: %s; llhttp: %s" % (our_error, their_error), len(ours)
    if our_error or their_error:
        return "refused by one", "h11: %s" % our_error if our_error else "llhttp: %s" % their_error, len(ours)
    if ours != theirs:
        i = first_difference(ours, theirs)
        return "two ways", "request %d: h11 %r, llhttp %r" % (
            i + 1, ours[i] if i < len(ours) else None, theirs[i] if i < len(theirs) else None), len(ours)
    return None, None, len(ours)


# ---------------------------------------------------------------- responses
# The other direction: the upstream answers each request with a mutated response, and
# what reaches the client is read by h11 and llhttp. Each request's target carries an id
# that the upstream writes into its response body, so a response that reaches another
# client than the one that asked (a desynchronised upstream connection put back in
# the pool) shows up.

RESPONSE_SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{body}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{hex};e=1\r\n{body}\r\n0\r\nT: v\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{body}",
    b"HTTP/1.1 204 No Content\r\nX-Id: {body}\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: {n}\r\nX-Id: {body}\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: {n}\r\n\r\n{body}",
    b"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{hex}\r\n{body}\r\n0\r\n\r\n",
]

RESPONSE_TOKENS = TOKENS + [
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 ", b"200", b"101", b"1000", b" OK",
    b"Content-Length: 0\r\n", b"Content-Length: 99\r\n", b"Connection: keep-alive\r\n",
]


def response_backend(port, seed, log_path):
    """Answers each request head on a connection with a mutated response (a fresh one
    per request, from `seed` and the request's id), and logs what it sent."""
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def answer(target):
        ident = target.strip(b"/")
        rng = random.Random("%d/%s" % (seed, ident.decode("latin1")))
        body = b"id=" + ident + b";"
        template = rng.choice(RESPONSE_SEEDS)
        raw = (template.replace(b"{n}", str(len(body)).encode())
               .replace(b"{hex}", b"%x" % len(body)).replace(b"{body}", body))
        return mutate(rng, raw, RESPONSE_TOKENS)

    def serve(sock):
        buf = b""
        sock.settimeout(2.0)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                parts = head.split(b" ")
                response = answer(parts[1] if len(parts) > 1 else b"?")
                with lock:
                    log.write(json.dumps({"sent": response.decode("latin1")}) + "\n")
                sock.sendall(response)
        except OSError:
            pass
        finally:
            sock.close()

    serve_forever(port, serve)


def response_drive(addr, count, out_path):
    """`count` clients, each sends one GET for its own id and keeps what comes back."""

    def one(ident):
        out = exchange(addr, b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % ident.encode())
        return {"id": ident, "out": out.decode("latin1")}

    # Ids that no mutation of one turns into another: eight letters each.
    rng = random.Random(count)
    idents = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) for _ in range(count)]
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, idents))
    json.dump(results, open(out_path, "w"))


def h11_response_reading(ident, raw):
    """The final responses h11 reads from `raw` as the answer to `GET /ident` (status,
    body), bytes it found after the response, and its error if any."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/" + ident, headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    responses, current = [], None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            return responses, b"", str(e)
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return responses, b"", None
        if event is h11.PAUSED:
            return responses, conn.trailing_data[0], None
        if isinstance(event, h11.Response):
            current = [event.status_code, b""]
        elif isinstance(event, h11.Data):
            current[1] += event.data
        elif isinstance(event, h11.EndOfMessage):
            responses.append(tuple(current))


class _LlhttpResponses:
    def __init__(self):
        self.responses, self.body, self.parser = [], b"", None
        self.names, self.open = [], False

    def on_header(self, name, value):
        self.names.append(name.lower())

    def on_headers_complete(self):
        self.open = True

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        status = self.parser.get_status_code()
        if status >= 200 or status == 101:
            self.responses.append((status, self.body))
        self.body, self.names, self.open = b"", [], False

    def on_close(self):
        """httptools has no way to say the stream ended: a body delimited by the close
        (neither Content-Length nor Transfer-Encoding) ends here."""
        if self.open and not {b"content-length", b"transfer-encoding"} & set(self.names):
            self.on_message_complete()


def llhttp_response_reading(raw):
    """The final responses llhttp reads from `raw`, and its error if any."""
    sink = _LlhttpResponses()
    sink.parser = httptools.HttpResponseParser(sink)
    try:
        sink.parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        return sink.responses, None
    except httptools.HttpParserError as e:
        return sink.responses, "%s: %s" % (type(e).__name__, e)
    sink.on_close()
    return sink.responses, None


def judge_response(record, all_ids):
    """What is wrong with what one client received, or None: ("two ways" | "refused by
    one" | "refused by both" | "extra bytes" | "another client's", description).
    `all_ids` holds every client's id: another one in this client's answer means a
    response reached a client that did not ask for it."""
    raw = record["out"].encode("latin1")
    ident = record["id"]
    if not raw:
        # No answer yet when the client gave up: an upstream head still incomplete.
        return None, None
    ours, extra, our_error = h11_response_reading(ident, raw)
    theirs, their_error = llhttp_response_reading(raw)
    if our_error is not None and ("without sending complete message body" in our_error
                                  or "ConnectionClosed when role=SERVER and state=SEND_RESPONSE" in our_error):
        # A body or a final head still arriving when the client gave up (the upstream
        # sent less than it announced and kept the connection): judged as it stands.
        our_error, theirs = None, theirs[: len(ours)]
    foreign = set(re.findall(rb"id=([a-z]{8});", raw)) - {ident.encode()}
    if foreign & all_ids:
        return "another client's", "ids %s in the answer to %s" % (sorted(foreign & all_ids), ident)
    if our_error and their_error:
        return "refused by both", "h11: %s; llhttp: %s" % (our_error, their_error)
    if our_error or their_error:
        return "refused by one", "h11: %s" % our_error if our_error else "llhttp: %s" % their_error
    if ours != theirs:
        return "two ways", "h11 %r, llhttp %r" % (ours[:3], theirs[:3])
    if extra or len(ours) > 1:
        return "extra bytes", "%d responses, then %r" % (len(ours), extra[:60])
    return None, None


def response_report(work, targets):
    """Lines of the report for the response direction."""
    kinds = ["two ways", "refused by one", "refused by both", "extra bytes", "another client's"]
    lines = [
        "",
        "### Responses: mutated answers from the upstream, what reached the client",
        "",
        "| target | clients | answered, by status class (first final response) | read two ways |"
        " refused by one parser | by both | more than one response | another client's answer |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    examples, bad_switchyard = {}, 0
    for target in targets.split():
        path = os.path.join(work, "response-clients-%s.json" % target)
        if not os.path.exists(path):
            continue
        clients = json.load(open(path))
        all_ids = {c["id"].encode() for c in clients}
        counts, classes, bad = collections.Counter(), collections.Counter(), []
        for record in clients:
            finals = re.findall(r"HTTP/1\.[01] ([2-5])\d\d", record["out"])
            classes[finals[0] + "xx" if finals else "none"] += 1
            kind, problem = judge_response(record, all_ids)
            if kind:
                counts[kind] += 1
                bad.append((kind, problem, record["out"]))
        if target == "switchyard":
            bad_switchyard = len(bad)
        shown = ", ".join("%s %d" % (k, v) for k, v in sorted(classes.items()))
        lines.append("| %s | %d | %s | %s |" % (
            target, len(clients), shown, " | ".join(str(counts[k]) for k in kinds)))
        if bad:
            bad.sort(key=lambda b: kinds.index(b[0]))
            examples[target] = distinct(bad)
    for target, bad in examples.items():
        lines += ["", "Examples, responses, %s:" % target, ""]
        for kind, problem, raw in bad:
            lines.append("- %s, %s: `%r`" % (kind, problem[:200], raw.encode("latin1")[:240]))
    return lines, bad_switchyard


# `Upgrade` fields, for the count of requests offering cleartext HTTP/2 upstream: a
# server that switches takes the client past every rule of the proxy ("h2c smuggling").
UPGRADE_FIELD = re.compile(r"(?im)^upgrade:([^\r\n]*)")


def h2c_offers(raw):
    """How many `Upgrade` fields in `raw` offer `h2c` (or `h2c/version`) as a loose
    reader sees them: split on commas, semicolons, quotes and whitespace."""
    count = 0
    for value in UPGRADE_FIELD.findall(raw):
        pieces = re.split(r"[,;\"\s]+", value)
        if any(p.split("/")[0].lower() == "h2c" for p in pieces):
            count += 1
    return count


def distinct(bad, count=8):
    """Up to `count` examples, one per kind of problem (the start of its description)."""
    seen, chosen = set(), []
    for example in bad:
        key = (example[0], example[1][:40])
        if key not in seen:
            seen.add(key)
            chosen.append(example)
    return chosen[:count]


def report(work, targets, out_path):
    rev = os.environ.get("BENCH_REV", "?")
    lines = [
        "HTTP/1.1 differential, switchyard %s, %s: the same mutated messages through each"
        " proxy (configured as in run.sh), and what each proxy passed on read by h11 and by"
        " llhttp (httptools)." % (rev, datetime.datetime.now(datetime.timezone.utc)
                                  .strftime("%Y-%m-%d %H:%M UTC")),
        "",
        "### Requests: mutated requests from clients, what reached the upstream",
        "",
        "| target | inputs | answered 2xx | 400 | other | upstream connections | requests upstream |"
        " read two ways | refused by one parser | by both | `h2c` offered upstream |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    examples = {}
    bad_switchyard = 0
    for target in targets.split():
        client_path = os.path.join(work, "clients-%s.json" % target)
        upstream_path = os.path.join(work, "upstream-%s.jsonl" % target)
        if not os.path.exists(client_path) or not os.path.exists(upstream_path):
            continue
        clients = json.load(open(client_path))
        first = collections.Counter()
        for c in clients:
            m = re.match(r"HTTP/1\.[01] (\d)(\d\d)", c["out"])
            first["2xx" if m and m.group(1) == "2" else m.group(1) + m.group(2) if m else "none"] += 1
        upstream = [json.loads(line) for line in open(upstream_path)]
        kinds, bad, requests, h2c = collections.Counter(), [], 0, 0
        for record in upstream:
            kind, problem, n = judge(record)
            requests += n
            h2c += h2c_offers(record["raw"])
            if kind:
                kinds[kind] += 1
                bad.append((kind, problem, record["raw"]))
        if target == "switchyard":
            bad_switchyard = len(bad)
        other = len(clients) - first["2xx"] - first["400"]
        lines.append("| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |" % (
            target, len(clients), first["2xx"], first["400"], other, len(upstream), requests,
            kinds["two ways"], kinds["refused by one"], kinds["refused by both"], h2c))
        if bad:
            bad.sort(key=lambda b: ["two ways", "refused by one", "refused by both"].index(b[0]))
            examples[target] = distinct(bad)
    for target, bad in examples.items():
        lines += ["", "Examples, requests, %s:" % target, ""]
        for kind, problem, raw in bad:
            lines.append("- %s, %s: `%r`" % (kind, problem[:200], raw.encode("latin1")[:240]))
    response_lines, bad_responses = response_report(work, targets)
    lines += response_lines
    text = "\n".join(lines) + "\n"
    open(out_path, "w").write(text)
    print(text)
    return 1 if bad_switchyard or bad_responses else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backend")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--log", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--addr", required=True)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--inputs", type=int, default=8000)
    d.add_argument("--out", required=True)
    rb = sub.add_parser("response-backend")
    rb.add_argument("--port", type=int, required=True)
    rb.add_argument("--seed", type=int, default=1)
    rb.add_argument("--log", required=True)
    rd = sub.add_parser("response-drive")
    rd.add_argument("--addr", required=True)
    rd.add_argument("--inputs", type=int, default=8000)
    rd.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    r.add_argument("--targets", required=True)
    r.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "backend":
        backend(args.port, args.log)
    elif args.command == "drive":
        drive(args.addr, args.seed, args.inputs, args.out)
    elif args.command == "response-backend":
        response_backend(args.port, args.seed, args.log)
    elif args.command == "response-drive":
        response_drive(args.addr, args.inputs, args.out)
    else:
        sys.exit(report(args.work, args.targets, args.out))


if __name__ == "__main__":
    main()
