#!/usr/bin/env bash
# The multi-thread cells of loadtest/compare-uws.sh, for a machine with many cores (a 16-core
# one here): volley's echo harness and uWebSockets' uws_echo with THREADS server threads each,
# pinned to cores 0..THREADS-1, under several uWebSockets `load_test` processes pinned to the
# other cores (the connections split among them). For every round, cell and server in turn
# (alternating within the round), it reads the summed msg/s over load_test's window 4..8 s and
# the server's CPU time over the same window, and prints a table of medians with ratios to
# uWebSockets.
#
# Takes prebuilt binaries, so that it can run on a bare machine: BIN holds `echo-harness`
# (volley's echo harness, scripts/harness/echo.rs, built static: RUSTFLAGS="-C
# target-feature=+crt-static" cargo build --release --example echo-harness; a folder prepared
# before the harness moved holds it as `echo`, which is used when `echo-harness` is absent),
# `uws_echo` and `load_test` (from ../shared/anchors).
#
# Usage: BIN=DIR loadtest/compare-uws-mt.sh
# Knobs: THREADS_LIST="4 8"  CELLS="512x20 384x16384 96x262144"  ROUNDS=3  SERVERS="volley uws"
#        CELLS_1 (cells for 1 server thread; default: issue 11's 100x20 500x16384 50x262144)
#        OUT=DIR (raw.txt and table.md)  LOGS=DIR (load_test's output; default: a temporary
#        folder, so that OUT holds two files, as the device tool brings back at most eight)
# Time: about 9.5 s per run: 2 × 3 × 2 × 3 runs ≈ 6 minutes with the defaults.
set -euo pipefail
BIN="$(cd "${BIN:?set BIN to the folder of echo-harness, uws_echo and load_test}" && pwd)"
THREADS_LIST="${THREADS_LIST:-4 8}"
CELLS="${CELLS:-512x20 384x16384 96x262144}"
CELLS_1="${CELLS_1:-100x20 500x16384 50x262144}"
ROUNDS="${ROUNDS:-3}"
SERVERS="${SERVERS:-volley uws}"
OUT="${OUT:-$(mktemp -d)}"
CORES=$(nproc)
HZ=$(getconf CLK_TCK)
LOGS="${LOGS:-$(mktemp -d)}"
mkdir -p "$OUT" "$LOGS"
: >"$OUT/raw.txt"

# wait_port PORT
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

SERVER_PID=""
LT_PIDS=()
cleanup() {
    for p in "${LT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

PORT=9800
echo "== $CORES cores; threads: $THREADS_LIST; cells: $CELLS; $ROUNDS rounds; servers: $SERVERS" >&2
for round in $(seq "$ROUNDS"); do
    for threads in $THREADS_LIST; do
        # Load generators on the cores the server does not use (at most 8 processes).
        procs=$((CORES - threads))
        [ "$procs" -gt 8 ] && procs=8
        [ "$procs" -lt 1 ] && procs=1
        cells=$CELLS
        [ "$threads" = 1 ] && cells=$CELLS_1
        for cell in $cells; do
            conns=${cell%x*}; size=${cell#*x}
            for name in $SERVERS; do
                PORT=$((PORT + 1))
                case "$name" in
                    volley) cmd=("$(harness_in "$BIN")" "127.0.0.1:$PORT" "$threads" off) ;;
                    uws) cmd=("$BIN/uws_echo" "$threads" "$PORT") ;;
                    *) echo "unknown server $name" >&2; exit 2 ;;
                esac
                RUST_LOG=warn taskset -c "0-$((threads - 1))" "${cmd[@]}" >/dev/null 2>&1 &
                SERVER_PID=$!
                wait_port "$PORT"
                LT_PIDS=()
                for p in $(seq 0 $((procs - 1))); do
                    share=$(( conns / procs + (p < conns % procs ? 1 : 0) ))
                    core=$(( threads + p % (CORES - threads > 0 ? CORES - threads : 1) ))
                    [ "$core" -ge "$CORES" ] && core=$((CORES - 1))
                    taskset -c "$core" "$BIN/load_test" "$share" 127.0.0.1 "$PORT" 0 0 "$size" \
                        >"$LOGS/$threads-$cell-$name-r$round-p$p.log" 2>&1 &
                    LT_PIDS+=($!)
                done
                sleep 4.05
                c0=$(cpu_ticks "$SERVER_PID")
                sleep 4
                c1=$(cpu_ticks "$SERVER_PID")
                sleep 0.3
                for p in "${LT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
                LT_PIDS=()
                kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
                SERVER_PID=""
                # Each load_test's 2nd report covers 4..8 s; sum over the processes.
                total=0
                for f in "$LOGS/$threads-$cell-$name-r$round-"p*.log; do
                    r=$(grep -o 'Msg/sec: [0-9.]*' "$f" | awk '{print $2}' | sed -n '2p')
                    total=$(awk -v a="$total" -v b="${r:-0}" 'BEGIN {print a + b}')
                done
                echo "$threads $cell $name $round $total $((c1 - c0)) $HZ" >>"$OUT/raw.txt"
                echo "   threads $threads  $cell  $name  round $round  msg/s: $total  cpu ticks: $((c1 - c0))" >&2
            done
        done
    done
done

python3 - "$OUT/raw.txt" <<'PY' | tee "$OUT/table.md"
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, cell, name, _, rate, ticks, hz = line.split()
    rate = float(rate)
    if rate <= 0:
        continue
    rows[(int(t), cell, name)].append((rate, int(ticks) / int(hz) / (rate * 4.0) * 1e6))
print("| server threads | cell (conns × bytes) | server | msg/s (median) | × uWS | server CPU/msg (median) | × uWS | rounds |")
print("|---:|---|---|---:|---:|---:|---:|---:|")
for (t, cell, name) in sorted(rows, key=lambda k: (k[0], int(k[1].split('x')[1]), k[2] != "volley")):
    v = rows[(t, cell, name)]
    ref = rows.get((t, cell, "uws"))
    rate = statistics.median(r for r, _ in v); cpu = statistics.median(u for _, u in v)
    rr = rc = "–"
    if ref:
        rr = f"{rate / statistics.median(r for r, _ in ref):.2f}×"
        rc = f"{cpu / statistics.median(u for _, u in ref):.2f}×"
    print(f"| {t} | {cell.replace('x', ' × ')} | {name} | {rate / 1000:.1f}k | {rr} | {cpu:.2f} µs | {rc} | {len(v)} |")
PY
