#!/usr/bin/env python3
"""Record what a chat client receives from examples/chat: the stream the deflate ratio
benchmark (benches/deflate_ratio.rs) compresses. Eight users in two rooms chat (sentences drawn
from a fixed vocabulary with a seeded RNG), type, rename, send private messages and move
between rooms; one more user, in the busier room, records every text message the server sends
it, one per line.

Usage: .venv/bin/python scripts/record-chat.py URL OUT [MESSAGES]
       (URL of a chat started with `--rate 1000/1`, e.g. ws://127.0.0.1:8080/ws; the recorded file is committed as
       benches/data/chat-stream.jsonl, so the benchmark itself needs no server)
"""
import asyncio
import json
import random
import sys

import websockets

WORDS = (
    "the a to and of in is it you that for on with this be are have was not but what "
    "deploy build test release server client message room latency socket rust tokio mio "
    "volley benchmark compile error works fine today tomorrow lunch coffee meeting review "
    "merge branch issue bug fix patch crash log metrics dashboard alert ping pong nice "
    "thanks sure maybe later done ready again looks good great idea please check "
    "production staging cluster node redis cache memory cpu throughput connection"
).split()
NICKS = ["ada", "linus", "grace", "ken", "barbara", "dennis", "margaret", "alan"]


def sentence(rng):
    n = rng.choice([2, 3, 4, 5, 6, 8, 10, 14, 20, 30, 45])
    words = [rng.choice(WORDS) for _ in range(n)]
    text = " ".join(words)
    text = text[0].upper() + text[1:] + rng.choice([".", "!", "?", "", " :)"])
    return text


async def user(url, nick, room, rng, stop):
    async with websockets.connect(url, compression=None) as ws:
        await ws.send(json.dumps({"type": "nick", "nick": nick}))
        await ws.send(json.dumps({"type": "join", "room": room}))

        async def drain():
            async for _ in ws:
                pass

        reader = asyncio.ensure_future(drain())
        while not stop.is_set():
            r = rng.random()
            if r < 0.70:
                await ws.send(json.dumps({"type": "typing", "active": True}))
                await ws.send(json.dumps({"type": "message", "text": sentence(rng)}))
            elif r < 0.80:
                to = rng.choice(NICKS)
                await ws.send(json.dumps({"type": "private", "to": to, "text": sentence(rng)}))
            elif r < 0.85:
                room = rng.choice(["lobby", "rust", "ops"])
                await ws.send(json.dumps({"type": "join", "room": room}))
            else:
                await ws.send(json.dumps({"type": "typing", "active": False}))
            # Run the chat with `--rate 1000/1` so that this pace is not refused.
            await asyncio.sleep(0.1 + rng.random() * 0.2)
        reader.cancel()


async def main():
    url, out = sys.argv[1], sys.argv[2]
    want = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    rng = random.Random(6455)
    stop = asyncio.Event()
    got = []
    async with websockets.connect(url, compression=None) as rec:
        await rec.send(json.dumps({"type": "nick", "nick": "recorder"}))
        await rec.send(json.dumps({"type": "join", "room": "lobby"}))
        users = [
            asyncio.ensure_future(
                user(url, nick, "lobby" if i < 6 else "rust", random.Random(rng.random()), stop)
            )
            for i, nick in enumerate(NICKS)
        ]
        async for msg in rec:
            if isinstance(msg, str):
                got.append(msg)
            if len(got) % 500 == 0:
                print(f"record-chat: {len(got)} messages", file=sys.stderr)
            if len(got) >= want:
                break
        stop.set()
        await asyncio.gather(*users, return_exceptions=True)
    with open(out, "w") as f:
        for m in got:
            f.write(m + "\n")
    sizes = sorted(len(m) for m in got)
    print(
        f"record-chat: {len(got)} messages, median {sizes[len(sizes) // 2]} B, "
        f"p10 {sizes[len(sizes) // 10]} B, p90 {sizes[len(sizes) * 9 // 10]} B",
        file=sys.stderr,
    )


asyncio.run(main())
