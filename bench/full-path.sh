#!/usr/bin/env bash
# bench/full-path.sh: hookgate's whole path (verify, route, durable enqueue,
# re-sign, forward) under the shared harness, beside nginx-proxy in the same
# run, with what the harness cannot see from outside: events per fsync,
# deliveries per claim, RSS idle and at its peak under load.
#
#   cargo build --release && bench/full-path.sh
#
# hookgate runs pinned to SERVER_CPU (as run-peers.sh pins its peers) on
# bench/hookgate.yaml, delivering to the harness's sink; the harness measures
# it as an already-running gateway. Delivered/s is the sink's count
# (`sink_fwd`) over the run. The harness does not know this gateway's PID,
# so its row shows no `srv_cpu_pct` and counts hookgate's CPU as
# `other_pct` (and so measures it again, up to RETRIES times). The backlog
# gauge and RSS are sampled every 2 s (printed at the end). Knobs: PAYLOADS=1k DURATION=10 SERVER_CPU=1
# PEERS="nginx-proxy gateway" HOOKGATE=target/release/hookgate.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
HOOKGATE=${HOOKGATE:-$ROOT/target/release/hookgate}
SERVER_CPU=${SERVER_CPU:-1}
export PAYLOADS=${PAYLOADS:-1k} DURATION=${DURATION:-10}
export PEERS=${PEERS:-"nginx-proxy gateway"}
METRICS=http://127.0.0.1:18101/metrics
[[ -x $HOOKGATE ]] || { echo "no $HOOKGATE: run cargo build --release first" >&2; exit 1; }

RUN=$(mktemp -d /tmp/hookgate-full.XXXXXX)
GW_PID=
cleanup() { [[ -n $GW_PID ]] && kill "$GW_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# The harness's sink listens on PORT_BASE (18000) at /sink.
export BENCH_RUN_DIR=$RUN BENCH_ROUTE_EVENT=status-changed
export BENCH_DOWNSTREAM_URL=http://127.0.0.1:${PORT_BASE:-18000}/sink
BENCH_SECRET=$(tr -d '\r\n' <"$SHARED/payloads/secret.txt")
BENCH_DOWNSTREAM_SECRET=$(tr -d '\r\n' <"$SHARED/payloads/downstream-secret.txt")
export BENCH_SECRET BENCH_DOWNSTREAM_SECRET
HOOKGATE_LOG=warn taskset -c "$SERVER_CPU" "$HOOKGATE" serve -c "$HERE/hookgate.yaml" \
  >"$RUN/hookgate.log" 2>&1 &
GW_PID=$!
until curl -sf http://127.0.0.1:18101/readyz >/dev/null; do sleep 0.1; done
sleep 1
rss() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$GW_PID/status"; }
metric() { curl -s "$METRICS" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'; }
idle_rss=$(rss VmRSS)
# The backlog (deliveries not finished) every 2 s through the whole harness
# run: it must stop growing once delivery has caught up with ingest.
( while kill -0 "$GW_PID" 2>/dev/null; do
    echo "$(date +%T) $(metric hookgate_queue_backlog_deliveries) $(rss VmRSS)"
    sleep 2
  done ) >"$RUN/backlog.txt" 2>/dev/null &
SAMPLER=$!
GATEWAY_URL=http://127.0.0.1:18100/hooks/in "$SHARED/run-peers.sh" | tee "$RUN/peers.txt"
kill "$SAMPLER" 2>/dev/null || true

commits=$(metric hookgate_queue_commits_total)
events=$(metric hookgate_queue_events_committed_total)
claims=$(metric hookgate_queue_claims_total)
claimed=$(metric hookgate_queue_claimed_deliveries_total)
handed=$(metric hookgate_queue_handed_off_total)
echo
echo "hookgate: idle RSS ${idle_rss} MiB, peak RSS $(rss VmHWM) MiB;" \
  "events per fsync $(awk -v e="$events" -v c="$commits" 'BEGIN { printf "%.1f", c ? e / c : 0 }');" \
  "deliveries per claim $(awk -v d="$claimed" -v c="$claims" 'BEGIN { printf "%.1f", c ? d / c : 0 }');" \
  "handed off without a claim ${handed} (claimed ${claimed})" \
  "(whole harness run, warmup included); logs in $RUN"
echo "backlog (deliveries not finished) and RSS (MiB) every 2 s:"
awk '{ printf "  %s  backlog %s  rss %s\n", $1, $2, $3 }' "$RUN/backlog.txt"
