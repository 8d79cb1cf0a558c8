#!/usr/bin/env bash
# kinesalite (a faithful Kinesis emulator from npm) for GeoWatch tests, on 127.0.0.1.
#   install  idempotent; npm installs kinesalite into .servers/kinesalite
#   start    starts it (in memory) on 127.0.0.1, waits until it answers, writes .servers/env/kinesalite.env
#   stop     kills the pid it started
# Env: GEOWATCH_KINESALITE_PORT (default 24567).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/kinesalite"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_KINESALITE_PORT:-24567}"
VERSION="3.3.3"

log() { echo "[kinesalite.sh] $*" >&2; }

node_bin() {
  # Node 24 from the project's toolchain when present, else the machine's node.
  if [ -f "$ROOT/scripts/env.sh" ]; then
    # shellcheck disable=SC1091
    source "$ROOT/scripts/env.sh" >/dev/null 2>&1 || true
  fi
  command -v node
}

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if [ -f "$BASE/node_modules/kinesalite/package.json" ] && grep -q "\"version\": \"$VERSION\"" "$BASE/node_modules/kinesalite/package.json"; then
    log "installed: kinesalite $VERSION"
    return 0
  fi
  node_bin >/dev/null
  log "installing kinesalite $VERSION with npm"
  [ -f "$BASE/package.json" ] || echo '{ "name": "geowatch-kinesalite", "private": true }' > "$BASE/package.json"
  (cd "$BASE" && npm install --no-audit --no-fund --loglevel=error "kinesalite@$VERSION")
  log "installed: kinesalite $VERSION"
}

ready() {
  # Any HTTP answer means the server listens (kinesalite answers 400/403 to a bare GET).
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'GET / HTTP/1.0\r\n\r\n' >&3; head -c 4 <&3 | grep -q HTTP" 2>/dev/null
}

write_env() {
  mkdir -p "$ENV_DIR"
  {
    echo "export GEOWATCH_KINESIS_ENDPOINT=http://127.0.0.1:$PORT"
    echo "export GEOWATCH_KINESALITE_PORT=$PORT"
  } > "$ENV_DIR/kinesalite.env"
}

start() {
  install
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && ready; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
    write_env
    return 0
  fi
  local node; node="$(node_bin)"
  log "starting on 127.0.0.1:$PORT"
  KINESALITE_HOME="$BASE" nohup "$node" "$ROOT/.ci/servers/kinesalite/server.cjs" "$PORT" > "$BASE/server.log" 2>&1 &
  echo $! > "$BASE/pid"
  local deadline=$((SECONDS + 30))
  until ready; do
    if ! kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
      log "kinesalite exited; last log lines:"; tail -20 "$BASE/server.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then log "not ready after 30s"; tail -20 "$BASE/server.log" >&2; return 1; fi
    sleep 0.2
  done
  write_env
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/kinesalite.env"
}

stop() {
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
    local pid; pid="$(cat "$BASE/pid")"
    log "stopping (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  else
    log "not running"
  fi
  rm -f "$BASE/pid"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 install|start|stop|restart" >&2; exit 2 ;;
esac
