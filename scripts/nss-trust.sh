#!/usr/bin/env bash
# A home directory whose NSS database (Chromium's certificate store on Linux) trusts one CA:
# the wss:// browser tests launch Chromium with HOME set to it, so certificates are verified
# as for any site and no error is ignored. Installs Debian's libnss3-tools (certutil) if missing.
# Usage: scripts/nss-trust.sh HOME_DIR CA.pem
set -euo pipefail
home="${1:?usage: scripts/nss-trust.sh HOME_DIR CA.pem}"
ca="${2:?usage: scripts/nss-trust.sh HOME_DIR CA.pem}"
if ! command -v certutil >/dev/null; then
  source "$(dirname "$0")/deb.sh"
  install_deb "certutil (Chromium's certificate store, for the wss:// browser tests)" libnss3-tools
fi
mkdir -p "$home/.pki/nssdb"
certutil -d "sql:$home/.pki/nssdb" -N --empty-password
certutil -d "sql:$home/.pki/nssdb" -A -t "C,," -n "volley test CA" -i "$ca"
