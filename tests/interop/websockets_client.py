"""Interop: Python's `websockets` client (PyPI) against the echo harness
(scripts/harness/echo.rs).

Negotiates permessage-deflate, round-trips compressible text of 64 KiB and more plus small
messages, checks the negotiated extension and the echoed bytes; then the same without deflate.
Usage: python websockets_client.py ws://127.0.0.1:PORT/ [EXPECTED]
       python websockets_client.py wss://localhost:PORT/ [EXPECTED]   (VOLLEY_CA: the CA's PEM;
       certificates are verified against it, hostname included)
       (EXPECTED: `;`-separated parameters the negotiated extension must contain, e.g.
       `server_max_window_bits=9;client_max_window_bits=12`)
"""
import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


def chatty(n: int) -> str:
    line = '{"type":"chat","room":"lobby","user":"alice","text":"hello everyone"}\n'
    return (line * (n // len(line) + 1))[:n]


async def round_trip(url: str, deflate: bool, expected: list) -> None:
    extensions = [ClientPerMessageDeflateFactory(client_max_window_bits=True)] if deflate else []
    tls = None
    if url.startswith("wss://"):
        tls = ssl.create_default_context(cafile=os.environ["VOLLEY_CA"])
    async with connect(
        url, extensions=extensions, compression=None, max_size=None, ssl=tls
    ) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
        if deflate:
            assert negotiated and negotiated.startswith("permessage-deflate"), negotiated
            params = [p.strip() for p in negotiated.split(";")]
            for e in expected:
                assert e in params, (e, negotiated)
        else:
            assert negotiated is None, negotiated
        for n in (0, 1, 20, 125, 126, 1000, 65536, 200_000):
            text = chatty(n)
            await ws.send(text)
            got = await ws.recv()
            assert got == text, (n, len(got))
        # A stream of small, similar messages: with context takeover each refers to the earlier
        # ones, through the windows both sides agreed.
        for i in range(300):
            text = '{"type":"message","id":%d,"from":"ada","text":"%s hello %d"}' % (i, "x" * (i % 97), i)
            await ws.send(text)
            assert await ws.recv() == text, i
        data = bytes(range(256)) * 300
        await ws.send(data)
        assert await ws.recv() == data
        # A fragmented message.
        await ws.send([chatty(10_000), chatty(5), chatty(70_000)])
        assert await ws.recv() == chatty(10_000) + chatty(5) + chatty(70_000)
        print(f"websockets interop ok (deflate={deflate}, extension={negotiated!r})")


async def main() -> None:
    url = sys.argv[1]
    expected = [e for e in (sys.argv[2] if len(sys.argv) > 2 else "").split(";") if e]
    await round_trip(url, True, expected)
    await round_trip(url, False, [])


asyncio.run(main())
