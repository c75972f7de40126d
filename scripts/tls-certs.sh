#!/usr/bin/env bash
# A throwaway test CA and a localhost certificate it signs (ECDSA P-256, valid 2 days), for the
# wss:// tests: writes ca.pem, cert.pem (chain: leaf) and key.pem into DIR.
# Usage: scripts/tls-certs.sh DIR          (needs the openssl command; scripts/deb.sh installs it)
set -euo pipefail
dir="${1:?usage: scripts/tls-certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout ca.key -out ca.pem -subj "/CN=volley test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout key.pem -out leaf.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -out cert.pem -extfile leaf.ext 2>/dev/null
rm -f leaf.csr leaf.ext ca.srl
