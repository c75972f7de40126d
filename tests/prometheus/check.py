"""Checks the chat's metrics through a real Prometheus (started by scripts/prometheus.sh).

Usage: check.py CHAT_ADDR PROMETHEUS_ADDR

1. Parses the chat's /metrics text with the reference parser (prometheus_client).
2. Opens 3 WebSocket connections to the chat and sends 5 text messages on each.
3. Polls Prometheus' HTTP API until a scrape shows exactly that traffic:
   sum(volley_connections_open) == 3 and
   sum(volley_messages_received_total{opcode="text"}) == 15 (and binary == 0).
Exits non-zero (with the last values seen) if that does not happen within 30 s.
"""
import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request

import websockets
from prometheus_client.parser import text_string_to_metric_families

CONNECTIONS, MESSAGES = 3, 5


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def parse_exposition(chat):
    text = get(f"http://{chat}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The parser strips `_total` from counter family names.
    for name, kind in [
        ("volley_connections_open", "gauge"),
        ("volley_messages_received", "counter"),
        ("volley_bytes_sent", "counter"),
        ("volley_handler_duration_seconds", "histogram"),
        ("volley_loop_turn_duration_seconds", "histogram"),
        ("volley_closes", "counter"),
        ("volley_handshakes_rejected", "counter"),
    ]:
        fam = families.get(name)
        assert fam is not None, f"{name} missing from /metrics"
        assert fam.type == kind, f"{name} is a {fam.type}, expected {kind}"
    print(f"prometheus_client parsed {len(families)} metric families")


def query(prom, expr):
    q = urllib.parse.urlencode({"query": expr})
    body = json.loads(get(f"http://{prom}/api/v1/query?{q}"))
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def main(chat, prom):
    parse_exposition(chat)
    conns = [await websockets.connect(f"ws://{chat}/ws") for _ in range(CONNECTIONS)]
    for ws in conns:
        for _ in range(MESSAGES):
            await ws.send('{"type":"rooms"}')
    # Read the answers so the server has handled every message before we query.
    for ws in conns:
        for _ in range(MESSAGES):
            await asyncio.wait_for(ws.recv(), 5)
    want = {
        "sum(volley_connections_open)": CONNECTIONS,
        'sum(volley_messages_received_total{opcode="text"})': CONNECTIONS * MESSAGES,
        'sum(volley_messages_received_total{opcode="binary"})': 0,
    }
    deadline = time.monotonic() + 30
    seen = {}
    while time.monotonic() < deadline:
        seen = {expr: query(prom, expr) for expr in want}
        if all(seen[e] == v for e, v in want.items()):
            print("prometheus scraped:", ", ".join(f"{e} = {v:g}" for e, v in seen.items()))
            break
        await asyncio.sleep(0.5)
    else:
        print(f"prometheus never showed the traffic; last values: {seen}", file=sys.stderr)
        sys.exit(1)
    up = query(prom, 'up{job="volley-chat"}')
    assert up == 1, f"up = {up}"
    for ws in conns:
        await ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
