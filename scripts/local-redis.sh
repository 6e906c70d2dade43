#!/usr/bin/env bash
# Runs a Redis server in the foreground for local development and tests. Inputs (environment):
# REDIS_PORT, REDIS_DATA, REDIS_PASSWORD, REDIS_MAXMEMORY (default 1gb). Configured for money, like the
# deployment manifest (src/Cortensor.AppHost/PortalInfrastructure.cs): an append-only file fsynced every
# second (a crash loses at most a second of counters and buffered usage), and noeviction (a full Redis
# refuses writes, and the Api spools usage to disk, instead of silently dropping the usage stream).
set -euo pipefail
: "${REDIS_PORT:?REDIS_PORT is required}" "${REDIS_DATA:?REDIS_DATA is required}" "${REDIS_PASSWORD:?REDIS_PASSWORD is required}"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: install it with apt-get install -y redis-server" >&2
  exit 1
fi
mkdir -p "$REDIS_DATA"
exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DATA" --requirepass "$REDIS_PASSWORD" \
  --appendonly yes --appendfsync everysec --save "" \
  --maxmemory "${REDIS_MAXMEMORY:-1gb}" --maxmemory-policy noeviction \
  --daemonize no --loglevel warning 2>&1
