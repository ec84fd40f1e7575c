#!/usr/bin/env bash
# bench/ingest.sh: accepted events per second on hookgate's durable path
# (verify, decode, route, SQLite WAL with synchronous=FULL, group commit, 202)
# at 1, 16 and 64 concurrent senders, and how many events each fsync carried.
#
#   cargo build --release && bench/ingest.sh
#
# It uses the shared harness's payloads and wrk script (../shared/bench), pins
# hookgate to SERVER_CPU and wrk to LOADGEN_CPU as run-peers.sh does, starts a
# fresh queue for every concurrency, and reads the group-commit counters from
# /metrics before and after each measured run. Loopback only; bounded in time.
#
# Knobs (env): SENDERS="1 16 64" DURATION=10 WARMUP=2 PAYLOAD=1k
#   SERVER_CPU=1 LOADGEN_CPU=0 PIN=1 HOOKGATE=target/release/hookgate
#   CONFIG=bench/hookgate-ingest.yaml (the target disabled: nothing forwarded)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
SENDERS=${SENDERS:-"1 16 64"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PAYLOAD=${PAYLOAD:-1k}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
PIN=${PIN:-1}
HOOKGATE=${HOOKGATE:-$ROOT/target/release/hookgate}
CONFIG=${CONFIG:-$HERE/hookgate-ingest.yaml}
URL=http://127.0.0.1:18100/hooks/in
METRICS=http://127.0.0.1:18101/metrics

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
[[ -x $HOOKGATE ]] || { echo "no $HOOKGATE: run cargo build --release first" >&2; exit 1; }
BODY=$SHARED/payloads/event-$PAYLOAD.json
[[ -f $BODY ]] || { echo "no payload $BODY" >&2; exit 1; }

pin() { if [[ $PIN == 1 ]]; then echo "taskset -c $1"; fi; }
metric() { # name -> value; stops the script if /metrics cannot be read
  local text
  text=$(curl -s --max-time 5 "$METRICS") || { echo "cannot read $METRICS (did hookgate stop? see $RUN)" >&2; exit 1; }
  awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }' <<<"$text"
}

RUN=$(mktemp -d /tmp/hookgate-ingest.XXXXXX)
GW_PID=
cleanup() { [[ -n $GW_PID ]] && kill "$GW_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

export BENCH_SECRET BENCH_DOWNSTREAM_URL=http://127.0.0.1:9/ BENCH_DOWNSTREAM_SECRET=unused
BENCH_SECRET=$(<"$SHARED/payloads/secret.txt")
export BENCH_ROUTE_EVENT=status-changed

printf '%-8s %10s %8s %8s %10s %8s\n' senders accepted/s p50_ms p99_ms events/sync errors
for c in $SENDERS; do
  export BENCH_RUN_DIR=$RUN/c$c
  mkdir -p "$BENCH_RUN_DIR"
  # shellcheck disable=SC2046
  HOOKGATE_LOG=warn $(pin "$SERVER_CPU") "$HOOKGATE" serve -c "$CONFIG" >"$RUN/gw-$c.log" 2>&1 &
  GW_PID=$!
  up=0
  for _ in $(seq 50); do curl -s -o /dev/null "$METRICS" && { up=1; break; }; sleep 0.1; done
  ((up)) || { echo "hookgate did not start; its log: $RUN/gw-$c.log" >&2; exit 1; }
  threads=$((c < 2 ? 1 : 2))
  wrk_run() { # seconds outfile
    # shellcheck disable=SC2046
    BODY_FILE=$BODY $(pin "$LOADGEN_CPU") wrk -t$threads -c"$c" -d"$1"s --timeout 5s --latency \
      -s "$SHARED/wrk/post.lua" "$URL" >"$2" 2>&1
  }
  ((WARMUP > 0)) && wrk_run "$WARMUP" "$RUN/warmup-$c.txt"
  commits0=$(metric hookgate_queue_commits_total)
  events0=$(metric hookgate_queue_events_committed_total)
  wrk_run "$DURATION" "$RUN/wrk-$c.txt"
  commits1=$(metric hookgate_queue_commits_total)
  events1=$(metric hookgate_queue_events_committed_total)
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=
  line=$(grep -m1 '^BENCH_RESULT' "$RUN/wrk-$c.txt") || { echo "wrk failed: $RUN/wrk-$c.txt" >&2; exit 1; }
  declare -A v=()
  for kv in ${line#BENCH_RESULT }; do v[${kv%%=*}]=${kv#*=}; done
  errors=$((v[bad_status] + v[connect_err] + v[read_err] + v[write_err] + v[timeouts]))
  awk -v c="$c" -v rps="${v[rps]}" -v p50="${v[p50_us]}" -v p99="${v[p99_us]}" \
      -v dc=$((commits1 - commits0)) -v de=$((events1 - events0)) -v err="$errors" \
      'BEGIN { printf "%-8s %10.0f %8.2f %8.2f %10.1f %8d\n", c, rps, p50 / 1000, p99 / 1000, (dc > 0 ? de / dc : 0), err }'
done
echo "(hookgate on cpu$SERVER_CPU, wrk on cpu$LOADGEN_CPU; raw output in $RUN)"
