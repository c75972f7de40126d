#!/usr/bin/env python3
"""Server memory per idle connection, ws:// or wss://: opens N connections to a running server
(through several source addresses 127.0.0.x, at most 9,000 per client process), upgrades each
to WebSocket, and keeps them idle; reads the server's RSS from /proc before and after and
prints the difference per connection.

Usage: python3 loadtest/idle-memory.py PID ws://127.0.0.1:PORT/ N
       python3 loadtest/idle-memory.py PID wss://localhost:PORT/ N CA.pem
(run against the echo harness, scripts/harness/echo.rs, as in docs/BENCHMARKS.md; the
standard library only)
"""
import asyncio
import base64
import multiprocessing
import os
import ssl
import sys
import time
from urllib.parse import urlparse

PER_PROCESS = 9000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def open_one(host, port, ctx, source, name):
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ctx, server_hostname=name if ctx else None, local_addr=(source, 0)
    )
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {name}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head[:40])
    return reader, writer


async def hold(url, n, ca, source, ready, done):
    u = urlparse(url)
    ctx = None
    if u.scheme == "wss":
        ctx = ssl.create_default_context(cafile=ca)
    conns = []
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            conns.append(await open_one("127.0.0.1", u.port, ctx, source, u.hostname))

    await asyncio.gather(*(one() for _ in range(n)))
    ready.set()
    while not done.is_set():
        await asyncio.sleep(0.1)
    for _, w in conns:
        w.close()


def client(url, n, ca, source, ready, done):
    asyncio.run(hold(url, n, ca, source, ready, done))


def main():
    pid, url, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ca = sys.argv[4] if len(sys.argv) > 4 else None
    before = rss_kib(pid)
    procs, readies = [], []
    done = multiprocessing.Event()
    left, i = n, 0
    while left > 0:
        k = min(PER_PROCESS, left)
        ready = multiprocessing.Event()
        p = multiprocessing.Process(
            target=client, args=(url, k, ca, f"127.0.0.{2 + i}", ready, done)
        )
        p.start()
        procs.append(p)
        readies.append(ready)
        left -= k
        i += 1
    for r in readies:
        if not r.wait(300):
            print("idle-memory: clients did not connect in time", file=sys.stderr)
            done.set()
            sys.exit(1)
    time.sleep(2)
    after = rss_kib(pid)
    print(
        f"{urlparse(url).scheme}: {n} idle connections: server RSS {before} KiB -> {after} KiB, "
        f"{(after - before) * 1024 / n:.0f} B per connection"
    )
    done.set()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
