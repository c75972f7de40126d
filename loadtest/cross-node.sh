#!/usr/bin/env bash
# Broadcast across two volley nodes sharing topics through Redis (the `redis` feature), next to
# the same load on one node: docs/BENCHMARKS.md, "Across nodes through Redis".
#
#   loadtest/cross-node.sh            (env: SUBS=1000 per node, PUBLISHERS=10, RATE=... msgs/s,
#                                      WINDOW=1000, WORKERS=1 per server, DURATION=8s)
#
# Starts its own redis-server (Debian's, from PATH) on a free loopback port and, in release
# builds, examples/broadcast three times: node A and node B with the Redis bridge, and a single
# node without it. Then `volley-loadtest broadcast` twice:
#   one node:   2 × SUBS subscribers and the publishers, all on the single node;
#   two nodes:  SUBS subscribers on each node, the publishers on A (--publish-url): every
#               message reaches B through Redis.
# and the CPU time of the bridge's threads (bridge-pub, bridge-sub, bridge-in, read from
# /proc/PID/task/*/stat) on A (publishing) and B (receiving), per message. Everything it started
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SUBS=${SUBS:-1000}
PUBLISHERS=${PUBLISHERS:-10}
RATE=${RATE:-1000}
WINDOW=${WINDOW:-1000}
WORKERS=${WORKERS:-1}
DURATION=${DURATION:-8s}
conns=$((2 * SUBS + PUBLISHERS))

command -v redis-server >/dev/null || { echo "needs redis-server on PATH (apt-get install redis-server)" >&2; exit 1; }
cargo build --release -q --features redis --example broadcast
cargo build --release -q -p volley-loadtest
LOADTEST=target/release/volley-loadtest
SERVER=target/release/examples/broadcast

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_port "$rport"
redis="redis://127.0.0.1:$rport"

start_server() { # PORT [REDIS] -> pid in $server_pid
  RUST_LOG=warn "$SERVER" "127.0.0.1:$1" "$WORKERS" ${2:+"$2"} >"$dir/server-$1.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$1"
}

# Bridge threads' CPU seconds (utime + stime) in process $1.
bridge_cpu() {
  local total=0 f
  for f in /proc/"$1"/task/*/stat; do
    local line rest
    line=$(cat "$f" 2>/dev/null) || continue
    case "$line" in *"(bridge-"*) ;; *) continue ;; esac
    rest=${line##*) }
    read -r -a fields <<<"$rest"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

summary() { # JSON -> one line of figures
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c, d = r["counters"], r["derived"]
print(f'published {c["published"]} ({d["published_per_s"]:.0f}/s), delivered {c["received"]} of {d["expected_deliveries"]} '
      f'({d["messages_per_s"]:.0f}/s), lost {d["lost"]}, out of order {c["out_of_order"]}, '
      f'across nodes {c.get("cross_received", 0)} ({d.get("cross_per_s", 0):.0f}/s)')
EOF
}

run() { # LABEL URL... -- extra flags
  local label=$1
  shift
  echo "== $label"
  "$LOADTEST" broadcast "$@" -c "$conns" --publishers "$PUBLISHERS" -r "$RATE" -w "$WINDOW" \
    -d "$DURATION" --grace 2s --label "$label" --json "$dir/$label.json" -q
}

single_port=$(free_port)
start_server "$single_port"
run one-node "ws://127.0.0.1:$single_port/" --server-pid "$server_pid"
kill "$server_pid"

a_port=$(free_port)
start_server "$a_port" "$redis"
a_pid=$server_pid
b_port=$(free_port)
start_server "$b_port" "$redis"
b_pid=$server_pid
sleep 0.5
a0=$(bridge_cpu "$a_pid")
b0=$(bridge_cpu "$b_pid")
run two-nodes "ws://127.0.0.1:$a_port/" "ws://127.0.0.1:$b_port/" \
  --publish-url "ws://127.0.0.1:$a_port/" --server-pid "$a_pid"
a1=$(bridge_cpu "$a_pid")
b1=$(bridge_cpu "$b_pid")

echo
echo "== one node:  $(summary "$dir/one-node.json")"
echo "== two nodes: $(summary "$dir/two-nodes.json")"
python3 - "$dir/two-nodes.json" "$((a1 - a0))" "$((b1 - b0))" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
published = r["counters"]["published"]
a_ticks, b_ticks = int(sys.argv[2]), int(sys.argv[3])
if published:
    print(f"== bridge CPU: node A (publishing) {a_ticks / 100:.2f} s = {a_ticks * 1e4 / published:.1f} µs per message; "
          f"node B (receiving) {b_ticks / 100:.2f} s = {b_ticks * 1e4 / published:.1f} µs per message "
          f"({published} messages)")
EOF
