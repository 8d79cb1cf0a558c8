#!/usr/bin/env bash
# RabbitMQ for GeoWatch tests: a private node on 127.0.0.1, independent of the system service.
#   install  idempotent; Debian rabbitmq-server when missing (as root, non-interactive)
#   start    starts node geowatch@localhost, waits until it answers AMQP, writes .servers/env/rabbitmq.env
#   stop     stops the node (rabbitmqctl, then the recorded pid) and the epmd this script started
# Env: GEOWATCH_RABBITMQ_PORT (AMQP, default 25672), GEOWATCH_RABBITMQ_DIST_PORT (default AMQP + 20000),
#      GEOWATCH_RABBITMQ_EPMD_PORT (default 24369; a private epmd so other Erlang nodes are untouched).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$ROOT/.servers/rabbitmq"
ENV_DIR="$ROOT/.servers/env"
PORT="${GEOWATCH_RABBITMQ_PORT:-25672}"
DIST_PORT="${GEOWATCH_RABBITMQ_DIST_PORT:-$((PORT + 20000))}"
EPMD_PORT="${GEOWATCH_RABBITMQ_EPMD_PORT:-24369}"
NODE="geowatch@localhost"
SBIN=/usr/lib/rabbitmq/bin

log() { echo "[rabbitmq.sh] $*" >&2; }

node_env() {
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export RABBITMQ_MNESIA_BASE="$BASE/mnesia"
  export RABBITMQ_LOG_BASE="$BASE/log"
  export RABBITMQ_PID_FILE="$BASE/beam.pid"
  export RABBITMQ_CONFIG_FILE="$BASE/rabbitmq"          # .conf is appended
  export RABBITMQ_ADVANCED_CONFIG_FILE="$BASE/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins"
  export RABBITMQ_ENABLED_PLUGINS=""
  export RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Keep Erlang distribution on loopback too.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export ERL_EPMD_PORT="$EPMD_PORT"
  # Both the server and rabbitmqctl read the cookie from $HOME; keep ours private.
  export HOME="$BASE/home"
  export PATH="$SBIN:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
}

install() {
  if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    log "installing Debian rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends rabbitmq-server; then
      apt-get update
      apt-get install -y --no-install-recommends rabbitmq-server
    fi
  fi
  mkdir -p "$BASE/mnesia" "$BASE/log" "$BASE/home" "$ENV_DIR"
  if [ ! -s "$BASE/home/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$BASE/home/.erlang.cookie"
    chmod 400 "$BASE/home/.erlang.cookie"
  fi
  configure
  log "installed: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)"
}

# Written on every start, so a changed GEOWATCH_RABBITMQ_PORT takes effect without a reinstall.
configure() {
  mkdir -p "$BASE/mnesia" "$BASE/log" "$BASE/home" "$ENV_DIR"
  # guest may log in on loopback (the default); no management plugin, small disk limit for CI disks.
  cat > "$BASE/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
heartbeat = 10
CONF
  : > "$BASE/rabbitmq-env.conf"
  echo "[]." > "$BASE/enabled_plugins"
}

amqp_ready() {
  # A real AMQP handshake: the server answers the protocol header with Connection.Start (frame type 1).
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'AMQP\x00\x00\x09\x01' >&3; head -c 1 <&3 | od -An -tx1 | grep -q 01" 2>/dev/null
}

start() {
  if [ ! -s "$BASE/home/.erlang.cookie" ] || [ ! -x "$SBIN/rabbitmq-server" ]; then install; fi
  configure
  node_env
  if [ -s "$BASE/pid" ] && kill -0 "$(cat "$BASE/pid")" 2>/dev/null && amqp_ready; then
    log "already running (pid $(cat "$BASE/pid")) on 127.0.0.1:$PORT"
    write_env
    return 0
  fi
  rm -f "$BASE/beam.pid"
  # A private epmd on its own port, so stop can end it without touching anyone else's Erlang nodes.
  if ! epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; then
    epmd -address 127.0.0.1 -port "$EPMD_PORT" -daemon
    echo started > "$BASE/epmd.ours"
  fi
  log "starting $NODE on 127.0.0.1:$PORT (dist $DIST_PORT, epmd $EPMD_PORT)"
  nohup rabbitmq-server > "$BASE/log/console.log" 2>&1 &
  echo $! > "$BASE/launcher.pid"
  local deadline=$((SECONDS + ${GEOWATCH_RABBITMQ_START_TIMEOUT:-90}))
  until [ -s "$BASE/beam.pid" ] && amqp_ready; do
    if ! kill -0 "$(cat "$BASE/launcher.pid")" 2>/dev/null && [ ! -s "$BASE/beam.pid" ]; then
      log "rabbitmq-server exited; last log lines:"; tail -30 "$BASE/log/console.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "not ready after ${GEOWATCH_RABBITMQ_START_TIMEOUT:-90}s; last log lines:"; tail -30 "$BASE/log/console.log" >&2; return 1
    fi
    sleep 0.3
  done
  timeout 60 rabbitmqctl -n "$NODE" await_startup >/dev/null
  cat "$BASE/beam.pid" > "$BASE/pid"
  write_env
  log "ready (beam pid $(cat "$BASE/pid")); env in $ENV_DIR/rabbitmq.env"
}

write_env() {
  mkdir -p "$ENV_DIR"
  {
    echo "export GEOWATCH_AMQP_URL=amqp://guest:guest@127.0.0.1:$PORT"
    echo "export GEOWATCH_RABBITMQ_PORT=$PORT"
  } > "$ENV_DIR/rabbitmq.env"
}

stop() {
  node_env
  local pid=""
  [ -s "$BASE/pid" ] && pid="$(cat "$BASE/pid")"
  [ -z "$pid" ] && [ -s "$BASE/beam.pid" ] && pid="$(cat "$BASE/beam.pid")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $NODE (pid $pid)"
    timeout 20 rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  else
    log "not running"
  fi
  if [ -s "$BASE/launcher.pid" ]; then
    local lp; lp="$(cat "$BASE/launcher.pid")"
    for _ in $(seq 1 30); do kill -0 "$lp" 2>/dev/null || break; sleep 0.1; done
    kill "$lp" 2>/dev/null || true
  fi
  rm -f "$BASE/pid" "$BASE/beam.pid" "$BASE/launcher.pid"
  if [ "${1:-}" != "--keep-epmd" ] && [ -f "$BASE/epmd.ours" ]; then
    epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    rm -f "$BASE/epmd.ours"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  restart) stop --keep-epmd; start ;;
  *) echo "usage: $0 install|start|stop [--keep-epmd]|restart" >&2; exit 2 ;;
esac
