#!/usr/bin/env bash
# Koop (npm @koopjs/koop-core + @koopjs/provider-file-geojson) for the registry's tests: a read-only Esri
# FeatureServer on 127.0.0.1:GEOWATCH_REGISTRY_KOOP_PORT (28094) over the registry's test cells
# (…/file-geojson/rest/services/cells/FeatureServer). Installed into .servers/registry-koop with npm (it
# builds a native module), reinstalled only when the pinned versions change.
#   install  idempotent; start: data, server, waits, writes .servers/env/registry-koop.env; stop: the pid it started
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/.ci/servers/registry"
BASE="$ROOT/.servers/registry-koop"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_REGISTRY_KOOP_PORT:-28094}"
PACKAGES="@koopjs/koop-core@10.4.19 @koopjs/provider-file-geojson@2.2.0"

log() { echo "[registry-koop.sh] $*" >&2; }

installed() { [ "$(cat "$BASE/installed" 2>/dev/null)" = "$PACKAGES" ] && [ -d "$BASE/node_modules/@koopjs/koop-core" ]; }

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if installed; then log "already installed: $PACKAGES"; return 0; fi
  command -v npm >/dev/null || { log "npm not found (source scripts/env.sh first)"; return 1; }
  log "installing $PACKAGES"
  rm -rf "$BASE/node_modules" "$BASE/package.json" "$BASE/package-lock.json"
  echo '{"name":"geowatch-registry-koop","private":true}' > "$BASE/package.json"
  # shellcheck disable=SC2086
  (cd "$BASE" && npm install --no-audit --no-fund --silent $PACKAGES) >"$BASE/install.log" 2>&1 \
    || { log "npm install failed:"; tail -20 "$BASE/install.log" >&2; return 1; }
  echo "$PACKAGES" > "$BASE/installed"
}

answers() { curl -fsS -m 5 "http://127.0.0.1:$PORT/file-geojson/rest/services/cells/FeatureServer?f=json" 2>/dev/null | grep -q '"layers"'; }

start() {
  installed || install
  mkdir -p "$BASE/data" "$ENV_DIR"
  python3 "$HERE/make_data.py" "$BASE/data/cells.geojson"
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && answers; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
  else
    log "starting Koop on 127.0.0.1:$PORT"
    (cd "$BASE" && SUPPRESS_NO_CONFIG_WARNING=1 NODE_PATH="$BASE/node_modules" exec node "$HERE/koop-server.cjs" "$PORT" data) >"$BASE/server.log" 2>&1 </dev/null &
    echo $! > "$BASE/pid"
    local deadline=$((SECONDS + 60))
    until answers; do
      if ! kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then log "Koop exited:"; tail -20 "$BASE/server.log" >&2; return 1; fi
      if [ $SECONDS -ge $deadline ]; then log "not ready after 60s:"; tail -20 "$BASE/server.log" >&2; return 1; fi
      sleep 0.3
    done
  fi
  echo "export GEOWATCH_REGISTRY_KOOP_URL=http://127.0.0.1:$PORT/file-geojson/rest/services/cells/FeatureServer" > "$ENV_DIR/registry-koop.env"
  log "ready; env in $ENV_DIR/registry-koop.env"
}

stop() {
  if [ -s "$BASE/pid" ]; then
    local pid; pid="$(cat "$BASE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping (pid $pid)"; kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$BASE/pid"
  else
    log "not running"
  fi
  rm -f "$ENV_DIR/registry-koop.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
