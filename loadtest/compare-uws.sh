#!/usr/bin/env bash
# volley against uWebSockets itself, under uWebSockets' own load generator: the static builds in
# ../shared/anchors (uws_echo, load_test; see their README), with fastwebsockets' echo beside them.
#
# For every round, every cell (connections × payload, one message in flight per connection) and
# every server in turn (alternating within the round, in reverse order every other round), it
# starts the server with one thread, runs `load_test CONNS 127.0.0.1 PORT 0 0 SIZE`, and over the
# same window (from load_test's first report at 4 s to its third at 12 s) reads the messages per
# second load_test reports and the server's CPU time from /proc/PID/stat (utime + stime). Prints
# a markdown table of medians over the rounds: msg/s and server CPU per message, each with its
# ratio to uWebSockets, and each round's msg/s ratio (the servers of one round ran minutes apart
# at most, so these pairs share the machine's state).
#
# Usage: loadtest/compare-uws.sh            (about 3 × 3 cells × 3 servers × 14 s ≈ 6.5 minutes)
# Over TLS: SERVERS="volley-tls uws-tls" runs the echo harness's wss listener (built with
# `--features tls`) and the anchors' uws_tls_echo (OpenSSL) under load_test_tls, with an ECDSA
# P-256 certificate from scripts/tls-certs.sh (CERT_KIND=rsa: an RSA 2048 one).
# Knobs: ROUNDS=3  CELLS="100x20 500x16384 50x262144"  SERVERS="volley uws fastwebsockets"
#        ANCHORS=../shared/anchors  OUT=target/compare-uws/<timestamp>
#        VOLLEY_BASE=DIR: for server volley-base, an earlier build's echo harness in DIR
#        (`echo-harness`, or `echo` from before the harness moved to scripts/harness/echo.rs)
#        PIN=1: every server on the last CPU and load_test on the others (taskset), the same for
#        all servers, so on a small machine the two do not take turns on one core.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
CELLS="${CELLS:-100x20 500x16384 50x262144}"
SERVERS="${SERVERS:-volley uws fastwebsockets}"
ANCHORS="$(cd "${ANCHORS:-$ROOT/../shared/anchors}" && pwd)"
OUT="${OUT:-target/compare-uws/$(date +%Y%m%d-%H%M%S)}"
PEER_TARGET="$ROOT/target/peers"
mkdir -p "$OUT"

echo "== building (release)" >&2
if [[ " $SERVERS " == *"-tls "* ]]; then
    cargo build --release -q -p volley --features tls --example echo-harness
    CERTS="$OUT/certs"
    if [ "${CERT_KIND:-ecdsa}" = rsa ]; then
        mkdir -p "$CERTS"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" \
            -days 2 -subj /CN=localhost 2>/dev/null
    else
        scripts/tls-certs.sh "$CERTS"
    fi
else
    cargo build --release -q -p volley --example echo-harness
fi
if [[ " $SERVERS " == *" fastwebsockets "* ]]; then
    CARGO_TARGET_DIR="$PEER_TARGET" cargo build --release -q \
        --manifest-path loadtest/peers/fastwebsockets/Cargo.toml
fi

# start_server NAME PORT: starts it in the background; sets SERVER_PID to the server itself.
start_server() {
    local cmd
    case "$1" in
        volley) cmd=("$ROOT/target/release/examples/echo-harness" "127.0.0.1:$2" 1 off) ;;
        uws) cmd=("$ANCHORS/uws_echo" 1 "$2") ;;
        fastwebsockets) cmd=("$PEER_TARGET/release/fws-echo" "127.0.0.1:$2" 1) ;;
        volley-base) cmd=("$(harness_in "${VOLLEY_BASE:?}")" "127.0.0.1:$2" 1 off) ;;
        volley-tls)
            export VOLLEY_TLS_ADDR="127.0.0.1:$2" VOLLEY_TLS_CERT="$CERTS/cert.pem" \
                VOLLEY_TLS_KEY="$CERTS/key.pem"
            cmd=("$ROOT/target/release/examples/echo-harness" "127.0.0.1:0" 1 off) ;;
        uws-tls)
            export KEY="$CERTS/key.pem" CERT="$CERTS/cert.pem"
            cmd=("$ANCHORS/uws_tls_echo" "$2") ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
    RUST_LOG=warn "${SERVER_CPU[@]}" "${cmd[@]}" >/dev/null 2>&1 &
    SERVER_PID=$!
}

# wait_port PORT, cpu_ticks PID
source "$ROOT/loadtest/common.sh"
HZ=$(getconf CLK_TCK)

# With PIN=1: SERVER_CPU / CLIENT_CPUS prefix the server and load_test commands.
SERVER_CPU=(); CLIENT_CPUS=()
if [ "${PIN:-0}" = 1 ]; then
    last=$(($(nproc) - 1))
    SERVER_CPU=(taskset -c "$last")
    [ "$last" -gt 0 ] && CLIENT_CPUS=(taskset -c "0-$((last - 1))")
fi

PORT=9700
SERVER_PID=""
LT_PID=""
cleanup() {
    [ -n "$LT_PID" ] && kill "$LT_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

echo "== servers: $SERVERS; cells: $CELLS; $ROUNDS rounds; output in $OUT" >&2
for round in $(seq "$ROUNDS"); do
    for cell in $CELLS; do
        conns=${cell%x*}; size=${cell#*x}
        # Odd rounds run the servers in the given order, even rounds in reverse (A B C, C B A,
        # ...), so no server always runs first after a cell change or right after the same peer.
        order=$SERVERS
        [ $((round % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
        for name in $order; do
            PORT=$((PORT + 1))
            start_server "$name" "$PORT"
            wait_port "$PORT"
            log="$OUT/$cell--$name--r$round.log"
            if [[ "$name" == *-tls ]]; then
                "${CLIENT_CPUS[@]}" "$ANCHORS/load_test_tls" "$conns" 127.0.0.1 "$PORT" 1 0 "$size" >"$log" 2>&1 &
            else
                "${CLIENT_CPUS[@]}" "$ANCHORS/load_test" "$conns" 127.0.0.1 "$PORT" 0 0 "$size" >"$log" 2>&1 &
            fi
            LT_PID=$!
            # load_test connects one socket after another (over TLS, ~40 per second here), and
            # its clock starts when all are up: wait for that before the window.
            for _ in $(seq 600); do
                grep -q "Running benchmark" "$log" 2>/dev/null && break
                sleep 0.1
            done
            sleep 4.05
            c0=$(cpu_ticks "$SERVER_PID")
            sleep 8
            c1=$(cpu_ticks "$SERVER_PID")
            sleep 0.3
            kill "$LT_PID" 2>/dev/null || true; wait "$LT_PID" 2>/dev/null || true; LT_PID=""
            kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            # load_test's 2nd and 3rd reports cover 4..12 s.
            rates=$(grep -o 'Msg/sec: [0-9.]*' "$log" | awk '{print $2}' | sed -n '2,3p' | tr '\n' ' ' || true)
            echo "$cell $name $round $rates $((c1 - c0)) $HZ" >>"$OUT/raw.txt"
            echo "   $cell  $name  round $round  msg/s: $rates cpu ticks: $((c1 - c0))" >&2
        done
    done
done

python3 - "$OUT/raw.txt" <<'PY' | tee "$OUT/table.md"
import collections, statistics, sys
rows = collections.defaultdict(list)
by_round = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = line.split()
    cell, name, rates, ticks, hz = f[0], f[1], [float(x) for x in f[3:-2]], int(f[-2]), int(f[-1])
    if len(rates) < 2:
        continue
    rate = sum(rates) / len(rates)          # msg/s over 4..12 s
    msgs = rate * 8.0
    rows[(cell, name)].append((rate, ticks / hz / msgs * 1e6))
    by_round[(cell, f[2])][name] = rate
cells = sorted({c for c, _ in rows}, key=lambda c: (int(c.split('x')[1]), int(c.split('x')[0])))
ORDER = ["volley", "uws", "fastwebsockets", "volley-base", "volley-tls", "uws-tls"]
names = sorted({n for _, n in rows}, key=lambda n: ORDER.index(n) if n in ORDER else 9)
print("| cell (conns × bytes, 1 in flight) | server | msg/s (median) | × uWS | server CPU/msg (median) | × uWS | rounds | per-round msg/s × uWS |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for c in cells:
    ref = rows.get((c, "uws")) or rows.get((c, "uws-tls"))
    ref_rate = statistics.median(r for r, _ in ref) if ref else None
    ref_cpu = statistics.median(u for _, u in ref) if ref else None
    for n in names:
        v = rows.get((c, n))
        if not v:
            continue
        rate = statistics.median(r for r, _ in v); cpu = statistics.median(u for _, u in v)
        rr = f"{rate / ref_rate:.2f}×" if ref_rate else "–"
        rc = f"{cpu / ref_cpu:.2f}×" if ref_cpu else "–"
        ref_name = "uws" if (c, "uws") in rows else "uws-tls"
        per_round = " ".join(
            f"{d[n] / d[ref_name]:.2f}"
            for (cc, _), d in sorted(by_round.items(), key=lambda kv: int(kv[0][1]))
            if cc == c and n in d and ref_name in d and n != ref_name
        )
        print(f"| {c.replace('x', ' × ')} B | {n} | {rate / 1000:.1f}k | {rr} | {cpu:.2f} µs | {rc} | {len(v)} | {per_round} |")
PY
