#!/usr/bin/env bash
# The CPU regression guard (issue 28): HEAD's server CPU per message against BASE_COMMIT's, under
# uWebSockets' own load generators (the static builds in ../shared/anchors, see their README).
#
# Builds BASE (in a temporary git worktree under target/guard/, removed afterwards) and HEAD
# (the working tree as it is), then, for ROUNDS rounds, runs both servers in turn (BASE first in
# odd rounds, HEAD first in even ones) on two cells, one server thread each:
#   - broadcast: examples/broadcast under `broadcast_test 1000 127.0.0.1 PORT 0` (every client
#     sends one message and waits for all 1,000: an iteration is 1,000 × 1,000 deliveries);
#   - echo: the echo harness (`echo-harness`, or `echo` in builds from before the harness moved
#     to scripts/harness/echo.rs), compression off, under `load_test 100 127.0.0.1 PORT 0 0 20`.
# Over a fixed window (the generator's 2nd and 3rd reports, 4 to 12 s after it starts) it reads
# the rate the generator reports and the server's CPU time from /proc/PID/stat (utime + stime).
# Prints a markdown table with every round's figures, HEAD/BASE ratios and the medians: ns of
# server CPU per delivery (broadcast), µs per message (echo), and messages (deliveries) per second.
#
# Exits 1 if HEAD's median CPU per message is more than THRESHOLD % above BASE's in either cell.
# Run it on a quiet machine (`uptime`: load average well below 1): other work on the cores
# moves both servers' figures. The table shows, for each round, the most CPU that anything but
# the server and its load generator took during either run's window ("others", in cores, from
# /proc/stat); WAIT_QUIET=0.5 waits (at most 10 minutes) after the builds for the 1-minute load
# average to fall below 0.5.
#
# Usage: loadtest/guard.sh BASE_COMMIT      (about 1 minute per round, plus the two builds)
# Knobs: ROUNDS=5  THRESHOLD=10  BROADCAST_CONNS=1000  ECHO_CONNS=100  ECHO_SIZE=20
#        WAIT_QUIET=LOAD  ANCHORS=../shared/anchors  OUT=target/guard/<timestamp>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE_REV="${1:?usage: loadtest/guard.sh BASE_COMMIT}"
BASE_SHA="$(git rev-parse --verify "$BASE_REV^{commit}")"
ROUNDS="${ROUNDS:-5}"
THRESHOLD="${THRESHOLD:-10}"
BROADCAST_CONNS="${BROADCAST_CONNS:-1000}"
ECHO_CONNS="${ECHO_CONNS:-100}"
ECHO_SIZE="${ECHO_SIZE:-20}"
ANCHORS="$(cd "${ANCHORS:-$ROOT/../shared/anchors}" && pwd)"
OUT="${OUT:-target/guard/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/base" "$OUT/head"
OUT="$(cd "$OUT" && pwd)"
# wait_port, harness_in, cpu_ticks, cpu_over_window, window_rates
source "$ROOT/loadtest/common.sh"

WORKTREE="$ROOT/target/guard/base-$$"
SERVER_PID=""
CLIENT_PID=""
cleanup() {
    [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    if [ -d "$WORKTREE" ]; then git worktree remove --force "$WORKTREE" || true; fi
}
trap cleanup EXIT

# build_into SRC DEST: the broadcast example and the echo harness of the checkout at SRC, built
# with the repository's own target directory (the dependencies are shared and stay warm), copied
# to DEST before the next build replaces them.
build_into() {
    local harness=echo-harness
    grep -q '^name = "echo-harness"' "$1/Cargo.toml" || harness=echo
    (cd "$1" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release -q -p volley \
        --example broadcast --example "$harness")
    cp "$ROOT/target/release/examples/broadcast" "$ROOT/target/release/examples/$harness" "$2/"
}

echo "== building BASE ${BASE_SHA:0:10} (worktree $WORKTREE) and HEAD" >&2
git worktree add -q --detach "$WORKTREE" "$BASE_SHA"
build_into "$WORKTREE" "$OUT/base"
git worktree remove --force "$WORKTREE"
build_into "$ROOT" "$OUT/head"

# run_cell CELL WHO ROUND PORT: one server of one cell, one round; appends a line to raw.txt.
run_cell() {
    local bin="$OUT/$2" log="$OUT/$1--$2--r$3.log"
    if [ "$1" = broadcast ]; then
        RUST_LOG=warn "$bin/broadcast" "127.0.0.1:$4" 1 >/dev/null 2>&1 &
        SERVER_PID=$!
        wait_port "$4"
        "$ANCHORS/broadcast_test" "$BROADCAST_CONNS" 127.0.0.1 "$4" 0 >"$log" 2>&1 &
    else
        RUST_LOG=warn "$(harness_in "$bin")" "127.0.0.1:$4" 1 off >/dev/null 2>&1 &
        SERVER_PID=$!
        wait_port "$4"
        "$ANCHORS/load_test" "$ECHO_CONNS" 127.0.0.1 "$4" 0 0 "$ECHO_SIZE" >"$log" 2>&1 &
    fi
    CLIENT_PID=$!
    local ticks client machine
    read -r ticks client machine < <(cpu_over_window "$log" "$SERVER_PID" "$CLIENT_PID")
    local others=$((machine - ticks - client))
    sleep 0.3
    kill "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; CLIENT_PID=""
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local rates
    rates=$(window_rates "$log")
    echo "$1 $2 $3 $others $ticks $rates" >>"$OUT/raw.txt"
    echo "   $1  $2  round $3  rates: $rates cpu ticks: $ticks (others: $others)" >&2
}

if [ -n "${WAIT_QUIET:-}" ]; then
    echo "== waiting for the 1-minute load average to fall below $WAIT_QUIET" >&2
    for _ in $(seq 60); do
        awk -v q="$WAIT_QUIET" '{ exit !($1 < q) }' /proc/loadavg && break
        sleep 10
    done
fi
echo "== $ROUNDS rounds; output in $OUT (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
PORT=9750
for round in $(seq "$ROUNDS"); do
    order="base head"
    [ $((round % 2)) = 0 ] && order="head base"
    for cell in broadcast echo; do
        for who in $order; do
            PORT=$((PORT + 1))
            run_cell "$cell" "$who" "$round" "$PORT"
        done
    done
done

python3 - "$OUT/raw.txt" "$(getconf CLK_TCK)" "$BROADCAST_CONNS" "$THRESHOLD" \
    "${BASE_SHA:0:10}" "$(git rev-parse --short=10 HEAD)$(git diff --quiet HEAD || echo +)" \
    "$ECHO_CONNS" "$ECHO_SIZE" <<'PY' | tee "$OUT/table.md"
import collections, statistics, sys
raw, hz, bconns, threshold, base, head, econns, esize = sys.argv[1:]
hz, bconns, threshold = int(hz), int(bconns), float(threshold)
WINDOW = 8.0  # seconds: the generator's 2nd and 3rd reports
# (cell, round) -> who -> (messages per second, server CPU per message in the cell's unit,
# cores used by anything else over the window)
runs = collections.defaultdict(dict)
for line in open(raw):
    f = line.split()
    cell, who, rnd, ticks = f[0], f[1], int(f[2]), int(f[4])
    others = max(0.0, float(f[3])) / hz / WINDOW
    rates = [float(x) for x in f[5:]]
    if len(rates) < 2:
        print(f"warning: {cell} {who} round {rnd}: the generator reported {len(rates)} rates", file=sys.stderr)
        continue
    rate = sum(rates) / len(rates)
    if cell == "broadcast":
        rate *= bconns * bconns  # iterations/s -> deliveries/s
    cpu = ticks / hz / (rate * WINDOW) if rate else float("inf")
    runs[(cell, rnd)][who] = (rate, cpu * (1e9 if cell == "broadcast" else 1e6), others)
CELLS = {"broadcast": (f"broadcast, {bconns} conns", "ns/delivery", "deliveries/s"),
         "echo": (f"echo, {econns} × {esize} B", "µs/msg", "msg/s")}
def si(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"
print(f"BASE {base}, HEAD {head}; server CPU per message from /proc/PID/stat over {WINDOW:.0f} s per run, 1 server thread\n")
print("| cell | round (first) | others | BASE CPU/msg | HEAD CPU/msg | HEAD/BASE | BASE rate | HEAD rate |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
worse = []
for cell, (label, unit, rate_unit) in CELLS.items():
    rows = sorted((r, d) for (c, r), d in runs.items() if c == cell and "base" in d and "head" in d)
    for r, d in rows:
        first = "BASE" if r % 2 else "HEAD"
        (br, bc, bl), (hr, hc, hl) = d["base"], d["head"]
        print(f"| {label} | {r} ({first}) | {max(bl, hl):.2f} | {bc:.3g} {unit} | {hc:.3g} {unit} | {hc / bc:.3f} | {si(br)} | {si(hr)} |")
    if not rows:
        worse.append(f"{cell}: no complete round")
        continue
    bc = statistics.median(d["base"][1] for _, d in rows)
    hc = statistics.median(d["head"][1] for _, d in rows)
    br = statistics.median(d["base"][0] for _, d in rows)
    hr = statistics.median(d["head"][0] for _, d in rows)
    print(f"| **{label}** | **median of {len(rows)}** | | **{bc:.3g} {unit}** | **{hc:.3g} {unit}** | **{hc / bc:.3f}** | **{si(br)} {rate_unit}** | **{si(hr)} {rate_unit}** |")
    if hc > bc * (1 + threshold / 100):
        worse.append(f"{cell}: HEAD's median CPU per message is {hc / bc:.3f}× BASE's")
print()
if worse:
    print(f"FAIL (threshold +{threshold:g}%): " + "; ".join(worse))
    sys.exit(1)
print(f"PASS: HEAD's median CPU per message is within +{threshold:g}% of BASE's in both cells")
PY
