#!/usr/bin/env bash
# Builds librdkafka's own test suite (tests/test-runner) from the source that
# ships in the rdkafka-sys crate, into a cache outside the clone, and prints the
# path of its tests directory. About 6 minutes on 2 cores the first time; later
# runs reuse the build. Needs only what `cargo fetch` downloads and gcc/g++.
#
# --secure builds a second suite beside the first with TLS and SASL (OpenSSL:
# SSL, SASL/PLAIN and SASL/SCRAM; no GSSAPI, no OIDC), for the security tests
# (`make compat`); it installs libssl-dev if it is missing.
set -euo pipefail
SECURE=""
[ "${1:-}" = "--secure" ] && SECURE=y
cd "$(dirname "$0")/.."
CACHE="${SKEIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skein}"
cargo fetch -q
SRC=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "rdkafka-sys":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "librdkafka"))
        break')
[ -d "$SRC/tests" ] || { echo "librdkafka source not found (rdkafka-sys)" >&2; exit 1; }
# RapidJSON lets the tests that read librdkafka's statistics run (0053, 0101, 0110).
NEED=""
[ -f /usr/include/rapidjson/rapidjson.h ] || NEED="rapidjson-dev"
[ -z "$SECURE" ] || [ -f /usr/include/openssl/ssl.h ] || NEED="$NEED libssl-dev"
# compat/librdkafka/run.py makes the secure setups' certificates with it.
[ -z "$SECURE" ] || command -v openssl >/dev/null || NEED="$NEED openssl"
if [ -n "$NEED" ]; then
  echo "installing $NEED" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $NEED >/dev/null
fi
VERSION=$(basename "$(dirname "$SRC")")
if [ -n "$SECURE" ]; then
  OUT="$CACHE/librdkafka/$VERSION-rapidjson-ssl"
  FEATURES="--enable-ssl --disable-gssapi --disable-curl"
else
  OUT="$CACHE/librdkafka/$VERSION-rapidjson"
  FEATURES="--disable-ssl --disable-sasl --disable-curl --disable-gssapi"
fi
if [ ! -x "$OUT/tests/test-runner" ]; then
  echo "building librdkafka's test suite ($VERSION) in $OUT" >&2
  rm -rf "$OUT" && mkdir -p "$(dirname "$OUT")"
  cp -r "$SRC" "$OUT"
  (
    cd "$OUT"
    # shellcheck disable=SC2086
    ./configure $FEATURES >/dev/null
    make -j"$(nproc)" libs >/dev/null
    make -j"$(nproc)" -C tests build >/dev/null
  ) >&2
fi
echo "$OUT/tests"
