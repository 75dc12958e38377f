#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine: kcat, a Python
# venv with the real Kafka clients, and kafkajs. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
  echo "setup: installing kcat"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null
fi

REQ=broker/tests/clients/requirements.txt
if [ ! -x .venv/bin/python ] || ! cmp -s "$REQ" .venv/.requirements 2>/dev/null; then
  echo "setup: creating the Python venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" .venv/.requirements
fi

NODE_DIR=broker/tests/clients/node
if [ ! -d "$NODE_DIR/node_modules/kafkajs" ]; then
  echo "setup: installing kafkajs"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >/dev/null)
fi
