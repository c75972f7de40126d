#!/usr/bin/env bash
# Runs the Autobahn TestSuite case files (the `kosoku` runner from PyPI) against examples/echo.
# Installs kosoku into .venv if needed. Fails if any case ends FAILED or UNIMPLEMENTED.
# Usage: scripts/conformance.sh [CASE_GLOB ...]   (default: 1.* to 10.*)
# Reports: target/autobahn/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=('1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.*' '10.*')
include=()
for c in "${cases[@]}"; do include+=(-i "$c"); done

cargo build --release --example echo
out=target/autobahn
rm -rf "$out"
mkdir -p "$out"
log="$out/echo.log"
# Port 0: the kernel picks a free port; the example prints it.
VOLLEY_LOG=warn target/release/examples/echo 127.0.0.1:0 2 >"$out/echo.out" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
addr=""
for _ in $(seq 1 100); do
  addr=$(grep -o 'ws://[0-9.:]*' "$out/echo.out" 2>/dev/null | head -1 | sed 's#ws://##') || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "echo server did not start"; cat "$log"; exit 1; }
echo "conformance: kosoku against $addr (${cases[*]})"
set +e
"$VENV/bin/kosoku" "$addr" "${include[@]}" -p 4 -o "$out" >"$out/kosoku.log" 2>&1
rc=$?
set -e
tail -3 "$out/kosoku.log"
kill -0 $pid 2>/dev/null || { echo "echo server died during the run"; tail -20 "$log"; exit 1; }
"$VENV/bin/python" scripts/autobahn_summary.py "$out/index.json"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ]
