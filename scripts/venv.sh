# Sourced by the test scripts: a Python venv in .venv with the conformance runner and the
# interop client and the Prometheus text parser installed (idempotent; only package registries are needed).
VENV="${VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import kosoku, websockets, prometheus_client' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'kosoku==0.1.0' 'websockets>=12' \
    'prometheus_client>=0.20'
fi
export VENV
