#!/usr/bin/env bash
# SMTP for GeoWatch email tests: aiosmtpd (PyPI) on 127.0.0.1 with STARTTLS (a self-signed certificate made here
# with openssl) and AUTH required; mail lands in a Maildir that the tests read back.
#   install  idempotent; a Python venv in .servers/smtp (reinstalled only when the pinned line changes), the
#            certificate and a random password
#   start    starts .ci/servers/smtp/server.py, waits for the 220 greeting, writes .servers/env/smtp.env
#   stop     stops the pid it started
# Env: GEOWATCH_SMTP_PORT (default 22525), GEOWATCH_PYTHON (the python that makes the venv, default python3).
# Recipients @rejected.invalid are refused at RCPT (550), for tests of a rejected address.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/smtp"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_SMTP_PORT:-22525}"
PYTHON="${GEOWATCH_PYTHON:-python3}"
VENV="$BASE/venv"
REQUIREMENTS=("aiosmtpd==1.4.6")
USER_NAME="geowatch"

log() { echo "[smtp.sh] $*" >&2; }

installed() {
  [ -x "$VENV/bin/python" ] && [ -f "$BASE/installed" ] && [ "$(cat "$BASE/installed")" = "${REQUIREMENTS[*]}" ] \
    && "$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1 && [ -s "$BASE/cert.pem" ] && [ -s "$BASE/key.pem" ] && [ -s "$BASE/password" ]
}

install() {
  mkdir -p "$BASE" "$ENV_DIR"
  if installed; then
    log "already installed: ${REQUIREMENTS[*]}"
    return 0
  fi
  if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "$PYTHON has no venv/ensurepip; installing Debian python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-venv || { apt-get update && apt-get install -y --no-install-recommends python3-venv; }
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    log "installing Debian openssl"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends openssl || { apt-get update && apt-get install -y --no-install-recommends openssl; }
  fi
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$BASE/installed" 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
    log "creating venv in $VENV and installing ${REQUIREMENTS[*]}"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    echo "${REQUIREMENTS[*]}" > "$BASE/installed"
  fi
  if [ ! -s "$BASE/cert.pem" ] || [ ! -s "$BASE/key.pem" ]; then
    log "making a self-signed certificate for 127.0.0.1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$BASE/key.pem" -out "$BASE/cert.pem" >/dev/null 2>&1
    chmod 600 "$BASE/key.pem"
  fi
  if [ ! -s "$BASE/password" ]; then
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$BASE/password")
  fi
  log "installed: $("$VENV/bin/python" -m pip show aiosmtpd 2>/dev/null | grep '^Version' || echo aiosmtpd)"
}

greets() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -c 3 <&3 | grep -q 220" 2>/dev/null
}

start() {
  installed || install
  mkdir -p "$BASE/maildir/new" "$BASE/maildir/cur" "$BASE/maildir/tmp" "$ENV_DIR"
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && greets; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
    write_env
    return 0
  fi
  log "starting aiosmtpd on 127.0.0.1:$PORT (STARTTLS + AUTH, Maildir $BASE/maildir)"
  nohup "$VENV/bin/python" "$ROOT/.ci/servers/smtp/server.py" --port "$PORT" --maildir "$BASE/maildir" \
    --cert "$BASE/cert.pem" --key "$BASE/key.pem" --user "$USER_NAME" --password-file "$BASE/password" \
    > "$BASE/server.log" 2>&1 &
  echo $! > "$BASE/pid"
  local deadline=$((SECONDS + ${GEOWATCH_SMTP_START_TIMEOUT:-30}))
  until greets; do
    if ! kill -0 "$(cat "$BASE/pid")" 2>/dev/null; then
      log "server exited; last log lines:"; tail -30 "$BASE/server.log" >&2; rm -f "$BASE/pid"; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no greeting after ${GEOWATCH_SMTP_START_TIMEOUT:-30}s; last log lines:"; tail -30 "$BASE/server.log" >&2; return 1
    fi
    sleep 0.2
  done
  write_env
  log "ready (pid $(cat "$BASE/pid")); env in $ENV_DIR/smtp.env"
}

write_env() {
  mkdir -p "$ENV_DIR"
  {
    echo "export GEOWATCH_SMTP_HOST=127.0.0.1"
    echo "export GEOWATCH_SMTP_PORT=$PORT"
    echo "export GEOWATCH_SMTP_USER=$USER_NAME"
    echo "export GEOWATCH_SMTP_PASSWORD_FILE=$BASE/password"
    echo "export GEOWATCH_SMTP_CA=$BASE/cert.pem"
    echo "export GEOWATCH_SMTP_MAILDIR=$BASE/maildir"
  } > "$ENV_DIR/smtp.env"
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
  rm -f "$ENV_DIR/smtp.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
