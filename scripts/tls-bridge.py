#!/usr/bin/env python3
"""A plain-TCP to TLS bridge, so a runner that speaks only ws:// (kosoku, the Autobahn
TestSuite runner) drives a server's wss:// listener: every connection accepted on LISTEN_PORT
is carried over a new TLS connection to 127.0.0.1:TLS_PORT, the certificate verified against
CA (name `localhost`), bytes copied both ways unchanged, half-closes passed on.

Usage: .venv/bin/python scripts/tls-bridge.py LISTEN_PORT TLS_PORT CA.pem
       (scripts/conformance.sh starts it when TLS=1; stop it with SIGTERM)
"""
import asyncio
import signal
import ssl
import sys

LISTEN, TLS_PORT, CA = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
CTX = ssl.create_default_context(cafile=CA)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
        pass


async def handle(plain_r, plain_w):
    try:
        tls_r, tls_w = await asyncio.open_connection(
            "127.0.0.1", TLS_PORT, ssl=CTX, server_hostname="localhost"
        )
    except (OSError, ssl.SSLError) as e:
        print(f"tls-bridge: {e}", file=sys.stderr)
        plain_w.close()
        return
    await asyncio.gather(pipe(plain_r, tls_w), pipe(tls_r, plain_w))
    for w in (plain_w, tls_w):
        try:
            w.close()
        except Exception:
            pass


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"tls-bridge: 127.0.0.1:{LISTEN} -> wss 127.0.0.1:{TLS_PORT}", flush=True)
    async with server:
        await stop.wait()


asyncio.run(main())
