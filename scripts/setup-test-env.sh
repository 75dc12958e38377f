#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine: kcat, a Python
# venv with the real Kafka clients, and kafkajs. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

# kcat; iptables and faketime for the fault tier (e2e/faults).
missing=""
command -v kcat >/dev/null 2>&1 || missing="$missing kcat"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
# Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no browser).
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

REQ=broker/tests/clients/requirements.txt
if [ ! -x .venv/bin/python ] || ! cmp -s "$REQ" .venv/.requirements 2>/dev/null; then
  echo "setup: creating the Python venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" .venv/.requirements
fi

NODE_DIR=broker/tests/clients/node
if [ ! -d "$NODE_DIR/node_modules/kafkajs" ] || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
  echo "setup: installing kafkajs and playwright-core"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >/dev/null)
fi
