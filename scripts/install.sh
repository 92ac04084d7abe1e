#!/usr/bin/env bash
# Install everything carkey needs on a fresh Debian / Raspberry Pi OS machine:
# system packages (when run as root), npm packages, and the small native helper
# used by the emulated-BLE test tier. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js >= 20 first: Raspberry Pi OS ships an older one, and npm ci would fail later with less clear errors.
need_node() {
  echo "install.sh: $1" >&2
  echo "  carkey needs Node.js 20 or newer (package.json engines). On Raspberry Pi OS / Debian, as root:" >&2
  echo "    curl -fsSL https://deb.nodesource.com/setup_20.x -o /tmp/nodesource_setup.sh && bash /tmp/nodesource_setup.sh && apt-get install -y nodejs" >&2
  echo "  or unpack the official tarball (https://nodejs.org/dist/latest-v20.x/, linux-arm64 or linux-armv7l) into /usr/local." >&2
  echo "  Then check with: node --version   (docs/operations.md, Install on Raspberry Pi OS)" >&2
  exit 1
}
command -v node >/dev/null 2>&1 || need_node "node is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "${node_major}" -ge 20 ] 2>/dev/null || need_node "found Node.js $(node --version 2>/dev/null || echo unknown) at $(command -v node)"
command -v npm >/dev/null 2>&1 || need_node "npm is not installed (it comes with Node.js from NodeSource or the official tarball)"

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # build tools for native npm modules (better-sqlite3, bluetooth-hci-socket);
  # bluez-test-tools for btvirt (emulated BLE controllers in the test tier);
  # socat for the hardware simulator's pseudo-terminal (firmware-sim --pty);
  # faketime (libfaketime) to jump a running carkeyd's system clock in the time tests;
  # chromium (Debian's) for the web app's browser tests (playwright-core drives it; never a download).
  apt-get install -y -qq --no-install-recommends \
    python3 make g++ libudev-dev bluez-test-tools socat faketime chromium >/dev/null
else
  echo "install.sh: not root or no apt-get; skipping system packages (need: make g++ python3 libudev-dev bluez-test-tools socat faketime chromium)" >&2
fi

npm ci --no-audit --no-fund
npm run build
if [ -f native/Makefile ]; then make -C native; fi
