#!/usr/bin/env bash
# Starts a local Skein cluster of N brokers (default 3) on one machine, each a
# voter of the metadata quorum. Broker i listens for clients on 9092+2i and for
# the quorum on 9093+2i, and keeps its data in $DATA/node<i> (default ./data-cluster).
# Ctrl-C stops every broker (a controlled shutdown each).
#
#   scripts/local-cluster.sh            # brokers 0,1,2 on 9092, 9094, 9096
#   N=4 scripts/local-cluster.sh        # four brokers
#   EXTRA="--set default.replication.factor=3 --set min.insync.replicas=2" scripts/local-cluster.sh
set -euo pipefail
N="${N:-${1:-3}}"
DATA="${DATA:-./data-cluster}"
BIN="${SKEIN_BROKER_BIN:-${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/skein-broker}"
[ -x "$BIN" ] || cargo build --release -p skein-broker
voters=""
bootstrap=""
for ((i = 0; i < N; i++)); do
  voters+="${voters:+,}$i@localhost:$((9093 + 2 * i))"
  bootstrap+="${bootstrap:+,}localhost:$((9092 + 2 * i))"
done
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
for ((i = 0; i < N; i++)); do
  mkdir -p "$DATA/node$i"
  # shellcheck disable=SC2086
  "$BIN" --set node.id="$i" \
    --set listeners="PLAINTEXT://localhost:$((9092 + 2 * i)),CONTROLLER://localhost:$((9093 + 2 * i))" \
    --set controller.quorum.voters="$voters" \
    --set http.listener="localhost:$((9644 + i))" \
    --set log.dirs="$DATA/node$i" ${EXTRA:-} >"$DATA/node$i.log" 2>&1 &
  pids+=($!)
  echo "broker $i: localhost:$((9092 + 2 * i)), http://localhost:$((9644 + i))/v1/status (log: $DATA/node$i.log)"
done
echo "bootstrap servers: $bootstrap"
wait
