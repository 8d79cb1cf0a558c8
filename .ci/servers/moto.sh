#!/usr/bin/env bash
# moto server for GeoWatch tests: S3, SQS, SNS, Kinesis and DynamoDB on 127.0.0.1, one process.
#   install  idempotent; a Python venv in .servers/moto with moto from PyPI (cached: reinstalls only
#            when the pinned requirement line changes)
#   start    moto_server in the background, waits until it answers HTTP, writes .servers/env/moto.env
#   stop     kills the pid that start recorded (nothing else)
# Env: GEOWATCH_MOTO_PORT (default 24566), GEOWATCH_MOTO_START_TIMEOUT (seconds, default 60),
#      GEOWATCH_PYTHON (the python that makes the venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/moto"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_MOTO_PORT:-24566}"
PYTHON="${GEOWATCH_PYTHON:-python3}"
VENV="$BASE/venv"
# The requirement set the tests were verified with; a change here makes install rebuild the venv.
REQUIREMENTS=("moto[s3,sqs,sns,kinesis,dynamodb,server]>=5.1,<6" "flask" "flask-cors")

log() { echo "[moto.sh] $*" >&2; }

installed() {
  [ -x "$VENV/bin/moto_server" ] && [ -f "$BASE/installed" ] && [ "$(cat "$BASE/installed")" = "${REQUIREMENTS[*]}" ]
}

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if installed; then
    log "already installed: moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
    return 0
  fi
  if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "$PYTHON has no venv/ensurepip; installing Debian python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-venv || { apt-get update && apt-get install -y --no-install-recommends python3-venv; }
  fi
  log "creating venv in $VENV and installing ${REQUIREMENTS[*]} (about a minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  echo "${REQUIREMENTS[*]}" > "$BASE/installed"
  log "installed: moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
}

ready() {
  # moto's dashboard page is static (its data.json dumps every model and fails on some states); a 200 means
  # the server loop runs. The venv's Python asks, so no curl is needed.
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=2).status == 200 else 1)" >/dev/null 2>&1
}

write_env() {
  mkdir -p "$ENV_DIR"
  {
    echo "export GEOWATCH_MOTO_ENDPOINT=http://127.0.0.1:$PORT"
    echo "export AWS_ACCESS_KEY_ID=test"
    echo "export AWS_SECRET_ACCESS_KEY=test"
    echo "export AWS_REGION=us-east-1"
  } > "$ENV_DIR/moto.env"
}

start() {
  installed || install
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && ready; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
    write_env
    return 0
  fi
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
    log "moto_server pid $(cat "$BASE/pid") (started by this script) runs but does not answer on port $PORT; stop it first"
    return 1
  fi
  if ready; then
    log "port $PORT already answers but not from a moto this script started; set GEOWATCH_MOTO_PORT"
    return 1
  fi
  log "starting moto_server on 127.0.0.1:$PORT"
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$BASE/server.log" 2>&1 &
  echo $! > "$BASE/pid"
  local deadline=$((SECONDS + ${GEOWATCH_MOTO_START_TIMEOUT:-60}))
  until ready; do
    if ! kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
      log "moto_server exited; last log lines:"; tail -30 "$BASE/server.log" >&2; rm -f "$BASE/pid"; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "not ready after ${GEOWATCH_MOTO_START_TIMEOUT:-60}s; last log lines:"; tail -30 "$BASE/server.log" >&2; return 1
    fi
    sleep 0.2
  done
  write_env
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/moto.env"
}

stop() {
  if [ -s "$BASE/pid" ]; then
    local pid; pid="$(cat "$BASE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping moto_server (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    else
      log "not running"
    fi
    rm -f "$BASE/pid"
  else
    log "not running"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 install|start|stop|restart" >&2; exit 2 ;;
esac
