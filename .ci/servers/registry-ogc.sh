#!/usr/bin/env bash
# OGC servers the registry's tests harvest and check (apps/registry), on 127.0.0.1, with their own data:
#   QGIS Server 3.22 on GEOWATCH_REGISTRY_QGIS_PORT (28090): WMS 1.3.0/1.1.1, WMTS, WFS 1.1.0, OGC API Features (/wfs3)
#   MapServer 8 on GEOWATCH_REGISTRY_MAPSERVER_PORT (28093): WMS with a time dimension, WFS 2.0.0, OGC API Features
# Both serve `cells` (24 polygons, made by registry/make_data.py). Separate from qgis.sh/mapserver.sh (other
# suites, other ports).
#   install  idempotent: the Debian packages (apt line; chromium is for the registry UI tests), the data (a GeoPackage) and the QGIS project
#   start    starts both (in parallel), waits for GetCapabilities, writes .servers/env/registry-ogc.env
#   stop     the pids it started
# apt: qgis-server python3-qgis gdal-bin mapserver-bin cgi-mapserver chromium
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
HERE="$ROOT/.ci/servers/registry"
BASE="$ROOT/.servers/registry-ogc"
DATA="$BASE/data"
ENV_DIR="$ROOT/.servers/env"
QGIS_PORT="${GEOWATCH_REGISTRY_QGIS_PORT:-28090}"
MS_PORT="${GEOWATCH_REGISTRY_MAPSERVER_PORT:-28093}"
# Bump when make_data.py or make_qgis_project.py change.
DATA_VERSION=1

log() { echo "[registry-ogc.sh] $*" >&2; }

install() {
  need_apt qgis-server python3-qgis gdal-bin mapserver-bin cgi-mapserver chromium
  mkdir -p "$DATA" "$ENV_DIR"
  if [ "$(cat "$DATA/version" 2>/dev/null)" = "$DATA_VERSION" ] && [ -s "$DATA/project.qgs" ]; then
    log "data already built in $DATA"; return 0
  fi
  rm -f "$DATA/cells.gpkg" "$DATA/project.qgs"
  python3 "$HERE/make_data.py" "$DATA/cells.geojson"
  ogr2ogr -f GPKG "$DATA/cells.gpkg" "$DATA/cells.geojson" -nln cells -nlt POLYGON -a_srs EPSG:4326
  QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$BASE" /usr/bin/python3 "$HERE/make_qgis_project.py" "$DATA" >"$BASE/project.log" 2>&1 \
    || { log "QGIS project build failed:"; tail -20 "$BASE/project.log" >&2; return 1; }
  echo "$DATA_VERSION" > "$DATA/version"
  log "installed: qgis-server $(dpkg-query -W -f='${Version}' qgis-server), mapserver $(dpkg-query -W -f='${Version}' mapserver-bin)"
}

answers() { curl -fsS -m 5 "$1" 2>/dev/null | grep -q "$2"; }
running() { [ -s "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null; }

wait_ready() { # name url text
  local deadline=$((SECONDS + 90))
  until answers "$2" "$3"; do
    if ! running "$1"; then log "$1 exited:"; tail -20 "$BASE/$1.log" >&2; return 1; fi
    if [ $SECONDS -ge $deadline ]; then log "$1 not ready after 90s:"; tail -20 "$BASE/$1.log" >&2; return 1; fi
    sleep 0.3
  done
  log "$1 ready (pid $(cat "$BASE/$1.pid"))"
}

start() {
  [ "$(cat "$DATA/version" 2>/dev/null)" = "$DATA_VERSION" ] || install
  local qurl="http://127.0.0.1:$QGIS_PORT/ows" murl="http://127.0.0.1:$MS_PORT/mapserv"
  sed -e "s#@PORT@#$MS_PORT#g" -e "s#@DATA@#$DATA#g" "$HERE/cells.map.in" > "$BASE/cells.map"
  printf 'CONFIG\n  ENV\n    MS_MAP_PATTERN "^%s/"\n  END\n  MAPS\n    registry "%s"\n  END\nEND\n' "$BASE" "$BASE/cells.map" > "$BASE/mapserver.conf"
  if ! (running qgis && answers "$qurl?SERVICE=WMS&REQUEST=GetCapabilities" "WMS_Capabilities"); then
    log "starting QGIS Server on 127.0.0.1:$QGIS_PORT"
    QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$BASE" nohup qgis_mapserver -p "$DATA/project.qgs" "127.0.0.1:$QGIS_PORT" >"$BASE/qgis.log" 2>&1 &
    echo $! > "$BASE/qgis.pid"
  fi
  if ! (running mapserver && answers "$murl?SERVICE=WMS&REQUEST=GetCapabilities" "WMS_Capabilities"); then
    log "starting MapServer on 127.0.0.1:$MS_PORT"
    nohup python3 "$ROOT/.ci/servers/mapserver/server.py" "$MS_PORT" "$BASE/mapserver.conf" "$BASE/cells.map" >"$BASE/mapserver.log" 2>&1 &
    echo $! > "$BASE/mapserver.pid"
  fi
  wait_ready qgis "$qurl?SERVICE=WMS&REQUEST=GetCapabilities" "WMS_Capabilities"
  wait_ready mapserver "$murl?SERVICE=WMS&REQUEST=GetCapabilities" "WMS_Capabilities"
  {
    echo "export GEOWATCH_REGISTRY_QGIS_URL=$qurl"
    echo "export GEOWATCH_REGISTRY_MAPSERVER_URL=$murl"
  } > "$ENV_DIR/registry-ogc.env"
  log "env in $ENV_DIR/registry-ogc.env"
}

stop() {
  local n pid
  for n in qgis mapserver; do
    if [ -s "$BASE/$n.pid" ]; then
      pid="$(cat "$BASE/$n.pid")"
      if kill -0 "$pid" 2>/dev/null; then
        log "stopping $n (pid $pid)"; kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$BASE/$n.pid"
    fi
  done
  rm -f "$ENV_DIR/registry-ogc.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
