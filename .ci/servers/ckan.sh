#!/usr/bin/env bash
# CKAN 2.12 with its DataStore for the GeoWatch packager's tests, on 127.0.0.1:
#   CKAN from PyPI in a venv, Solr 9 from Maven Central jars (embedded Jetty, a tiny main compiled with javac),
#   Redis from Debian (its own instance on 127.0.0.1:26379), PostgreSQL: the SHARED cluster of postgres.sh.
#   install  idempotent and cached: the Debian packages (apt line), the venv (reinstalled only when the pinned
#            line changes), the Solr jars and the compiled main, the Solr home, ckan.ini
#   start    Redis, Solr, waits (up to 120 s) for the shared PostgreSQL, creates the CKAN users and databases
#            idempotently, db init, a sysadmin and an API token (in .servers/ckan/token, never printed), CKAN;
#            writes .servers/env/ckan.env (GEOWATCH_CKAN_URL, GEOWATCH_CKAN_TOKEN)
#   stop     stops the pids it started (CKAN, Solr, Redis); the databases stay
# Env: GEOWATCH_CKAN_PORT (25000), GEOWATCH_CKAN_SOLR_PORT (25983), GEOWATCH_CKAN_REDIS_PORT (26379),
#      GEOWATCH_PG_PORT (25432), GEOWATCH_PYTHON (the python that makes the venv, default python3).
# apt: redis-server libpq-dev gcc python3-dev libmagic1 openjdk-17-jdk-headless maven
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/.ci/servers/lib/apt.sh"
SRC="$ROOT/.ci/servers/ckan"
BASE="$ROOT/.servers/ckan"
ENV_DIR="$ROOT/.servers/env"
VENV="$BASE/venv"
LIBS="$BASE/solr-libs"
CLASSES="$BASE/solr-classes"
SOLR_HOME="$BASE/solr-home"
INI="$BASE/ckan.ini"
PYTHON="${GEOWATCH_PYTHON:-python3}"
# openpyxl: the independent XLSX reader of the packager tests (GEOWATCH_CKAN_PYTHON).
REQUIREMENTS=("ckan[requirements]==2.12.0" "openpyxl==3.1.5")
PORT="${GEOWATCH_CKAN_PORT:-25000}"
SOLR_PORT="${GEOWATCH_CKAN_SOLR_PORT:-25983}"
REDIS_PORT="${GEOWATCH_CKAN_REDIS_PORT:-26379}"
PG_PORT="${GEOWATCH_PG_PORT:-25432}"
PG="postgres://postgres@127.0.0.1:$PG_PORT"
SOLR_VERSION="$(sed -n 's:.*<solr.version>\(.*\)</solr.version>.*:\1:p' "$SRC/pom.xml")"

log() { echo "[ckan.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

venv_ok() {
  [ -x "$VENV/bin/ckan" ] && [ "$(cat "$BASE/installed" 2>/dev/null)" = "${REQUIREMENTS[*]}" ]
}

install() {
  need_apt redis-server libpq-dev gcc python3-dev libmagic1 openjdk-17-jdk-headless maven
  mkdir -p "$BASE" "$ENV_DIR"
  if venv_ok; then
    log "venv already has ${REQUIREMENTS[*]}"
  else
    log "creating venv in $VENV and installing ${REQUIREMENTS[*]} (psycopg2 builds from source: 30-200 s)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >&2
    echo "${REQUIREMENTS[*]}" > "$BASE/installed"
  fi
  if [ -f "$LIBS/.complete" ] && [ -f "$LIBS/solr-core-$SOLR_VERSION.jar" ]; then
    log "Solr $SOLR_VERSION jars already in $LIBS"
  else
    command -v mvn >/dev/null || die "mvn not found (Debian: apt-get install maven)"
    log "resolving Solr $SOLR_VERSION from Maven Central into $LIBS"
    rm -rf "$LIBS.tmp"
    mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >&2
    touch "$LIBS.tmp/.complete"
    rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
  fi
  if [ ! -f "$CLASSES/SolrMain.class" ] || [ "$SRC/SolrMain.java" -nt "$CLASSES/SolrMain.class" ]; then
    mkdir -p "$CLASSES"
    javac -d "$CLASSES" -cp "$LIBS/*" "$SRC/SolrMain.java"
  fi
  # The Solr home: one core "ckan" with CKAN's own schema.
  local schema
  schema="$(ls "$VENV"/lib/python3*/site-packages/ckan/config/solr/schema.xml | head -1)"
  mkdir -p "$SOLR_HOME/ckan/conf"
  echo "<solr></solr>" > "$SOLR_HOME/solr.xml"
  echo "name=ckan" > "$SOLR_HOME/ckan/core.properties"
  cp "$schema" "$SOLR_HOME/ckan/conf/schema.xml"
  cp "$SRC/solrconfig.xml" "$SOLR_HOME/ckan/conf/solrconfig.xml"
  for f in protwords.txt synonyms.txt stopwords.txt; do touch "$SOLR_HOME/ckan/conf/$f"; done
  write_ini
  log "installed: CKAN $("$VENV/bin/python" -c 'import ckan; print(ckan.__version__)'), Solr $SOLR_VERSION"
}

write_ini() {
  local stamp="$PORT $SOLR_PORT $REDIS_PORT $PG_PORT ${REQUIREMENTS[*]}"
  if [ -s "$INI" ] && [ "$(cat "$BASE/ini.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  mkdir -p "$BASE/storage"
  rm -f "$INI"
  "$VENV/bin/ckan" generate config "$INI" >/dev/null
  "$VENV/bin/ckan" config-tool "$INI" \
    "sqlalchemy.url=postgresql://ckan_default@127.0.0.1:$PG_PORT/ckan_default" \
    "ckan.datastore.write_url=postgresql://ckan_default@127.0.0.1:$PG_PORT/datastore_default" \
    "ckan.datastore.read_url=postgresql://datastore_default@127.0.0.1:$PG_PORT/datastore_default" \
    "ckan.redis.url=redis://127.0.0.1:$REDIS_PORT/0" \
    "ckan.plugins=datastore" \
    "ckan.site_url=http://127.0.0.1:$PORT" \
    "solr_url=http://127.0.0.1:$SOLR_PORT/solr/ckan" \
    "ckan.storage_path=$BASE/storage" \
    "ckan.datastore.sqlsearch.enabled=true" \
    "ckan.datastore.default_fts_index_field_types=" >/dev/null
  echo "$stamp" > "$BASE/ini.stamp"
}

alive() { [ -s "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null; }

http_ok() { "$VENV/bin/python" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" "$1" >/dev/null 2>&1; }

start_redis() {
  if alive redis; then return 0; fi
  mkdir -p "$BASE/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$BASE/redis" --save '' --appendonly no \
    --daemonize no --logfile "$BASE/redis.log" >/dev/null 2>&1 &
  echo $! > "$BASE/redis.pid"
}

start_solr() {
  if alive solr && http_ok "http://127.0.0.1:$SOLR_PORT/solr/ckan/admin/ping"; then return 0; fi
  rm -f "$BASE/solr.started"
  nohup java -Xms128m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true -Dsolr.install.dir="$BASE" \
    -cp "$LIBS/*:$CLASSES" SolrMain "$SOLR_HOME" "$SOLR_PORT" > "$BASE/solr.log" 2>&1 < /dev/null &
  echo $! > "$BASE/solr.pid"
}

wait_for() { # NAME SECONDS COMMAND...
  local name="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { log "$name not ready after $secs s"; return 1; }
    sleep 0.5
  done
}

psql_pg() { psql -X -q -v ON_ERROR_STOP=1 "$PG/${DB:-postgres}" "$@"; }

setup_databases() {
  wait_for "PostgreSQL on 127.0.0.1:$PG_PORT (started by .ci/servers/postgres.sh)" 120 \
    pg_isready -h 127.0.0.1 -p "$PG_PORT" -q || return 1
  psql_pg <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ckan_default') THEN CREATE ROLE ckan_default LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'datastore_default') THEN CREATE ROLE datastore_default LOGIN; END IF;
END $$;
SQL
  local db
  for db in ckan_default datastore_default; do
    if [ -z "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql_pg -c "CREATE DATABASE $db OWNER ckan_default ENCODING 'UTF8'"
    fi
  done
  if [ -z "$(DB=ckan_default psql_pg -tAc "SELECT 1 FROM pg_tables WHERE tablename = 'user'")" ]; then
    log "ckan db init"
    "$VENV/bin/ckan" -c "$INI" db init >"$BASE/dbinit.log" 2>&1 || { tail -20 "$BASE/dbinit.log" >&2; return 1; }
    "$VENV/bin/ckan" -c "$INI" datastore set-permissions 2>/dev/null | DB=datastore_default psql_pg >/dev/null
  fi
  if [ -z "$(DB=ckan_default psql_pg -tAc "SELECT 1 FROM \"user\" WHERE name = 'admin' AND sysadmin")" ]; then
    log "adding the sysadmin 'admin'"
    local pw; pw="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    "$VENV/bin/ckan" -c "$INI" user add admin email=admin@example.org "password=$pw" >/dev/null 2>&1
    "$VENV/bin/ckan" -c "$INI" sysadmin add admin >/dev/null 2>&1
    rm -f "$BASE/token"
  fi
}

token_ok() {
  [ -s "$BASE/token" ] && "$VENV/bin/python" - "$PORT" "$BASE/token" <<'PY' >/dev/null 2>&1
import sys, urllib.request
tok = open(sys.argv[2]).read().strip()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/3/action/api_token_list?user_id=admin",
                             headers={"Authorization": tok})
urllib.request.urlopen(req, timeout=20)
PY
}

start() {
  venv_ok && [ -f "$LIBS/.complete" ] && [ -f "$CLASSES/SolrMain.class" ] || install
  write_ini
  mkdir -p "$ENV_DIR"
  start_redis
  start_solr
  setup_databases
  wait_for "Redis on 127.0.0.1:$REDIS_PORT" 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 \
    || { tail -20 "$BASE/redis.log" >&2; return 1; }
  wait_for "Solr on 127.0.0.1:$SOLR_PORT" 60 http_ok "http://127.0.0.1:$SOLR_PORT/solr/ckan/admin/ping" \
    || { tail -40 "$BASE/solr.log" >&2; return 1; }
  if ! (alive ckan && http_ok "http://127.0.0.1:$PORT/api/3/action/status_show"); then
    nohup "$VENV/bin/ckan" -c "$INI" run --host 127.0.0.1 --port "$PORT" --disable-reloader \
      > "$BASE/ckan.log" 2>&1 < /dev/null &
    echo $! > "$BASE/ckan.pid"
    wait_for "CKAN on 127.0.0.1:$PORT" 60 http_ok "http://127.0.0.1:$PORT/api/3/action/status_show" \
      || { tail -40 "$BASE/ckan.log" >&2; return 1; }
  fi
  if ! token_ok; then
    log "making an API token for 'admin' (in $BASE/token)"
    (umask 077 && "$VENV/bin/ckan" -c "$INI" user token add admin geowatch-tests 2>/dev/null | tail -1 | tr -d ' \t\r\n' > "$BASE/token")
    token_ok || die "the new API token does not work"
  fi
  {
    echo "export GEOWATCH_CKAN_URL=http://127.0.0.1:$PORT"
    echo "export GEOWATCH_CKAN_TOKEN_FILE=$BASE/token"
    echo "export GEOWATCH_CKAN_TOKEN=\$(cat $BASE/token)"
    echo "export GEOWATCH_CKAN_PYTHON=$VENV/bin/python"
    echo "export GEOWATCH_CKAN_DATASTORE_URL=postgres://ckan_default@127.0.0.1:$PG_PORT/datastore_default"
  } > "$ENV_DIR/ckan.env"
  log "ready: CKAN (pid $(cat "$BASE/ckan.pid")) on 127.0.0.1:$PORT, Solr $SOLR_PORT, Redis $REDIS_PORT; env in $ENV_DIR/ckan.env"
}

stop_pid() {
  local name="$1"
  if alive "$name"; then
    local pid; pid="$(cat "$BASE/$name.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$BASE/$name.pid"
}

stop() {
  stop_pid ckan
  stop_pid solr
  stop_pid redis
  rm -f "$ENV_DIR/ckan.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
