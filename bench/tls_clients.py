#!/usr/bin/env python3
"""TLS clients for bench/tls.sh (Python's ssl, which is OpenSSL's client).

  tls_clients.py resume PORT N [1.2|1.3]
      N clients each make a connection (one request), then each comes back once with
      the session it was given: prints "resumed=R of=N".
  tls_clients.py idle-wss PORT N PID[,PID...]
      N WebSockets over TLS, each upgraded and one message echoed, then held idle for
      2 s: prints "kib_per_tunnel=K" (the RSS growth of the PIDs, per tunnel).
"""
import asyncio
import base64
import os
import socket
import ssl
import sys


def client_context(version="1.3"):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    return ctx


def resume(port, n, version):
    ctx = client_context(version)

    def visit(session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        # Without it, Nagle holds a TLS 1.2 client's second flight for the server's
        # delayed ACK (about 25 ms a connection, whatever the proxy).
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        while s.recv(65536):  # to the close: the session tickets come in with the reply
            pass
        result = (s.session, s.session_reused)
        s.close()
        return result

    sessions = [visit()[0] for _ in range(n)]
    resumed = sum(visit(session)[1] for session in sessions)
    print(f"resumed={resumed} of={n}")


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def idle_wss(port, n, pids):
    ctx = client_context()
    gate = asyncio.Semaphore(100)

    async def tunnel():
        async with gate:
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            key = base64.b64encode(os.urandom(16)).decode()
            w.write(
                (
                    "GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    f"Sec-WebSocket-Key: {key}\r\n\r\n"
                ).encode()
            )
            head = await r.readuntil(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n")[0]:
                raise SystemExit(f"no 101: {head[:80]!r}")
            mask = os.urandom(4)
            payload = b"hi"
            w.write(bytes([0x81, 0x80 | len(payload)]) + mask
                    + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            echo = await r.readexactly(2 + len(payload))
            if echo[2:] != payload:
                raise SystemExit(f"bad echo: {echo!r}")
            return w

    before = rss_kib(pids)
    writers = await asyncio.gather(*(tunnel() for _ in range(n)))
    await asyncio.sleep(2)
    after = rss_kib(pids)
    print(f"kib_per_tunnel={(after - before) / n:.2f}")
    for w in writers:
        w.close()


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    command, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if command == "resume":
        resume(port, n, sys.argv[4] if len(sys.argv) > 4 else "1.3")
    elif command == "idle-wss":
        asyncio.run(idle_wss(port, n, sys.argv[4].split(",")))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
