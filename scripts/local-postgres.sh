#!/usr/bin/env bash
# Runs a PostgreSQL 15 server in the foreground for local development and tests, where no
# container runtime exists. Inputs (environment): PGPORT, PGDATA, POSTGRES_PASSWORD.
# The data directory is created (initdb, scram-sha-256) on first start and reused after.
set -euo pipefail
: "${PGPORT:?PGPORT is required}" "${PGDATA:?PGDATA is required}" "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"

bin=""
for candidate in "${POSTGRES_BIN:-}" /usr/lib/postgresql/*/bin; do
  if [ -n "$candidate" ] && [ -x "$candidate/postgres" ]; then bin=$candidate; fi
done
if [ -z "$bin" ]; then
  echo "PostgreSQL server binaries not found: install postgresql (apt-get install -y postgresql) or set POSTGRES_BIN" >&2
  exit 1
fi

run=()
if [ "$(id -u)" = 0 ]; then
  # Postgres refuses to run as root; the distribution's postgres account owns the data instead.
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  run=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi

mkdir -p "$PGDATA"
socket_dir="$PGDATA/../$(basename "$PGDATA")-socket"
mkdir -p "$socket_dir"
if [ ${#run[@]} -gt 0 ]; then chown postgres:postgres "$PGDATA" "$socket_dir"; fi
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chmod 644 "$pwfile"
  "${run[@]}" "$bin/initdb" -D "$PGDATA" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "initialised a new database cluster in $PGDATA"
fi

# A server killed without its shutdown leaves postmaster.pid behind. If that PID now belongs to an
# orphaned server of this data directory, stop it; if it belongs to anything else, the file is stale.
pidfile="$PGDATA/postmaster.pid"
if [ -f "$pidfile" ]; then
  old=$(head -n 1 "$pidfile")
  if [ -n "$old" ] && tr '\0' ' ' < "/proc/$old/cmdline" 2>/dev/null | grep -q "postgres.*-D $PGDATA"; then
    echo "stopping an orphaned server (pid $old) of $PGDATA"
    "${run[@]}" "$bin/pg_ctl" -D "$PGDATA" stop -m fast -w >/dev/null 2>&1 || kill -9 "$old" 2>/dev/null || true
  else
    echo "removing a stale $pidfile"
  fi
  rm -f "$pidfile"
fi

exec "${run[@]}" "$bin/postgres" -D "$PGDATA" -p "$PGPORT" -k "$socket_dir" \
  -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB \
  -c synchronous_commit=on -c log_min_messages=warning 2>&1
