#!/usr/bin/env python3
"""Capture what real clients send, as seeds for the `reader` fuzz target: a TCP proxy in front of
a running echo harness (scripts/harness/echo.rs) that records, per connection, the bytes the client sent after its
handshake (its frames, masked, as it put them on the wire). Each capture is written as a reader
seed: one control byte (1: permessage-deflate was negotiated, so RSV1 frames are valid; 0: not)
and then the client's frames, cut to at most LIMIT bytes.

Usage: .venv/bin/python scripts/capture-frames.py LISTEN_PORT ECHO_PORT OUT_DIR PREFIX [LIMIT]
       then point clients (kosoku, tests/interop/websockets_client.py) at ws://127.0.0.1:LISTEN_PORT/;
       stop it with SIGINT/SIGTERM. fuzz/seeds/reader/{autobahn,websockets}-* came from it.
"""
import asyncio
import os
import signal
import sys

LISTEN, ECHO, OUT, PREFIX = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
LIMIT = int(sys.argv[5]) if len(sys.argv) > 5 else 64 << 10
count = 0


async def pipe(reader, writer, sink):
    try:
        while data := await reader.read(65536):
            if sink is not None:
                sink.extend(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_r, client_w):
    global count
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", ECHO)
    except OSError:
        client_w.close()
        return
    up, down = bytearray(), bytearray()
    await asyncio.gather(pipe(client_r, server_w, up), pipe(server_r, client_w, down))
    head_end = up.find(b"\r\n\r\n")
    resp_end = down.find(b"\r\n\r\n")
    if head_end < 0 or resp_end < 0 or not down.startswith(b"HTTP/1.1 101"):
        return
    frames = bytes(up[head_end + 4 :])[:LIMIT]
    if not frames:
        return
    deflate = b"permessage-deflate" in down[:resp_end].lower()
    count += 1
    with open(os.path.join(OUT, f"{PREFIX}-{count:04d}"), "wb") as f:
        f.write(bytes([1 if deflate else 0]) + frames)


async def main():
    os.makedirs(OUT, exist_ok=True)
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"capture-frames: {count} connections captured into {OUT}", file=sys.stderr)


asyncio.run(main())
