#!/usr/bin/env bash
# Runs the Autobahn TestSuite case files (the `kosoku` runner from PyPI) against the echo
# harness (scripts/harness/echo.rs, cargo example `echo-harness`).
# Installs kosoku into .venv if needed. Fails if any case ends FAILED or UNIMPLEMENTED.
# Usage: [DEFLATE=shared|dedicated|dedicated:C/D|off] scripts/conformance.sh [CASE_GLOB ...]
#        (default: every case, 1.* to 13.*, deflate mode shared; `dedicated:512/4k` runs
#        `Config::dedicated_deflate` with those compressor/decompressor windows)
#        TLS=1: through the harness's wss:// listener (feature tls, a throwaway CA from
#        scripts/tls-certs.sh), kosoku reaching it via scripts/tls-bridge.py (kosoku speaks
#        ws:// only)
#        STREAM=N: echo receives messages over N bytes in chunks (Streaming::over(N)) and
#        sends each back as a fragment at once
# Reports: target/autobahn-MODE/index.html (`:` and `/` in MODE become `-`; `-tls` and
#          `-streamN` appended)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=('1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.*' '10.*' '12.*' '13.*')
mode=${DEFLATE:-shared}
include=()
for c in "${cases[@]}"; do include+=(-i "$c"); done

out=target/autobahn-$(echo "$mode" | tr ':/' '--')
[ "${TLS:-0}" = 1 ] && out="$out-tls"
if [ -n "${STREAM:-}" ]; then
  out="$out-stream$STREAM"
  export VOLLEY_STREAM_OVER=$STREAM
fi
rm -rf "$out"
mkdir -p "$out"
log="$out/echo.log"
if [ "${TLS:-0}" = 1 ]; then
  cargo build --release --features tls --example echo-harness
  scripts/tls-certs.sh "$out/certs"
  export VOLLEY_TLS_ADDR=127.0.0.1:0 VOLLEY_TLS_CERT="$out/certs/cert.pem" \
    VOLLEY_TLS_KEY="$out/certs/key.pem"
else
  cargo build --release --example echo-harness
fi
# Port 0: the kernel picks a free port; the example prints it.
RUST_LOG=warn target/release/examples/echo-harness 127.0.0.1:0 2 "$mode" >"$out/echo.out" 2>"$log" &
pid=$!
bridge=""
trap 'kill $pid $bridge 2>/dev/null || true' EXIT
# wait_for REGEX FILE: the first match of REGEX in FILE, waiting up to 10 s for it (empty if none).
wait_for() {
  local m=""
  for _ in $(seq 1 100); do
    m=$(grep -o "$1" "$2" 2>/dev/null | head -1) || true
    [ -n "$m" ] && break
    sleep 0.1
  done
  echo "$m"
}
addr=$(wait_for 'ws://[0-9.:]*' "$out/echo.out" | sed 's#ws://##')
[ -n "$addr" ] || { echo "echo server did not start"; cat "$log"; exit 1; }
if [ "${TLS:-0}" = 1 ]; then
  tls_port=$(wait_for 'wss://[0-9.]*:[0-9]*' "$out/echo.out" | sed 's/.*://')
  [ -n "$tls_port" ] || { echo "echo's wss listener did not start"; cat "$log"; exit 1; }
  bridge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$VENV/bin/python" scripts/tls-bridge.py "$bridge_port" "$tls_port" "$out/certs/ca.pem" \
    >"$out/bridge.log" 2>&1 &
  bridge=$!
  [ -n "$(wait_for 'tls-bridge:' "$out/bridge.log")" ] || { echo "tls-bridge did not start"; exit 1; }
  addr="127.0.0.1:$bridge_port"
  mode="$mode over TLS"
fi
[ -n "${STREAM:-}" ] && mode="$mode, streaming messages over $STREAM B"
echo "conformance: kosoku against $addr, deflate $mode (${cases[*]})"
set +e
"$VENV/bin/kosoku" "$addr" "${include[@]}" -p 4 -o "$out" >"$out/kosoku.log" 2>&1
rc=$?
set -e
tail -3 "$out/kosoku.log"
kill -0 $pid 2>/dev/null || { echo "echo server died during the run"; tail -20 "$log"; exit 1; }
"$VENV/bin/python" scripts/autobahn_summary.py "$out/index.json"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ]
