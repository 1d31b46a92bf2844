#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs the whole suite:
# Python deps in .venv, Chromium (and Firefox ESR where apt has it) for the browser tests,
# the extension's npm packages, a Redis on 127.0.0.1:6379 if none answers; then ruff,
# the JavaScript unit tests and pytest (browser tests included; REQUIRE_E2E=1 makes a
# missing browser an error instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."

make --no-print-directory install

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q firefox-esr || true
  else
    echo "test.sh: chromium missing and not root: install it (apt-get install chromium)" >&2
  fi
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ -f extension/package.json ]; then
  (cd extension && npm ci --no-audit --no-fund --loglevel=error)
fi

.venv/bin/ruff check .
if [ -f extension/package.json ]; then
  (cd extension && npm test)
fi
.venv/bin/python -m pytest "$@"

# The integration tests again, against a 3-node Redis Cluster on loopback ports (the job queue,
# which RQ keeps on a single Redis, stays on 127.0.0.1:6379).
cluster_url=$(scripts/redis-cluster.sh start 7100)
trap 'scripts/redis-cluster.sh stop 7100' EXIT
PAPERFEED_TEST_REDIS_URL="$cluster_url" PAPERFEED_TEST_QUEUE_REDIS_URL=redis://127.0.0.1:6379/0 \
  .venv/bin/python -m pytest -m integration -p no:cacheprovider "$@"
