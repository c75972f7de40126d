#!/usr/bin/env bash
# The chaos soak and the leak check against the echo harness (scripts/harness/echo.rs, 2
# workers, deflate shared), each on a fresh server on a free loopback port:
#   - soak: SECONDS of healthy echo and broadcast clients beside abusive ones
#     (`volley-loadtest chaos`; see loadtest/src/chaos/mod.rs). Fails if a healthy client lost,
#     reordered or saw a corrupted message, the server went down, or its descriptors did not come
#     back to where they started. Writes the server's RSS over time to OUT/rss.svg.
#   - leak check (when CYCLES > 0): CYCLES connect/upgrade/echo/close cycles from 8 threads and
#     source addresses 127.0.0.1-8; RSS and descriptors must end within 10% of their values
#     after a warm-up.
#
# Usage: scripts/chaos.sh [SECONDS] [CYCLES]     (the test command runs it with 30 and 200000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECS="${1:-30}"
CYCLES="${2:-0}"
OUT="${OUT:-target/chaos}"
mkdir -p "$OUT"
cargo build --release -q --example echo-harness
cargo build --release -q -p volley-loadtest
# shellcheck source=../loadtest/common.sh
. loadtest/common.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_against_echo() { # run_against_echo LOGNAME ARGS...: a fresh echo server, then the chaos tool
    local log="$OUT/$1.server.log"
    shift
    local port
    port="$(free_port)"
    RUST_LOG="${RUST_LOG:-warn}" target/release/examples/echo-harness "127.0.0.1:$port" 2 shared >"$log" 2>&1 &
    local pid=$!
    wait_port "$port"
    local status=0
    target/release/volley-loadtest chaos "ws://127.0.0.1:$port/" --server-pid "$pid" "$@" || status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $status
}

status=0
run_against_echo soak -d "${SECS}s" --svg "$OUT/rss.svg" || status=1
if [ "$CYCLES" -gt 0 ]; then
    run_against_echo leak --cycles "$CYCLES" || status=1
fi
exit $status
