#!/usr/bin/env bash
# memcached (Debian) for GeoWatch tests: one private daemon on 127.0.0.1, independent of any system service.
#   install  idempotent: the Debian package (see the apt line)
#   start    memcached -l 127.0.0.1 -p PORT -U 0 -m 64 -I 2m, waits until it answers, writes .servers/env/memcached.env
#   stop     kills the pid it started
# Env: GEOWATCH_MEMCACHED_PORT (default 21211).
# Tests read GEOWATCH_MEMCACHED_SERVERS (host:port) and GEOWATCH_MEMCACHED_BIN (the binary, for tests that
# start and stop a daemon of their own on another port).
# apt: memcached
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
BASE="$ROOT/.servers/memcached"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_MEMCACHED_PORT:-21211}"
PIDFILE="$BASE/pid"

log() { echo "[memcached.sh] $*" >&2; }

bin() {
  if [ -x /usr/bin/memcached ]; then echo /usr/bin/memcached; else command -v memcached; fi
}

install() {
  need_apt memcached
  mkdir -p "$BASE" "$ENV_DIR"
  log "installed: $("$(bin)" -V)"
}

# A real protocol exchange: `version` answers "VERSION x.y.z".
ready() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'version\r\n' >&3; head -c 8 <&3 | grep -q VERSION" 2>/dev/null
}

running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

write_env() {
  {
    echo "export GEOWATCH_MEMCACHED_SERVERS=127.0.0.1:$PORT"
    echo "export GEOWATCH_MEMCACHED_BIN=$(bin)"
  } > "$ENV_DIR/memcached.env"
}

start() {
  [ -n "$(bin 2>/dev/null)" ] || install
  mkdir -p "$BASE" "$ENV_DIR"
  if running && ready; then
    log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    write_env
    return 0
  fi
  local user=()
  [ "$(id -u)" = 0 ] && user=(-u root)
  # -U 0: no UDP; -m 64: 64 MB of items; -I 2m: items up to 2 MiB.
  "$(bin)" "${user[@]}" -l 127.0.0.1 -p "$PORT" -U 0 -m 64 -I 2m -c 1024 > "$BASE/server.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do
    if ready; then
      write_env
      log "ready (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT; env in $ENV_DIR/memcached.env"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      log "memcached exited; its output:"; cat "$BASE/server.log" >&2; rm -f "$PIDFILE"; return 1
    fi
    sleep 0.1
  done
  log "not ready after 10 s"; return 1
}

stop() {
  if running; then
    local pid; pid="$(cat "$PIDFILE")"
    log "stopping (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  else
    log "not running"
  fi
  rm -f "$PIDFILE" "$ENV_DIR/memcached.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
