#!/usr/bin/env bash
# Server memory per connection in each permessage-deflate mode: N connections (default 5,000)
# negotiate deflate, each exchanges compressed messages with the echo harness
# (scripts/harness/echo.rs; threshold 0, so
# every message is compressed and both directions' contexts exist), and the server's peak RSS
# above its RSS before connecting is divided by N.
# Modes: off, shared, dedicated (32 KiB windows both ways) and the dedicated presets
# `dedicated:COMPRESSOR/DECOMPRESSOR` (`Config::dedicated_deflate`). MODES overrides the list.
# Usage: loadtest/deflate-memory.sh [N]      (loopback only; about 10 s per mode)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
cargo build --release -q -p volley --example echo-harness
cargo build --release -q -p volley-loadtest
LT=target/release/volley-loadtest
printf '| mode | connections | server RSS before | peak RSS during | per connection |\n|---|---|---|---|---|\n'
port=9310
for mode in ${MODES:-off shared dedicated dedicated:512/4k dedicated:4k/4k dedicated:32k/32k}; do
  port=$((port + 1))
  RUST_LOG=warn target/release/examples/echo-harness "127.0.0.1:$port" 1 "$mode" >/dev/null 2>&1 &
  pid=$!
  sleep 0.5
  before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  peak=$before
  "$LT" echo "ws://127.0.0.1:$port/" -c "$N" -s 1k -w 1 -d 3s --deflate -q >/dev/null 2>&1 &
  lt=$!
  while kill -0 "$lt" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.2
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  per=$(( (peak - before) * 1024 / N ))
  printf '| %s | %s | %s KiB | %s KiB | %s B |\n' "$mode" "$N" "$before" "$peak" "$per"
done
