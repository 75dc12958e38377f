#!/usr/bin/env bash
# Builds librdkafka's own load generator, rdkafka_performance, from the source
# that ships in the rdkafka-sys crate (cargo builds and configures librdkafka for
# skein-bench; its examples directory is then built with that library).
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p skein-bench
OUT=$(ls -td "$TARGET_DIR"/release/build/rdkafka-sys-*/out 2>/dev/null | while read -r d; do
  [ -f "$d/examples/Makefile" ] && echo "$d" && break
done)
[ -n "$OUT" ] || { echo "rdkafka-sys build output not found under $TARGET_DIR" >&2; exit 1; }
make -s -C "$OUT/examples" rdkafka_performance >/dev/null
echo "$OUT/examples/rdkafka_performance"
