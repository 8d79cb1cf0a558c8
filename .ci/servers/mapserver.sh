#!/usr/bin/env bash
# MapServer 8 (Debian) for GeoWatch's WFS reader tests: an independent WFS 1.1.0/2.0.0 and OGC API Features
# server on 127.0.0.1, the CGI binary run per request by a tiny Python front (mapserver/server.py).
#   install  idempotent: the Debian packages (apt line), then the test data (a GeoPackage with 3000 points,
#            lines and polygons of every kind, made by mapserver/make-data.py + ogr2ogr) into .servers/mapserver/
#   start    writes the mapfile and config for the port, starts the front, waits until GetCapabilities
#            answers, writes .servers/env/mapserver.env (GEOWATCH_MAPSERVER_URL, GEOWATCH_MAPSERVER_POLL_FILE)
#   stop     kills the pid it started
# Env: GEOWATCH_MAPSERVER_PORT (default 28083).
# WFS:      $GEOWATCH_MAPSERVER_URL?SERVICE=WFS&... (layers points, lines, polygons, poll; `ms:` prefix in 2.0.0)
# OGC API:  $GEOWATCH_MAPSERVER_URL/geowatch/ogcapi/collections/{points,lines,polygons,poll}/items
# The poll layer is a GeoJSON file (GEOWATCH_MAPSERVER_POLL_FILE) that tests rewrite by rename; every
# request runs a new mapserv process, so the next request sees the new file.
# apt: mapserver-bin cgi-mapserver gdal-bin
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
HERE="$ROOT/.ci/servers/mapserver"
BASE="$ROOT/.servers/mapserver"
DATA="$BASE/data"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_MAPSERVER_PORT:-28083}"
# Bump when make-data.py changes, so install rebuilds the data.
DATA_VERSION=2

log() { echo "[mapserver.sh] $*" >&2; }

install() {
  need_apt mapserver-bin cgi-mapserver gdal-bin
  mkdir -p "$DATA" "$ENV_DIR"
  if [ "$(cat "$DATA/version" 2>/dev/null)" = "$DATA_VERSION" ] && [ -s "$DATA/geowatch.gpkg" ]; then
    log "data already built in $DATA"
    return 0
  fi
  local tmp="$BASE/tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  python3 "$HERE/make-data.py" "$tmp"
  rm -f "$tmp/geowatch.gpkg"
  ogr2ogr -f GPKG "$tmp/geowatch.gpkg" "$tmp/points.geojson" -nln points -nlt POINT -a_srs EPSG:4326
  ogr2ogr -f GPKG -update "$tmp/geowatch.gpkg" "$tmp/lines.geojson" -nln lines -nlt MULTILINESTRING -a_srs EPSG:4326
  ogr2ogr -f GPKG -update "$tmp/geowatch.gpkg" "$tmp/polygons.geojson" -nln polygons -nlt MULTIPOLYGON -a_srs EPSG:4326
  mv "$tmp/geowatch.gpkg" "$DATA/geowatch.gpkg"
  cp "$tmp/poll.geojson" "$DATA/poll.initial.geojson"
  rm -rf "$tmp"
  echo "$DATA_VERSION" > "$DATA/version"
  log "installed: mapserver $(dpkg-query -W -f='${Version}' mapserver-bin 2>/dev/null || echo unknown), data in $DATA"
}

configure() {
  sed -e "s#@PORT@#$PORT#g" -e "s#@DATA@#$DATA#g" "$HERE/geowatch.map.in" > "$BASE/geowatch.map"
  cat > "$BASE/mapserver.conf" <<CONF
CONFIG
  ENV
    MS_MAP_PATTERN "^$BASE/"
  END
  MAPS
    geowatch "$BASE/geowatch.map"
  END
END
CONF
  [ -s "$DATA/poll.geojson" ] || cp "$DATA/poll.initial.geojson" "$DATA/poll.geojson"
}

ready() {
  python3 - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/mapserv?SERVICE=WFS&REQUEST=GetCapabilities&VERSION=2.0.0"
body = urllib.request.urlopen(url, timeout=3).read()
sys.exit(0 if b"WFS_Capabilities" in body else 1)
PY
}

start() {
  [ -s "$DATA/geowatch.gpkg" ] || install
  configure
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && ready; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
  else
    log "starting on 127.0.0.1:$PORT"
    nohup python3 "$HERE/server.py" "$PORT" "$BASE/mapserver.conf" "$BASE/geowatch.map" > "$BASE/server.log" 2>&1 &
    echo $! > "$BASE/pid"
    local deadline=$((SECONDS + 30))
    until ready; do
      if ! kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then log "server exited:"; tail -20 "$BASE/server.log" >&2; return 1; fi
      if [ $SECONDS -ge $deadline ]; then log "not ready after 30s:"; tail -20 "$BASE/server.log" >&2; return 1; fi
      sleep 0.2
    done
  fi
  mkdir -p "$ENV_DIR"
  {
    echo "export GEOWATCH_MAPSERVER_URL=http://127.0.0.1:$PORT/mapserv"
    echo "export GEOWATCH_MAPSERVER_POLL_FILE=$DATA/poll.geojson"
  } > "$ENV_DIR/mapserver.env"
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/mapserver.env"
}

stop() {
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
    local pid; pid="$(cat "$BASE/pid")"
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
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
