# Sourced by the test scripts: install_deb WHAT PACKAGE... installs Debian packages with apt-get
# (as root; the test scripts run as root on our machines and in CI), saying what and why.
install_deb() {
  local what=$1
  shift
  echo "== installing $what (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "$what is missing and installing it needs root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
