#!/usr/bin/env bash
# The metrics exporter against a real Prometheus: starts the chat example (which serves
# /metrics), starts its own Prometheus on a free loopback port in a temporary directory with a
# 1 s scrape of the chat, then tests/prometheus/check.py parses the exposition with Python's
# prometheus_client, causes known traffic and waits until Prometheus' HTTP API shows it. Stops
# both on the way out; never touches a Prometheus it did not start.
#
# Installs what it needs: Debian's `prometheus` package (apt-get, as root) if missing, and
# prometheus_client + websockets into .venv (scripts/venv.sh). About 10 s once built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

source scripts/deb.sh
if ! command -v prometheus >/dev/null; then
  # Only the binary is used; the package's service is never started.
  install_deb prometheus prometheus
fi

cargo build -q --features metrics --example chat
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

RUST_LOG=warn target/debug/examples/chat --host 127.0.0.1 --port 0 >"$dir/chat.out" 2>&1 &
pids+=($!)
chat=""
for _ in $(seq 100); do
  chat=$(grep -o 'http://[0-9.:]*' "$dir/chat.out" | head -1 | sed 's#http://##') || true
  [ -n "$chat" ] && break
  sleep 0.1
done
[ -n "$chat" ] || { echo "the chat did not start"; cat "$dir/chat.out"; exit 1; }

# A free loopback port for Prometheus (bind 0, read it, release it).
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: volley-chat
    static_configs:
      - targets: ['$chat']
YAML
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen(\"http://127.0.0.1:$port/-/ready\", timeout=1)" 2>/dev/null; then break; fi
  sleep 0.2
done
"$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/-/ready', timeout=2)" || {
  echo "prometheus did not become ready"; cat "$dir/prometheus.log"; exit 1; }
echo "prometheus on 127.0.0.1:$port scraping the chat at $chat"
if ! "$VENV/bin/python" tests/prometheus/check.py "$chat" "127.0.0.1:$port"; then
  echo "--- prometheus log"; tail -20 "$dir/prometheus.log"
  exit 1
fi
echo "prometheus: passed"
