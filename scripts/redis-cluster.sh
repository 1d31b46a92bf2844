#!/usr/bin/env bash
# Start (or stop) a 3-node Redis Cluster on loopback ports for the tests:
#   scripts/redis-cluster.sh start [BASE_PORT]   -> prints redis+cluster://127.0.0.1:BASE_PORT
#   scripts/redis-cluster.sh stop [BASE_PORT]
# Data lives in a temporary directory; nothing is kept on disk after stop.
set -euo pipefail
cmd=${1:-start}
base=${2:-7100}
dir=${PAPERFEED_CLUSTER_DIR:-/tmp/paperfeed-cluster-$base}
ports=("$base" "$((base + 1))" "$((base + 2))")

if [ "$cmd" = stop ]; then
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$dir"
  exit 0
fi

if redis-cli -p "$base" cluster info 2>/dev/null | grep -q cluster_state:ok; then
  echo "redis+cluster://127.0.0.1:$base"
  exit 0
fi
rm -rf "$dir"
for p in "${ports[@]}"; do
  mkdir -p "$dir/$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/$p/nodes.conf" --dir "$dir/$p" --save "" --appendonly no \
    --daemonize yes --logfile "$dir/$p/redis.log"
done
for p in "${ports[@]}"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 100); do
  ok=1
  for p in "${ports[@]}"; do
    redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.1
done
echo "redis+cluster://127.0.0.1:$base"
