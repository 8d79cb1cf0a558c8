#!/usr/bin/env bash
# PostgreSQL 15 with PostGIS 3 (Debian) for GeoWatch tests: one cluster on 127.0.0.1, trust auth for local
# test users, shared by every suite that needs PostgreSQL (each test creates its own database or schema).
#   install  idempotent: the Debian packages (see the apt line), then initdb into .servers/postgres/data
#   start    pg_ctl start (waits until it accepts connections), writes .servers/env/postgres.env
#   stop     pg_ctl stop of the cluster it started
# Env: GEOWATCH_PG_PORT (default 25432).
# Tests read GEOWATCH_PG_URL (superuser "postgres", database "postgres"); PostGIS is available to
# `CREATE EXTENSION postgis` in any database.
# apt: postgresql postgresql-15-postgis-3
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
BASE="$ROOT/.servers/postgres"
DATA="$BASE/data"
SOCK="$BASE/sock"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_PG_PORT:-25432}"

log() { echo "[postgres.sh] $*" >&2; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && echo "$d" && return 0; done
  return 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

install() {
  need_apt postgresql postgresql-15-postgis-3
  mkdir -p "$BASE" "$SOCK" "$ENV_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$BASE" "$SOCK"
  if [ -s "$DATA/PG_VERSION" ]; then
    log "cluster already initialised in $DATA"
    return 0
  fi
  local bin; bin="$(bindir)"
  rm -rf "$DATA"
  as_pg "'$bin/initdb' -D '$DATA' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >"$BASE/initdb.log" 2>&1 \
    || { log "initdb failed:"; tail -20 "$BASE/initdb.log" >&2; return 1; }
  log "initialised $DATA"
}

ready() { "$(bindir)/pg_isready" -h 127.0.0.1 -p "$PORT" -q; }

start() {
  [ -s "$DATA/PG_VERSION" ] || install
  local bin; bin="$(bindir)"
  if ready; then
    log "already running on 127.0.0.1:$PORT"
  else
    as_pg "'$bin/pg_ctl' -D '$DATA' -l '$BASE/server.log' -w -t 60 -o \"-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >&2 \
      || { log "pg_ctl start failed; last log lines:"; tail -30 "$BASE/server.log" >&2; return 1; }
  fi
  {
    echo "export GEOWATCH_PG_HOST=127.0.0.1"
    echo "export GEOWATCH_PG_PORT=$PORT"
    echo "export GEOWATCH_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
  } > "$ENV_DIR/postgres.env"
  log "ready on 127.0.0.1:$PORT; env in $ENV_DIR/postgres.env"
}

stop() {
  local bin; bin="$(bindir)" || { log "not installed"; return 0; }
  if [ -s "$DATA/postmaster.pid" ]; then
    as_pg "'$bin/pg_ctl' -D '$DATA' -m fast -w stop" >&2 || true
  else
    log "not running"
  fi
  rm -f "$ENV_DIR/postgres.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
