#!/usr/bin/env bash
# feedparser for GeoWatch feed tests: not a server but an independent, widely used feed parser (Python
# feedparser from PyPI) that the @geowatch/feed tests parse the served Atom/RSS with.
#   install  idempotent; a Python venv in .servers/feedparser (reinstalls only when the pinned line changes)
#   start    writes .servers/env/feedparser.env (GEOWATCH_FEEDPARSER_PYTHON: the venv's python)
#   stop     nothing runs; removes the env file
# Env: GEOWATCH_PYTHON (the python that makes the venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/feedparser"
ENV_DIR="$ROOT/.servers/env"
PYTHON="${GEOWATCH_PYTHON:-python3}"
VENV="$BASE/venv"
REQUIREMENTS=("feedparser>=6.0,<7")

log() { echo "[feedparser.sh] $*" >&2; }

installed() {
  [ -x "$VENV/bin/python" ] && [ -f "$BASE/installed" ] && [ "$(cat "$BASE/installed")" = "${REQUIREMENTS[*]}" ] \
    && "$VENV/bin/python" -c 'import feedparser' >/dev/null 2>&1
}

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if installed; then
    log "already installed: feedparser $("$VENV/bin/python" -c 'import feedparser; print(feedparser.__version__)')"
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
  log "installed: feedparser $("$VENV/bin/python" -c 'import feedparser; print(feedparser.__version__)')"
}

start() {
  installed || install
  mkdir -p "$ENV_DIR"
  echo "export GEOWATCH_FEEDPARSER_PYTHON=$VENV/bin/python" > "$ENV_DIR/feedparser.env"
  log "ready: $VENV/bin/python (feedparser $("$VENV/bin/python" -c 'import feedparser; print(feedparser.__version__)'))"
}

stop() {
  rm -f "$ENV_DIR/feedparser.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
