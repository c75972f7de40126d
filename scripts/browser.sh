#!/usr/bin/env bash
# Browser end-to-end test of the chat example: builds `examples/chat`, then
# tests/browser/chat-e2e.mjs starts it on a free port and drives three users in headless
# Chromium (rooms, members, messages, typing, a private message, HTML injection shown as text,
# reconnecting after a server restart, the live /stats page); across two chat servers sharing
# a Redis (--redis, feature redis; tests/browser/chat-cluster-e2e.mjs; Debian's redis-server,
# installed when missing); then again over https and wss (feature tls, a throwaway CA trusted
# through Chromium's NSS store). Leaves screenshots in target/chat-e2e.png,
# target/chat-e2e-stats.png, target/chat-cluster-e2e.png and target/chat-e2e-tls.png.
#
# Installs what it needs, and is safe to run again: Debian's chromium (apt-get, as root) when
# /usr/bin/chromium is missing, and playwright-core from tests/browser/package-lock.json (never
# a browser download). UPDATE_DOCS=1 also copies the screenshot to docs/chat.png (the README's).
# Takes about 10 s once built.
#
# Then the files example (tests/browser/files-e2e.mjs): a 100 MiB upload with its SHA-256
# checked, a cancelled upload, the download back, the server's memory measured; screenshot in
# target/files-e2e.png (UPDATE_DOCS=1 copies it to docs/files.png). 15 to 35 s more.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/deb.sh
if [ ! -x /usr/bin/chromium ]; then
  install_deb chromium chromium fonts-dejavu-core
fi

echo "== npm packages (tests/browser)"
(
  cd tests/browser
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
)

# A debug build by default: `cargo test` has already made it, so this costs nothing in
# scripts/test.sh. RELEASE=1 tests the optimised build that the README tells users to run.
# build EXAMPLE [FEATURES]: build an example that way; prints the binary's path.
build() {
  local profile=debug flags=()
  if [ "${RELEASE:-}" = 1 ]; then
    profile=release
    flags+=(--release)
  fi
  if [ -n "${2:-}" ]; then
    flags+=(--features "$2")
  fi
  cargo build "${flags[@]}" --example "$1" >&2
  echo "target/$profile/examples/$1"
}

# run_test SECONDS COMMAND...: one browser test. The test kills the servers it starts on any
# exit; `timeout` bounds the whole run, and the trap stops the test (and so its servers) and
# removes the directories in `scratch` if this script is interrupted.
scratch=()
run_test() {
  local secs=$1
  shift
  timeout -k 5 "$secs" "$@" &
  test_pid=$!
  trap 'kill "$test_pid" 2>/dev/null || true; rm -rf "${scratch[@]}"' EXIT
  wait "$test_pid"
  trap - EXIT
}

echo "== browser test"
binary=$(build chat metrics)
run_test 90 node tests/browser/chat-e2e.mjs "$binary" target/chat-e2e.png

echo "== browser test across two chat servers sharing a Redis"
# Two chat servers with --redis (feature redis) and their own redis-server on a free port: one
# user on each, messages, joins, leaves, members, history and nicknames across servers.
if ! command -v redis-server >/dev/null; then
  install_deb "redis-server (the chat across servers)" redis-server
fi
binary=$(build chat metrics,redis)
run_test 90 node tests/browser/chat-cluster-e2e.mjs "$binary" target/chat-cluster-e2e.png

echo "== browser test over https and wss"
# The same test with the chat serving TLS (--tls-cert/--tls-key, feature tls) from a throwaway
# CA that Chromium's NSS store (a temporary HOME) and Node (NODE_EXTRA_CA_CERTS, for /metrics)
# trust: certificates are verified, no error is ignored.
binary=$(build chat metrics,tls)
certs=$(mktemp -d)
scratch+=("$certs")
scripts/tls-certs.sh "$certs"
scripts/nss-trust.sh "$certs/home" "$certs/ca.pem"
run_test 90 env CHAT_TLS_DIR="$certs" CHROMIUM_HOME="$certs/home" \
  NODE_EXTRA_CA_CERTS="$certs/ca.pem" node tests/browser/chat-e2e.mjs "$binary" target/chat-e2e-tls.png
rm -rf "$certs"

echo "== browser test of the files example"
# Debug by default too: the 100 MiB upload, the cancelled one and the download take 15 to
# 35 s here on two shared cores, as loaded (the release build: 7 s).
# tests/browser/files-e2e.mjs uploads a 100 MiB file through the page (SHA-256 checked by the
# server and on its disk), cancels a second upload midway (no partial file left), downloads the
# first back (SHA-256 checked by the page), sends a file as one 32 MiB message, and fails if the
# server's RSS grows by over 64 MiB meanwhile; it prints the times and the RSS figures. Leaves a
# screenshot in target/files-e2e.png.
files_binary=$(build files)
run_test 120 node tests/browser/files-e2e.mjs "$files_binary" target/files-e2e.png
if [ "${UPDATE_DOCS:-}" = 1 ]; then
  cp target/files-e2e.png docs/files.png
  echo "== copied the screenshot to docs/files.png"
fi

if [ "${UPDATE_DOCS:-}" = 1 ]; then
  cp target/chat-e2e.png docs/chat.png
  cp target/chat-e2e-stats.png docs/stats.png
  echo "== copied the screenshots to docs/chat.png and docs/stats.png"
fi
echo "== browser test passed"
