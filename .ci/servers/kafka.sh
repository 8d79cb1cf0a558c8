#!/usr/bin/env bash
# Apache Kafka (KRaft, single node: broker + controller) for GeoWatch's tests.
#   bash .ci/servers/kafka.sh install   resolve the broker jars from Maven Central into .servers/kafka/libs (cached)
#   bash .ci/servers/kafka.sh start     format storage, start on 127.0.0.1, wait for metadata, write .servers/env/kafka.env
#   bash .ci/servers/kafka.sh stop      kill by pid, remove the data dir
#   bash .ci/servers/kafka.sh restart [s]  stop, stay down s seconds, start on the same ports and data (fault tests)
# Needs Java 17+ and Maven. Env: KAFKA_PORT (first port tried, default 19092; the controller takes the next one
# and a SASL/PLAIN listener the one after).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/.ci/servers/kafka"
DIR="$ROOT/.servers/kafka"
LIBS="$DIR/libs"
DATA="$DIR/data"
PIDFILE="$DIR/pid"
LOG="$DIR/server.log"
ENVFILE="$ROOT/.servers/env/kafka.env"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SRC/pom.xml")"

log() { echo "[kafka.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {
  command -v java >/dev/null || die "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [[ "${major:-0}" -ge 17 ]] || die "Java 17+ needed, found: $(java -version 2>&1 | head -1)"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install() {
  need
  if [[ -f "$LIBS/kafka_2.13-$VERSION.jar" && -f "$LIBS/.complete" ]]; then
    log "Kafka $VERSION already installed in $LIBS"
    return
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven)"
  log "resolving Kafka $VERSION from Maven Central into $LIBS"
  rm -rf "$LIBS.tmp" && mkdir -p "$DIR"
  mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >&2
  touch "$LIBS.tmp/.complete"
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
  log "installed $(ls "$LIBS" | wc -l) jars"
}

ready() { java -cp "$LIBS/*" "$SRC/Ready.java" "$1" >/dev/null 2>&1; }

start() {
  install
  if running; then
    log "already running (pid $(cat "$PIDFILE")); env in $ENVFILE"
    return
  fi
  local port="${KAFKA_PORT:-19092}"
  while ! port_free "$port" || ! port_free "$((port + 1))" || ! port_free "$((port + 2))"; do
    port=$((port + 3))
    [[ "$port" -lt 19200 ]] || die "no free port pair between ${KAFKA_PORT:-19092} and 19200"
  done
  local cport=$((port + 1)) sport=$((port + 2))
  rm -rf "$DATA" && mkdir -p "$DATA" "$ROOT/.servers/env"
  cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_geowatch="geowatch-test-secret";
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=2
EOF
  local cid
  cid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  java -cp "$LIBS/*" -Dlog4j.configuration="file:$SRC/log4j.properties" \
    kafka.tools.StorageTool format -t "$cid" -c "$DIR/server.properties" >"$LOG" 2>&1 \
    || { cat "$LOG" >&2; die "storage format failed"; }
  log "starting Kafka $VERSION on 127.0.0.1:$port (controller $cport, SASL/PLAIN $sport), log $LOG"
  launch "$port"
  {
    echo "export GEOWATCH_KAFKA_BROKERS=127.0.0.1:$port"
    # A SASL/PLAIN listener (user geowatch, password geowatch-test-secret) for the credential tests.
    echo "export GEOWATCH_KAFKA_SASL_BROKERS=127.0.0.1:$sport"
  } >"$ENVFILE"
  log "ready (pid $(cat "$PIDFILE")); wrote $ENVFILE"
}

# Starts the broker on the existing server.properties and data dir, waits until it serves metadata.
launch() {
  local port="$1"
  nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$SRC/log4j.properties" -Dkafka.logs.dir="$DIR" \
    -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 90))
  until ! port_free "$port" && ready "127.0.0.1:$port"; do
    running || { tail -40 "$LOG" >&2; rm -f "$PIDFILE"; die "broker exited during startup (see $LOG)"; }
    [[ $SECONDS -lt $deadline ]] || { tail -40 "$LOG" >&2; stop; die "broker not ready after 90 s (see $LOG)"; }
    sleep 1
  done
}

# Stops the broker (SIGTERM: a controlled shutdown) and keeps its data and env file.
halt() {
  if running; then
    local pid
    pid="$(cat "$PIDFILE")"
    log "stopping pid $pid"
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid still alive after 30 s, killing"; kill -9 "$pid"; fi
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
}

stop() {
  halt
  rm -f "$ENVFILE"
  rm -rf "$DATA"
}

# A broker outage for fault tests: stop, stay down for $1 seconds (default 0), start again on the same
# ports and data dir (topics, committed offsets and the KRaft metadata survive), keep the env file.
restart() {
  local down="${1:-0}"
  [[ -f "$DIR/server.properties" && -d "$DATA" ]] || die "nothing to restart: no data dir (run: bash .ci/servers/kafka.sh start)"
  local port
  port="$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$DIR/server.properties")"
  [[ -n "$port" ]] || die "cannot read the PLAINTEXT port from $DIR/server.properties"
  halt
  [[ "$down" == 0 ]] || { log "down for $down s"; sleep "$down"; }
  port_free "$port" || die "port $port is taken by another process; cannot restart"
  log "restarting Kafka $VERSION on 127.0.0.1:$port with the existing data"
  launch "$port"
  log "ready again (pid $(cat "$PIDFILE"))"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) restart "${2:-0}" ;;
  *) echo "usage: $0 install|start|stop|restart [seconds down]" >&2; exit 2 ;;
esac
