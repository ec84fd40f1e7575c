#!/usr/bin/env bash
# bench/ordered.sh: an ordered target (`ordering: { key: companionId }`)
# against the same target unordered, under the shared harness's load: wrk
# -t2 -c64, hookgate pinned to cpu1, wrk and the harness's sink (its
# bench-peer) to cpu0, 1 KB events, the full path (store durably, re-sign,
# forward). Each event carries one of KEYS keys at random
# (bench/wrk/keys.lua), so the ordered target really keeps lanes.
#
#   cargo build --release && bench/ordered.sh
#
# The variants alternate (unordered, ordered, unordered, ...) PAIRS times, so
# each pair is measured back to back on the same machine state. Delivered/s
# is the sink's count over the run; "backlog" is what was still unfinished
# when the run ended. Knobs: PAIRS=3 DURATION=10 KEYS=100000.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
HOOKGATE=${HOOKGATE:-$ROOT/target/release/hookgate}
PAIRS=${PAIRS:-3} DURATION=${DURATION:-10} KEYS=${KEYS:-100000}
SINK_BIN=${SINK_BIN:-/tmp/peers/rust-target/release/bench-peer}
[[ -x $HOOKGATE ]] || { echo "no $HOOKGATE: run cargo build --release first" >&2; exit 1; }
if [[ ! -x $SINK_BIN ]]; then
  echo "building the harness's sink into /tmp/peers/rust-target" >&2
  (cd "$SHARED/peers/rust-baseline" && CARGO_TARGET_DIR=/tmp/peers/rust-target cargo build --release --quiet)
fi

RUN=$(mktemp -d /tmp/hookgate-ordered.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

export BENCH_DOWNSTREAM_URL=http://127.0.0.1:18000/sink
BENCH_DOWNSTREAM_SECRET=$(tr -d '\r\n' <"$SHARED/payloads/downstream-secret.txt")
export BENCH_DOWNSTREAM_SECRET
taskset -c 0 "$SINK_BIN" --listen 127.0.0.1:18000 \
  --verify-secret-file "$SHARED/payloads/downstream-secret.txt" --verify-every 16 \
  >"$RUN/sink.log" 2>&1 &
PIDS+=($!)
until curl -sf http://127.0.0.1:18000/__count >/dev/null; do sleep 0.1; done

sink_count() { curl -s http://127.0.0.1:18000/__count | sed -n 's/.*"requests":\([0-9]*\).*/\1/p'; }
metric() { curl -s http://127.0.0.1:18101/metrics | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'; }

run_one() { # variant -> one table row
  local variant=$1 dir config gw c0 c1 result rps p99 backlog
  dir=$(mktemp -d "$RUN/$variant.XXXX")
  config=$dir/hookgate.yaml
  if [[ $variant == ordered ]]; then
    sed 's/^    concurrency: 64$/    concurrency: 64\n    ordering: { key: companionId }/' \
      "$HERE/hookgate-keys.yaml" >"$config"
  else
    cp "$HERE/hookgate-keys.yaml" "$config"
  fi
  BENCH_RUN_DIR=$dir HOOKGATE_LOG=warn taskset -c 1 "$HOOKGATE" serve -c "$config" \
    >"$dir/hookgate.log" 2>&1 &
  gw=$!
  until curl -sf http://127.0.0.1:18101/readyz >/dev/null; do sleep 0.1; done
  c0=$(sink_count)
  result=$(KEYS=$KEYS BODY_FILE="$SHARED/payloads/event-1k.json" taskset -c 0 \
    wrk -t2 -c64 -d"${DURATION}s" --timeout 5s -s "$HERE/wrk/keys.lua" \
    http://127.0.0.1:18100/hooks/in | grep BENCH_RESULT)
  c1=$(sink_count)
  backlog=$(metric hookgate_queue_backlog_deliveries)
  kill "$gw"; wait "$gw" 2>/dev/null || true
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$result")
  p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$result")
  printf '| %s | %.0f | %.2f ms | %.0f | %s |\n' "$variant" "$rps" \
    "$(bc -l <<<"$p99 / 1000")" "$(bc -l <<<"($c1 - $c0) / $DURATION")" "$backlog"
}

echo "| variant | accepted/s | p99 | delivered/s | backlog at the end |"
echo "|---|---:|---:|---:|---:|"
for ((i = 0; i < PAIRS; i++)); do
  run_one unordered
  run_one ordered
done
echo "($KEYS keys, ${DURATION}s per run, logs in $RUN)"
