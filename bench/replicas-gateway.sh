#!/usr/bin/env bash
# bench/replicas-gateway.sh: three hookgate replicas on one Redis (AOF,
# appendfsync always) behind nginx round robin, started in the foreground as
# the `gateway` row of the shared harness:
#
#   cargo build --release
#   GATEWAY_CMD="$PWD/bench/replicas-gateway.sh" \
#   GATEWAY_URL=http://127.0.0.1:18100/hooks/in PEERS=gateway PAYLOADS=1k \
#   ../shared/bench/run-peers.sh
#
# The harness pins this script to its server CPU, so Redis, nginx and the
# three replicas all share that one core (and stops them all: they are in
# this script's process group). Knobs: REPLICAS=3 REDIS_PORT=18190
# HOOKGATE=target/release/hookgate.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOOKGATE=${HOOKGATE:-$(dirname "$HERE")/target/release/hookgate}
REPLICAS=${REPLICAS:-3}
export REDIS_PORT=${REDIS_PORT:-18190}
RUN=${BENCH_RUN_DIR:-$(mktemp -d /tmp/hookgate-replicas.XXXXXX)}/replicas
mkdir -p "$RUN"
command -v redis-server >/dev/null || { echo "needs redis-server" >&2; exit 1; }
command -v nginx >/dev/null || NGINX=/usr/sbin/nginx
NGINX=${NGINX:-nginx}

trap 'kill 0' EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
  --appendonly yes --appendfsync always --dir "$RUN" >"$RUN/redis.log" 2>&1 &
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

upstreams=
for i in $(seq 0 $((REPLICAS - 1))); do
  port=$((18110 + i))
  REPLICA_PORT=$port REPLICA_ADMIN_PORT=$((18120 + i)) HOOKGATE_LOG=warn \
    "$HOOKGATE" serve -c "$HERE/hookgate-redis.yaml" >"$RUN/replica-$i.log" 2>&1 &
  upstreams+="server 127.0.0.1:$port;"
done
for i in $(seq 0 $((REPLICAS - 1))); do
  until curl -sf "http://127.0.0.1:$((18120 + i))/readyz" >/dev/null; do sleep 0.1; done
done

cat >"$RUN/nginx.conf" <<CONF
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream replicas { $upstreams keepalive 64; }
  server {
    listen 127.0.0.1:18100;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
"$NGINX" -c "$RUN/nginx.conf" -g 'daemon off;' &
wait
