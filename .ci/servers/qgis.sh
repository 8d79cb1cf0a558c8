#!/usr/bin/env bash
# QGIS Server 3.22 (Debian) for GeoWatch WFS-T 1.1.0 and OGC API Features (Part 4) tests, on 127.0.0.1.
#   install  idempotent: the Debian packages (see the apt line)
#   start    rebuilds every layer EMPTY (a known state), builds the project with PyQGIS
#            (.ci/servers/qgis/make_project.py), starts qgis_mapserver, waits for GetCapabilities, writes
#            .servers/env/qgis.env
#   stop     stops the pid it started
# Env: GEOWATCH_QGIS_PORT (default 28081).
# Tests read GEOWATCH_QGIS_URL (the WFS endpoint: $URL?SERVICE=WFS...; OGC API Features at $URL/wfs3).
#
# Layers (type names; one GeoPackage each under .servers/qgis/data, EPSG:4326, fields uid (text), name (text),
# value (real), count (integer), flag (boolean), updated (datetime), geometry column `geometry`). QGIS does
# not publish an any-type geometry column, so each geometry type a test needs has its own layer:
LAYERS=(
  writer:Point                  # @geowatch/wfs writer tests (WFS-T 1.1.0): test/writer*.test.ts
  ogcapi:Point                  # @geowatch/wfs OGC API Features writes: test/ogcapi*.test.ts
  conformance:Point             # testkit producerSuite/storeSuite
  system:Point                  # the 50,000-edit SIGKILL system test: test/system*.test.ts
  bench:Point                   # bench/wfs-writer.bench.mjs
  poll:Point                    # the reader's polling tests (the reader writes here itself)
  geom_point:Point              # one layer per RFC 7946 type, for GML round trips through the server
  geom_linestring:LineString
  geom_polygon:Polygon
  geom_multipoint:MultiPoint
  geom_multilinestring:MultiLineString
  geom_multipolygon:MultiPolygon
)
# QGIS Server quirks the tests live with: WFS 1.0.0/1.1.0 only (2.0.0 requests answer 1.1.0); Delete only by
# ogc:FeatureId; a Transaction is not atomic (failed actions are reported per handle, the others stay);
# InsertResults come in reverse order (matched through the Insert handles); one request at a time.
# apt: qgis-server python3-qgis gdal-bin
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
BASE="$ROOT/.servers/qgis"
DATA="$BASE/data"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_QGIS_PORT:-28081}"
URL="http://127.0.0.1:$PORT/ows"

log() { echo "[qgis.sh] $*" >&2; }

install() {
  need_apt qgis-server python3-qgis gdal-bin
  mkdir -p "$BASE" "$ENV_DIR"
  command -v qgis_mapserver >/dev/null || { log "qgis_mapserver not found after installing qgis-server"; return 1; }
  log "installed: $(dpkg-query -W -f='qgis-server ${Version}' qgis-server)"
}

answers() {
  curl -fsS -m 5 "$URL?SERVICE=WFS&REQUEST=GetCapabilities&VERSION=1.1.0" 2>/dev/null | grep -q "WFS_Capabilities"
}

running() { [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null; }

start() {
  command -v qgis_mapserver >/dev/null && /usr/bin/python3 -c 'import qgis.core' 2>/dev/null || install
  mkdir -p "$BASE" "$ENV_DIR"
  # A running server holds the GeoPackages open: stop it before the layers are made empty again.
  if running; then stop; fi
  rm -rf "$DATA"
  mkdir -p "$DATA"
  log "making ${#LAYERS[@]} empty layers and the project in $DATA"
  QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$BASE" /usr/bin/python3 "$ROOT/.ci/servers/qgis/make_project.py" "$DATA" "${LAYERS[@]}" \
    >"$BASE/project.log" 2>&1 || { log "project build failed:"; tail -20 "$BASE/project.log" >&2; return 1; }
  log "starting qgis_mapserver on 127.0.0.1:$PORT"
  # Test data: GeoPackage writes without fsync (each WFS-T action is its own SQLite commit in QGIS Server).
  QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$BASE" QGIS_SERVER_LOG_LEVEL=2 OGR_SQLITE_SYNCHRONOUS=OFF \
    nohup qgis_mapserver -p "$DATA/project.qgs" "127.0.0.1:$PORT" >"$BASE/server.log" 2>&1 &
  echo $! > "$BASE/pid"
  local deadline=$((SECONDS + ${GEOWATCH_QGIS_START_TIMEOUT:-90}))
  until answers; do
    if ! running; then log "server exited; last log lines:"; tail -30 "$BASE/server.log" >&2; rm -f "$BASE/pid"; return 1; fi
    if [ $SECONDS -ge $deadline ]; then log "no answer after ${GEOWATCH_QGIS_START_TIMEOUT:-90}s"; tail -30 "$BASE/server.log" >&2; return 1; fi
    sleep 0.5
  done
  {
    echo "export GEOWATCH_QGIS_URL=$URL"
    echo "export GEOWATCH_QGIS_PORT=$PORT"
    echo "export GEOWATCH_QGIS_DATA=$DATA"
  } > "$ENV_DIR/qgis.env"
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/qgis.env"
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
  rm -f "$ENV_DIR/qgis.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
