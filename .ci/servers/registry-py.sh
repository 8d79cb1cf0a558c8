#!/usr/bin/env bash
# Python servers and the CSW client for the registry's tests (apps/registry), each in its own venv under
# .servers/registry-py/ (reinstalled only when its pinned requirement line changes), all on 127.0.0.1:
#   MapProxy (WMTS, TMS, WMS) on GEOWATCH_REGISTRY_MAPPROXY_PORT (28091), a built-in debug tile source (no upstream)
#   pycsw 2.6 (CSW 2.0.2) on GEOWATCH_REGISTRY_PYCSW_PORT (28092), a few Dublin Core records loaded at start
#   pygeoapi 0.21 (OGC API - Records, TinyDB catalogue provider) on GEOWATCH_REGISTRY_RECORDS_PORT (28095): the five
#     records of .ci/servers/registry/ogcapi-records.json, two per page (pycsw 3, which also serves Records, is not on PyPI)
#   OWSLib (the CSW client QGIS MetaSearch uses): GEOWATCH_REGISTRY_OWSLIB_PYTHON runs it
#   install  idempotent venvs; start: configs, servers, waits, writes .servers/env/registry-py.env; stop: the pids it started
# apt: python3-venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
HERE="$ROOT/.ci/servers/registry"
BASE="$ROOT/.servers/registry-py"
ENV_DIR="$ROOT/.servers/env"
PYTHON="${GEOWATCH_PYTHON:-python3}"
MP_PORT="${GEOWATCH_REGISTRY_MAPPROXY_PORT:-28091}"
CSW_PORT="${GEOWATCH_REGISTRY_PYCSW_PORT:-28092}"
REC_PORT="${GEOWATCH_REGISTRY_RECORDS_PORT:-28095}"
declare -A REQ=(
  [mapproxy]="MapProxy==3.1.3 waitress==3.0.2"
  [pycsw]="pycsw==2.6.2 waitress==3.0.2 SQLAlchemy<2"
  [owslib]="OWSLib==0.35.0"
  [pygeoapi]="pygeoapi==0.21.0 tinydb==4.9.0 waitress==3.0.2"
)
declare -A PROBE=([mapproxy]="mapproxy" [pycsw]="pycsw" [owslib]="owslib" [pygeoapi]="pygeoapi, tinydb")
NAMES="mapproxy pycsw owslib pygeoapi"

log() { echo "[registry-py.sh] $*" >&2; }

venv_ok() { [ -x "$BASE/$1/bin/python" ] && [ "$(cat "$BASE/$1/installed" 2>/dev/null)" = "${REQ[$1]}" ] && "$BASE/$1/bin/python" -c "import ${PROBE[$1]}" >/dev/null 2>&1; }

install_one() {
  local name="$1"
  if venv_ok "$name"; then log "$name already installed"; return 0; fi
  log "installing $name: ${REQ[$name]}"
  rm -rf "${BASE:?}/$name"
  "$PYTHON" -m venv "$BASE/$name"
  # shellcheck disable=SC2086
  "$BASE/$name/bin/python" -m pip install --quiet --disable-pip-version-check ${REQ[$name]} >"$BASE/$name.pip.log" 2>&1 \
    || { log "pip install of $name failed:"; tail -20 "$BASE/$name.pip.log" >&2; return 1; }
  echo "${REQ[$name]}" > "$BASE/$name/installed"
}

install() {
  need_apt python3-venv
  mkdir -p "$BASE" "$ENV_DIR"
  local pids=() n rc=0
  for n in $NAMES; do install_one "$n" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

answers() { curl -fsS -m 5 "$1" 2>/dev/null | grep -q "$2"; }

start_one() { # name port ready-url ready-text command...
  local name="$1" port="$2" url="$3" text="$4"; shift 4
  if [ -s "$BASE/$name.pid" ] && kill -0 "$(cat "$BASE/$name.pid")" 2>/dev/null && answers "$url" "$text"; then
    log "$name already running on 127.0.0.1:$port"; return 0
  fi
  log "starting $name on 127.0.0.1:$port"
  nohup "$@" >"$BASE/$name.log" 2>&1 &
  echo $! > "$BASE/$name.pid"
  local deadline=$((SECONDS + 60))
  until answers "$url" "$text"; do
    if ! kill -0 "$(cat "$BASE/$name.pid")" 2>/dev/null; then log "$name exited:"; tail -20 "$BASE/$name.log" >&2; return 1; fi
    if [ $SECONDS -ge $deadline ]; then log "$name not ready after 60s:"; tail -20 "$BASE/$name.log" >&2; return 1; fi
    sleep 0.3
  done
}

start() {
  for n in $NAMES; do venv_ok "$n" || { install; break; }; done
  mkdir -p "$BASE/mp" "$BASE/csw" "$BASE/records"
  cp "$HERE/mapproxy.yaml" "$BASE/mp/mapproxy.yaml"
  printf 'from mapproxy.wsgiapp import make_wsgi_app\napplication = make_wsgi_app(%s)\n' "'$BASE/mp/mapproxy.yaml'" > "$BASE/mp/app.py"
  sed -e "s#@PORT@#$CSW_PORT#g" -e "s#@BASE@#$BASE/csw#g" "$HERE/pycsw.cfg.in" > "$BASE/csw/pycsw.cfg"
  # A known state on every start of pycsw: the repository is rebuilt from .ci/servers/registry/csw-records (not
  # under a running server, which keeps its own file open).
  if ! { [ -s "$BASE/pycsw.pid" ] && kill -0 "$(cat "$BASE/pycsw.pid")" 2>/dev/null; }; then
  rm -f "$BASE/csw/records.db"
  (cd "$BASE/csw" && "$BASE/pycsw/bin/pycsw-admin.py" -c setup_db -f pycsw.cfg >"$BASE/csw/setup.log" 2>&1 \
    && "$BASE/pycsw/bin/pycsw-admin.py" -c load_records -f pycsw.cfg -p "$HERE/csw-records" >>"$BASE/csw/setup.log" 2>&1) \
    || { log "pycsw repository setup failed:"; tail -20 "$BASE/csw/setup.log" >&2; return 1; }
  fi
  # The records catalogue, rebuilt on every start of its server (TinyDB's file: {"_default": {"1": record, ...}}).
  if ! { [ -s "$BASE/pygeoapi.pid" ] && kill -0 "$(cat "$BASE/pygeoapi.pid")" 2>/dev/null; }; then
    sed -e "s#@PORT@#$REC_PORT#g" -e "s#@DATA@#$BASE/records#g" "$HERE/pygeoapi-records.yml.in" > "$BASE/records/config.yml"
    "$BASE/pygeoapi/bin/python" -c 'import json, sys; recs = json.load(open(sys.argv[1])); json.dump({"_default": {str(i + 1): r for i, r in enumerate(recs)}}, open(sys.argv[2], "w"))' \
      "$HERE/ogcapi-records.json" "$BASE/records/records.tinydb.json"
    PYGEOAPI_CONFIG="$BASE/records/config.yml" PYGEOAPI_OPENAPI="$BASE/records/openapi.yml" "$BASE/pygeoapi/bin/pygeoapi" openapi generate \
      "$BASE/records/config.yml" --output-file "$BASE/records/openapi.yml" >"$BASE/records/openapi.log" 2>&1 \
      || { log "pygeoapi openapi generate failed:"; tail -20 "$BASE/records/openapi.log" >&2; return 1; }
  fi
  start_one mapproxy "$MP_PORT" "http://127.0.0.1:$MP_PORT/wmts/1.0.0/WMTSCapabilities.xml" "Capabilities" \
    env PYTHONPATH="$BASE/mp" "$BASE/mapproxy/bin/waitress-serve" --listen="127.0.0.1:$MP_PORT" --threads=8 app:application
  start_one pycsw "$CSW_PORT" "http://127.0.0.1:$CSW_PORT/?service=CSW&version=2.0.2&request=GetCapabilities" "Capabilities" \
    env PYCSW_CONFIG="$BASE/csw/pycsw.cfg" "$BASE/pycsw/bin/waitress-serve" --listen="127.0.0.1:$CSW_PORT" pycsw.wsgi:application
  start_one pygeoapi "$REC_PORT" "http://127.0.0.1:$REC_PORT/collections/catalog/items?f=json" "numberMatched" \
    env PYGEOAPI_CONFIG="$BASE/records/config.yml" PYGEOAPI_OPENAPI="$BASE/records/openapi.yml" \
    "$BASE/pygeoapi/bin/waitress-serve" --listen="127.0.0.1:$REC_PORT" pygeoapi.flask_app:APP
  {
    echo "export GEOWATCH_REGISTRY_MAPPROXY_URL=http://127.0.0.1:$MP_PORT"
    echo "export GEOWATCH_REGISTRY_PYCSW_URL=http://127.0.0.1:$CSW_PORT/"
    echo "export GEOWATCH_REGISTRY_RECORDS_URL=http://127.0.0.1:$REC_PORT"
    echo "export GEOWATCH_REGISTRY_OWSLIB_PYTHON=$BASE/owslib/bin/python"
  } > "$ENV_DIR/registry-py.env"
  log "ready; env in $ENV_DIR/registry-py.env"
}

stop() {
  local n pid
  for n in mapproxy pycsw pygeoapi; do
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
  rm -f "$ENV_DIR/registry-py.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
