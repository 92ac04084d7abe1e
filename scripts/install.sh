#!/usr/bin/env bash
# Install everything carkey needs on a fresh Debian / Raspberry Pi OS machine:
# system packages (when run as root), npm packages, and the small native helper
# used by the emulated-BLE test tier. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

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
