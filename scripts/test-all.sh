#!/usr/bin/env bash
# The whole test suite, from a fresh clone: gets Node 24 and pnpm if needed, installs, builds, lints,
# installs what the servers need where it is missing (Java 17 and Maven for Kafka, Debian rabbitmq-server;
# apt, as root or through sudo), starts the real servers (.ci/servers/*.sh), runs every package's tests
# against them, stops the servers, and prints one closing line: "N passed, N failed".
# A server that cannot be installed or started fails the run, and so do the tests that need it (they fail
# with the command that starts it; nothing is skipped). CI is not read: a local run is the CI run.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" || exit 1
cd "$GW_ROOT"

reports="$GW_ROOT/.test-reports"
rm -rf "$reports" && mkdir -p "$reports"
failures=()
started=()

stop_servers() {
  for s in "${started[@]}"; do bash ".ci/servers/$s.sh" stop >&2 || true; done
  started=()
}
prepare_pid=""
cleanup() {
  [ -n "$prepare_pid" ] && kill "$prepare_pid" 2>/dev/null
  stop_servers
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo; echo "=== $* ==="; }

# What the servers need (apt packages, then each server's cached install) runs in the background while the
# workspace installs and builds; its output goes to $server_log and the run waits for it before starting servers.
server_log="$reports/servers-install.log"
prepare_servers() {
  apt_log="$reports/apt.log"
  # apt_install WHAT PACKAGE...: installs Debian packages, saying what and why; the apt output goes to $apt_log.
  apt_install() {
    local what="$1"; shift
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else echo "cannot install $* ($what): not root and no sudo"; return 1; fi
    fi
    local names=() a
    for a in "$@"; do [[ "$a" == -* ]] || names+=("$a"); done
    echo "installing ${names[*]} ($what), apt output in $apt_log"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=1200 install -y "$@" >>"$apt_log" 2>&1 \
      || { "${sudo[@]}" apt-get update >>"$apt_log" 2>&1 && "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=1200 install -y "$@" >>"$apt_log" 2>&1; } \
      || { echo "apt-get install $* failed; last lines of $apt_log:"; tail -n 15 "$apt_log"; return 1; }
  }
  java_major() { local v; v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"; echo "${v:-0}"; }
  java_ok() { command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ]; }
  if ! java_ok; then
    apt_install "Java 17 for the Kafka server" openjdk-17-jre-headless || echo "FAILED: install java"
    # An older default java can stay first on PATH after the install: put Java 17 before it.
    if ! java_ok; then
      for jvm in /usr/lib/jvm/java-17-openjdk-*/bin; do [ -x "$jvm/java" ] && export PATH="$jvm:$PATH" && break; done
    fi
  else
    echo "java $(java_major): ok"
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    apt_install "Maven, which fetches the Kafka jars" maven || echo "FAILED: install maven"
  else
    echo "maven: ok"
  fi
  # .ci/servers/rabbitmq.sh runs the server from /usr/lib/rabbitmq/bin (epmd and Erlang come with the package).
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    apt_install "the RabbitMQ server" --no-install-recommends rabbitmq-server || echo "FAILED: install rabbitmq-server"
  else
    echo "rabbitmq-server: ok"
  fi
  # Every Debian package the server scripts declare ("# apt: ..." lines), in one apt-get call.
  source .ci/servers/lib/apt.sh
  local wanted missing
  wanted="$(declared_apt .ci/servers/*.sh | tr '\n' ' ')"
  missing="$(missing_apt $wanted | tr '\n' ' ')"
  if [ -n "${missing// /}" ]; then
    apt_install "what the server scripts declare" --no-install-recommends $missing || echo "FAILED: install $missing"
  else
    echo "declared apt packages: ok"
  fi
  local pids=() script
  for script in .ci/servers/*.sh; do
    ( bash "$script" install >"$reports/install-$(basename "$script" .sh).log" 2>&1 && echo "installed $(basename "$script" .sh)" || echo "FAILED: install $(basename "$script" .sh) (see $reports/install-$(basename "$script" .sh).log)" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
}
step "servers: installing in the background (log: $server_log)"
prepare_servers >"$server_log" 2>&1 &
prepare_pid=$!

step "install and build"
if ! gw_install_and_build; then
  echo "install or build failed"; exit 1
fi

step "lint and typecheck"
pnpm -s lint || failures+=("lint")
pnpm -s turbo run typecheck --output-logs=errors-only || failures+=("typecheck")

step "package checks (publint, attw)"
bash scripts/check-packages.sh || failures+=("package checks")

step "servers"
wait "$prepare_pid"
cat "$server_log"
grep -q '^FAILED' "$server_log" && failures+=("server installs")
# Java 17 may have been installed just now; the Kafka script finds it on PATH.
if ! command -v java >/dev/null 2>&1 || [ "$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)" -lt 17 ]; then
  for jvm in /usr/lib/jvm/java-17-openjdk-*/bin; do [ -x "$jvm/java" ] && export PATH="$jvm:$PATH" && break; done
fi
# Start every server at once and wait for each (each start waits until its server answers).
declare -A start_pid=()
for script in .ci/servers/*.sh; do
  s="$(basename "$script" .sh)"
  bash "$script" start >"$reports/start-$s.log" 2>&1 &
  start_pid[$s]=$!
done
for s in "${!start_pid[@]}"; do
  if wait "${start_pid[$s]}"; then
    started+=("$s")
    echo "server $s: started"
  else
    echo "server $s did not start; last lines of $reports/start-$s.log:"
    tail -n 20 "$reports/start-$s.log"
    failures+=("server $s")
  fi
done
for f in .servers/env/*.env; do [ -f "$f" ] && source "$f"; done

step "tests"
for dir in packages/* apps/* examples/*; do
  [ -f "$dir/package.json" ] || continue
  grep -q '"test"' "$dir/package.json" || continue
  name="$(basename "$dir")"
  echo "--- $dir"
  (cd "$dir" && GEOWATCH_JSON_REPORT="$reports/$name.json" pnpm -s test) || failures+=("tests in $dir")
done

stop_servers

step "summary"
node "$GW_ROOT/scripts/test-summary.mjs" "$reports" "${failures[@]}"
