#!/usr/bin/env bash
# The coverage-guided fuzz targets in fuzz/ (cargo-fuzz, libFuzzer):
#
#   scripts/fuzz.sh check          each target for FUZZ_SECONDS (default 20) from its corpus (make test)
#   scripts/fuzz.sh run [SECONDS]  a campaign: each target for SECONDS (default 600) (make fuzz)
#   scripts/fuzz.sh cmin           minimise every checked-in corpus
#
# New inputs go to a scratch directory, never into the checked-in corpus; a crash
# is written to fuzz/artifacts/<target>/ and fails the run. cargo-fuzz and the
# instrumented build live in a cache outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SKEIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skein}"
export PATH="$CACHE/tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install -q cargo-fuzz --version '^0.13' --locked --root "$CACHE/tools"
fi
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP lets the stable
# toolchain take them.
export RUSTC_BOOTSTRAP=1
# FUZZ_SANITIZER=none trades ASan's checks (and -malloc_limit_mb) for several
# times the executions, for long campaigns; a separate build directory each.
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGET_DIR="$CACHE/fuzz-target-$SANITIZER"
TARGETS=(request_decode request_handle record_batch metadata_command tls_accept client_certificate sasl_exchange txn_state)
# A decoder must not allocate far beyond its input, nor stall on one input.
LIMITS=(-malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1)

run() {
  local seconds=$1 scratch
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  cargo fuzz build -O -s "$SANITIZER" --target-dir "$TARGET_DIR" >&2
  for t in "${TARGETS[@]}"; do
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    echo "fuzz: $t for ${seconds}s" >&2
    local rc=0
    cargo fuzz run -O -s "$SANITIZER" --target-dir "$TARGET_DIR" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      "${LIMITS[@]}" -max_total_time="$seconds" -artifact_prefix="fuzz/artifacts/$t/" >"$scratch/$t.log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Loaded)' "$scratch/$t.log" >&2 || true
    if [ "$rc" -ne 0 ]; then
      tail -n 60 "$scratch/$t.log" >&2
      echo "fuzz: $t failed; the input is in fuzz/artifacts/$t" >&2
      return 1
    fi
  done
}

case "${1:-check}" in
  check) run "${FUZZ_SECONDS:-20}" ;;
  run) run "${2:-600}" ;;
  cmin)
    for t in "${TARGETS[@]}"; do
      cargo fuzz cmin -O -s "$SANITIZER" --target-dir "$TARGET_DIR" "$t" "fuzz/corpus/$t" -- -malloc_limit_mb=512 -rss_limit_mb=2048 -use_counters=0
    done
    ;;
  *) echo "usage: $0 check|run [SECONDS]|cmin" >&2; exit 2 ;;
esac
