#!/usr/bin/env bash
# Runs every test volley has, from a fresh clone: formatting, lints, docs, unit and integration
# tests (including the loadtest harness), the Autobahn conformance run (kosoku), interop and
# browser tests (plain and over TLS), the metrics exporter against a real Prometheus, and a short
# coverage-guided fuzzing run of every fuzz target. Installs what they need itself (a Python
# venv, Chromium, npm packages, Debian's prometheus, openssl and libnss3-tools for the TLS
# tests' throwaway CA, Debian's redis-server for the Redis bridge's tests, the nightly toolchain
# and cargo-fuzz), and is safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { printf '\n==== %s (%ss)\n' "$*" "$((SECONDS - start))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
# And with default features: no link may lead to an item behind a feature.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "cargo check (default features: plain users build without the optional parts)"
cargo check --workspace --all-targets --quiet
if cargo tree -p volley -e normal --prefix none | grep -qiE '^(rustls|ring) '; then
  echo "a TLS crate is built without the tls feature" >&2
  exit 1
fi
if cargo tree -p volley -e normal --prefix none | grep -qiE '^redis '; then
  echo "a Redis crate is built without the redis feature" >&2
  exit 1
fi
if cargo tree -p volley -e normal --prefix none | grep -qiE '^(tokio|hyper|hyper-util|axum) '; then
  echo "an async runtime or axum is built without the axum feature" >&2
  exit 1
fi

step "redis-server for tests/redis.rs (each test starts its own on a free loopback port)"
if ! command -v redis-server >/dev/null; then
  source scripts/deb.sh
  install_deb "redis-server (the Redis bridge's tests)" redis-server
  # Debian's package starts a system service; the tests never use it (they run their own).
fi

step "cargo test (all features; tests/axum.rs runs the axum example's app)"
cargo test --workspace --all-features

step "conformance: Autobahn TestSuite (kosoku), all cases, deflate shared"
scripts/conformance.sh

step "conformance: compression cases, deflate dedicated (32 KiB windows, the largest)"
DEFLATE=dedicated scripts/conformance.sh '12.*' '13.*'

step "conformance over TLS (wss://, through scripts/tls-bridge.py): framing, fragmentation, UTF-8, close codes, large messages, compression"
TLS=1 scripts/conformance.sh '1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.1.*' '9.2.*' '10.*' '12.1.*' '13.1.*'

# A third of 12.*/13.* (text and binary, three kinds of offer, every size): the whole of them
# with 512-byte windows takes 5 minutes here (classic zlib on 128 KiB messages), and every
# preset passed them in full once (docs/BENCHMARKS.md, issue 18).
step "conformance: compression cases, deflate dedicated with the smallest windows (512 B)"
DEFLATE=dedicated:512/512 scripts/conformance.sh '12.1.*' '12.2.*' '13.1.*' '13.3.*' '13.5.*'

# Every case passed with every message streamed once (517/517, docs/BENCHMARKS.md, issue 16);
# the test command runs the framing, fragmentation, UTF-8 and close cases, the 64 KiB–1 MiB
# messages and a third of the compression cases that way, with echo sending each chunk straight
# back as a (compressed) fragment.
step "conformance with streaming receive: every message in chunks, echoed fragment by fragment"
STREAM=0 scripts/conformance.sh '1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.1.*' '9.2.*' '10.*' '12.1.*' '12.2.*' '13.1.*'

step "chaos soak (30 s) and leak check (200,000 connect/upgrade/close cycles)"
scripts/chaos.sh "${CHAOS_SECONDS:-30}" "${LEAK_CYCLES:-200000}"

step "chaos soak (15 s) with streaming receive: every echoed message in chunks, abusers beside"
VOLLEY_STREAM_OVER=0 scripts/chaos.sh 15 0

step "fuzzing: every target in fuzz/ for 20 s (nightly + cargo-fuzz, installed if missing)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

for extra in scripts/browser.sh scripts/interop.sh scripts/prometheus.sh; do
  if [ -x "$extra" ]; then
    step "$extra"
    "$extra"
  fi
done

step "all tests passed"
