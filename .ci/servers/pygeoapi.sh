#!/usr/bin/env bash
# pygeoapi (PyPI) for GeoWatch OGC API Features Part 4 tests: a second server with transactions, on 127.0.0.1.
# The editable provider is TinyDB (pygeoapi's TinyDB feature provider implements create/update/delete), so no
# database server is needed. Collection: `points` (empty at every start).
#   install  idempotent; a venv in .servers/pygeoapi (reinstalled only when the pinned line changes)
#   start    empties the collection, writes the config and OpenAPI document, starts waitress, waits for
#            /collections/points, writes .servers/env/pygeoapi.env
#   stop     stops the pid it started
# Env: GEOWATCH_PYGEOAPI_PORT (default 28082), GEOWATCH_PYTHON (the python that makes the venv, default python3).
# Tests read GEOWATCH_PYGEOAPI_URL (the landing page).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/pygeoapi"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_PYGEOAPI_PORT:-28082}"
PYTHON="${GEOWATCH_PYTHON:-python3}"
VENV="$BASE/venv"
REQUIREMENTS=("pygeoapi==0.21.0" "tinydb==4.9.0" "waitress==3.0.2")
URL="http://127.0.0.1:$PORT"

log() { echo "[pygeoapi.sh] $*" >&2; }

installed() {
  [ -x "$VENV/bin/python" ] && [ -f "$BASE/installed" ] && [ "$(cat "$BASE/installed")" = "${REQUIREMENTS[*]}" ] \
    && "$VENV/bin/python" -c 'import pygeoapi, tinydb, waitress' >/dev/null 2>&1
}

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if installed; then
    log "already installed: ${REQUIREMENTS[*]}"
    return 0
  fi
  if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "$PYTHON has no venv/ensurepip; installing Debian python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-venv || { apt-get update && apt-get install -y --no-install-recommends python3-venv; }
  fi
  log "creating venv in $VENV and installing ${REQUIREMENTS[*]}"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  echo "${REQUIREMENTS[*]}" > "$BASE/installed"
  log "installed: ${REQUIREMENTS[*]}"
}

answers() {
  curl -fsS -m 5 "$URL/collections/points?f=json" 2>/dev/null | grep -q '"id"'
}

running() { [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null; }

start() {
  installed || install
  if running; then stop; fi
  mkdir -p "$BASE/data" "$ENV_DIR"
  echo '{"_default": {}}' > "$BASE/data/points.json"
  sed "s|@PORT@|$PORT|g; s|@DATA@|$BASE/data|g" "$ROOT/.ci/servers/pygeoapi/pygeoapi.config.yml.in" > "$BASE/config.yml"
  export PYGEOAPI_CONFIG="$BASE/config.yml" PYGEOAPI_OPENAPI="$BASE/openapi.yml"
  "$VENV/bin/pygeoapi" openapi generate "$BASE/config.yml" --output-file "$BASE/openapi.yml" >"$BASE/openapi.log" 2>&1 \
    || { log "openapi generate failed:"; tail -20 "$BASE/openapi.log" >&2; return 1; }
  log "starting pygeoapi on $URL"
  nohup "$VENV/bin/waitress-serve" --listen="127.0.0.1:$PORT" pygeoapi.flask_app:APP >"$BASE/server.log" 2>&1 &
  echo $! > "$BASE/pid"
  local deadline=$((SECONDS + ${GEOWATCH_PYGEOAPI_START_TIMEOUT:-60}))
  until answers; do
    if ! running; then log "server exited; last log lines:"; tail -30 "$BASE/server.log" >&2; rm -f "$BASE/pid"; return 1; fi
    if [ $SECONDS -ge $deadline ]; then log "no answer after ${GEOWATCH_PYGEOAPI_START_TIMEOUT:-60}s"; tail -30 "$BASE/server.log" >&2; return 1; fi
    sleep 0.3
  done
  {
    echo "export GEOWATCH_PYGEOAPI_URL=$URL"
    echo "export GEOWATCH_PYGEOAPI_PORT=$PORT"
  } > "$ENV_DIR/pygeoapi.env"
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/pygeoapi.env"
}

stop() {
  if [ -s "$BASE/pid" ]; then
    local pid; pid="$(cat "$BASE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$BASE/pid"
  else
    log "not running"
  fi
  rm -f "$ENV_DIR/pygeoapi.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
