#!/usr/bin/env bash
# Interop: third-party clients against the echo harness (scripts/harness/echo.rs) in each
# deflate mode, and through axum's port (scripts/harness/axum_echo.rs) — Python's
# `websockets` (PyPI, installed into .venv) always; headless Chromium when tests/browser has its
# harness installed (scripts/browser.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
cargo build --release --example echo-harness --quiet
cargo build --release --features axum --example axum-echo-harness --quiet
# interop_plain HARNESS MODE: start target/release/examples/HARNESS with deflate MODE, run the
# clients against it, stop it.
interop_plain() {
  local harness="$1" mode="$2"
  out=$(mktemp)
  RUST_LOG=warn "target/release/examples/$harness" 127.0.0.1:0 2 "$mode" >"$out" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  url=""
  for _ in $(seq 1 100); do
    url=$(grep -o 'ws://[0-9.:]*/' "$out" | head -1) || true
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "$harness did not start"; cat "$out"; exit 1; }
  echo "interop against $url ($harness, deflate $mode)"
  expect=""
  [ "$mode" = dedicated:512/4k ] && expect="server_max_window_bits=9;client_max_window_bits=12"
  "$VENV/bin/python" tests/interop/websockets_client.py "$url" "$expect"
  if [ -f tests/browser/node_modules/playwright-core/package.json ] && [ -x /usr/bin/chromium ]; then
    node tests/interop/chromium_deflate.mjs "$url" "$expect"
  fi
  kill $pid; wait $pid 2>/dev/null || true
  trap - EXIT
}
# dedicated:512/4k: the small preset; the client must honour client_max_window_bits=12.
for mode in shared dedicated dedicated:512/4k; do
  interop_plain echo-harness "$mode"
done
# Through an axum app's port: every connection handed over to volley (feature axum).
for mode in shared dedicated; do
  interop_plain axum-echo-harness "$mode"
done
# wss://: the echo server's TLS listener (feature tls) with a certificate from a throwaway CA;
# Python's websockets (deflate on and off) and Chromium verify it against that CA.
command -v openssl >/dev/null || { source scripts/deb.sh; install_deb "openssl (test certificates)" openssl; }
certs=$(mktemp -d)
scripts/tls-certs.sh "$certs"
cargo build --release --features tls --example echo-harness --quiet
out=$(mktemp)
VOLLEY_TLS_ADDR=127.0.0.1:0 VOLLEY_TLS_CERT="$certs/cert.pem" VOLLEY_TLS_KEY="$certs/key.pem" \
  RUST_LOG=warn target/release/examples/echo-harness 127.0.0.1:0 2 dedicated:512/4k >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$certs"' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(grep -o 'wss://[0-9.]*:[0-9]*' "$out" | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "echo (tls) did not start"; cat "$out"; exit 1; }
echo "interop against wss://localhost:$port/ (deflate dedicated:512/4k)"
VOLLEY_CA="$certs/ca.pem" "$VENV/bin/python" tests/interop/websockets_client.py \
  "wss://localhost:$port/" "server_max_window_bits=9;client_max_window_bits=12"
if [ -f tests/browser/node_modules/playwright-core/package.json ] && [ -x /usr/bin/chromium ]; then
  # Chromium trusts the CA through its NSS store in a temporary HOME (nothing ignored).
  scripts/nss-trust.sh "$certs/home" "$certs/ca.pem"
  CHROMIUM_HOME="$certs/home" node tests/interop/chromium_deflate.mjs "wss://localhost:$port/" \
    "server_max_window_bits=9;client_max_window_bits=12"
fi
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
rm -rf "$certs"
echo "interop: passed"
