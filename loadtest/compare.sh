#!/usr/bin/env bash
# Side-by-side comparison of volley with tokio-tungstenite and fastwebsockets (loadtest/peers/).
#
# Builds everything in release mode, then runs every cell of the matrix against each server,
# alternating servers within a round (volley, tokio-tungstenite, fastwebsockets, volley, ...) for
# ROUNDS rounds, with the same server worker threads and the same client threads for all. Prints a
# markdown table (best run per server and cell, each figure also as a ratio to volley) and writes
# it, every JSON report and one SVG percentile plot per cell to $OUT.
#
# Usage: loadtest/compare.sh            (from anywhere; about 4-5 minutes)
# Knobs (environment):
#   THREADS=1         server worker threads (volley workers / tokio worker_threads), all servers
#   CLIENT_THREADS=2  loadtest poll threads
#   ROUNDS=2          rounds; each cell keeps each server's best run
#   DURATION=5s       measurement window of echo and broadcast runs
#   IDLE_CONNS=5000   idle cell size;   IDLE_DURATION=2s
#   BCAST_CONNS=1000  broadcast subscribers; BCAST_PUBLISHERS=10; BCAST_WINDOW=8; BCAST_RATE=0
#                     (rate 0 = closed loop: each publisher keeps BCAST_WINDOW of its own messages
#                     in flight, so the figure is the server's fan-out capacity)
#   SERVERS="volley tokio-tungstenite fastwebsockets"
#                     (also volley-base: the echo harness and broadcast binaries in
#                     $VOLLEY_BASE, an earlier build, to compare a change before and after in
#                     one run: `echo-harness` there, or `echo` from a build before the harness
#                     moved to scripts/harness/echo.rs, and `broadcast`)
#                     (also, echo and idle only, issue 29: volley-axum, the echo behind axum's
#                     port through the hand-off (scripts/harness/axum_echo.rs);
#                     axum-tungstenite and axum-fastwebsockets, axum's own WebSocketUpgrade and
#                     fastwebsockets' upgrade under axum (loadtest/peers/axum-*))
#   ONLY="echo broadcast idle"   which scenario groups to run (also connect: CONNECT_CONNS
#                     connections opened unpaced and closed, handshakes/s: what accepting
#                     costs, e.g. a hand-off against volley's own accept)
#   CONNECT_CONNS=10000 CONNECT_RATE=0 (0: unpaced; axum's accept loop, tokio's backlog of 1024,
#                     drops unpaced bursts into SYN retries: pace it, e.g. 3000, to compare
#                     handshake latency through axum)
#   OUT=target/compare/<timestamp>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

THREADS="${THREADS:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-5s}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
IDLE_DURATION="${IDLE_DURATION:-2s}"
BCAST_CONNS="${BCAST_CONNS:-1000}"
BCAST_PUBLISHERS="${BCAST_PUBLISHERS:-10}"
BCAST_WINDOW="${BCAST_WINDOW:-8}"
BCAST_RATE="${BCAST_RATE:-0}"
CONNECT_CONNS="${CONNECT_CONNS:-10000}"
CONNECT_RATE="${CONNECT_RATE:-0}"
SERVERS="${SERVERS:-volley tokio-tungstenite fastwebsockets}"
ONLY="${ONLY:-echo broadcast idle}"
OUT="${OUT:-target/compare/$(date +%Y%m%d-%H%M%S)}"
PEER_TARGET="$ROOT/target/peers"
LOADTEST="$ROOT/target/release/volley-loadtest"

echo "== building (release)" >&2
cargo build --release -q -p volley-loadtest
cargo build --release -q -p volley --example echo-harness --example broadcast
case " $SERVERS " in
    *" volley-axum "*) cargo build --release -q -p volley --features axum --example axum-echo-harness ;;
esac
for peer in tokio-tungstenite fastwebsockets axum-tungstenite axum-fastwebsockets; do
    case " $SERVERS " in
        *" $peer "*) CARGO_TARGET_DIR="$PEER_TARGET" cargo build --release -q \
            --manifest-path "loadtest/peers/$peer/Cargo.toml" ;;
    esac
done
mkdir -p "$OUT"

# server_bin NAME MODE -> path of the binary serving MODE (echo|broadcast) for server NAME;
# volley's echo is the echo harness (scripts/harness/echo.rs).
server_bin() {
    case "$1:$2" in
        volley:echo) echo "$ROOT/target/release/examples/echo-harness" ;;
        volley:*) echo "$ROOT/target/release/examples/$2" ;;
        tokio-tungstenite:*) echo "$PEER_TARGET/release/tt-$2" ;;
        fastwebsockets:*) echo "$PEER_TARGET/release/fws-$2" ;;
        volley-axum:echo) echo "$ROOT/target/release/examples/axum-echo-harness" ;;
        axum-tungstenite:echo) echo "$PEER_TARGET/release/axt-echo" ;;
        axum-fastwebsockets:echo) echo "$PEER_TARGET/release/axf-echo" ;;
        volley-base:*)
            local base="${VOLLEY_BASE:?set VOLLEY_BASE to a folder holding an earlier build of the echo harness and broadcast}"
            if [ "$2" = echo ]; then harness_in "$base"; else echo "$base/$2"; fi ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

PORT=9300
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# wait_port PORT
source "$ROOT/loadtest/common.sh"

# run_cell CELL MODE LOADTEST-ARGS...: every round, every server.
run_cell() {
    local cell="$1" mode="$2"
    shift 2
    for round in $(seq "$ROUNDS"); do
        for name in $SERVERS; do
            PORT=$((PORT + 1))
            "$(server_bin "$name" "$mode")" "127.0.0.1:$PORT" "$THREADS" >/dev/null 2>&1 &
            SERVER_PID=$!
            wait_port "$PORT"
            local json="$OUT/$cell--$name--r$round.json"
            local status=0
            "$LOADTEST" "$@" "ws://127.0.0.1:$PORT/" -t "$CLIENT_THREADS" -q \
                --label "$name" --server-pid "$SERVER_PID" --json "$json" >/dev/null || status=$?
            kill "$SERVER_PID" 2>/dev/null || true
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            case "$status" in
                0) echo "   $cell  $name  round $round  ok" >&2 ;;
                1) echo "   $cell  $name  round $round  ERRORS OR LOSS (see $json)" >&2 ;;
                *) echo "   $cell  $name  round $round  FAILED (exit $status)" >&2; rm -f "$json" ;;
            esac
        done
    done
    local files=("$OUT/$cell--"*--r1.json)
    if [ -e "${files[0]}" ]; then
        "$LOADTEST" plot --out "$OUT/$cell.svg" --title "$cell (round 1)" "${files[@]}" || true
    fi
}

echo "== servers: $SERVERS; $THREADS server thread(s), $CLIENT_THREADS client thread(s), $ROUNDS rounds; output in $OUT" >&2
for group in $ONLY; do
    case "$group" in
        echo)
            for conns in 100 1000; do
                for size in 32 4096; do
                    run_cell "echo-${conns}c-${size}b" echo echo -c "$conns" -s "$size" -w 1 -d "$DURATION"
                done
            done
            ;;
        broadcast)
            run_cell "broadcast-${BCAST_CONNS}c" broadcast broadcast -c "$BCAST_CONNS" \
                --publishers "$BCAST_PUBLISHERS" -w "$BCAST_WINDOW" -r "$BCAST_RATE" \
                -d "$DURATION" --grace 1s
            ;;
        idle)
            run_cell "idle-${IDLE_CONNS}c" echo idle -c "$IDLE_CONNS" -d "$IDLE_DURATION"
            ;;
        connect)
            run_cell "connect-${CONNECT_CONNS}c" echo connect -c "$CONNECT_CONNS" \
                --connect-rate "$CONNECT_RATE"
            ;;
        *) echo "unknown group $group" >&2; exit 2 ;;
    esac
done

{
    echo "### volley vs tokio-tungstenite vs fastwebsockets"
    echo
    echo "$(nproc) cores, $(uname -sr), server threads $THREADS, client threads $CLIENT_THREADS," \
        "window $DURATION, $(date -u +%Y-%m-%d). Command: \`THREADS=$THREADS ROUNDS=$ROUNDS loadtest/compare.sh\`"
    echo
    "$LOADTEST" table --baseline volley "$OUT"/*.json
} | tee "$OUT/table.md"
