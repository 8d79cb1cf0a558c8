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
trap stop_servers EXIT
trap 'exit 130' INT TERM

step() { echo; echo "=== $* ==="; }

step "install and build"
if ! gw_install_and_build; then
  echo "install or build failed"; exit 1
fi

step "lint and typecheck"
pnpm -s lint || failures+=("lint")
pnpm -s turbo run typecheck --output-logs=errors-only || failures+=("typecheck")

step "package checks (publint, attw)"
bash scripts/check-packages.sh || failures+=("package checks")

step "what the servers need"
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
  "${sudo[@]}" apt-get install -y "$@" >>"$apt_log" 2>&1 \
    || { "${sudo[@]}" apt-get update >>"$apt_log" 2>&1 && "${sudo[@]}" apt-get install -y "$@" >>"$apt_log" 2>&1; } \
    || { echo "apt-get install $* failed; last lines of $apt_log:"; tail -n 15 "$apt_log"; return 1; }
}
java_major() { local v; v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"; echo "${v:-0}"; }
java_ok() { command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ]; }
if ! java_ok; then
  apt_install "Java 17 for the Kafka server" openjdk-17-jre-headless || failures+=("install java")
  # An older default java can stay first on PATH after the install: put Java 17 before it.
  if ! java_ok; then
    for jvm in /usr/lib/jvm/java-17-openjdk-*/bin; do [ -x "$jvm/java" ] && export PATH="$jvm:$PATH" && break; done
  fi
else
  echo "java $(java_major): ok"
fi
if ! command -v mvn >/dev/null 2>&1; then
  apt_install "Maven, which fetches the Kafka jars" maven || failures+=("install maven")
else
  echo "maven: ok"
fi
# .ci/servers/rabbitmq.sh runs the server from /usr/lib/rabbitmq/bin (epmd and Erlang come with the package).
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  apt_install "the RabbitMQ server" --no-install-recommends rabbitmq-server || failures+=("install rabbitmq-server")
else
  echo "rabbitmq-server: ok"
fi

step "servers"
for script in .ci/servers/*.sh; do
  s="$(basename "$script" .sh)"
  if bash "$script" start; then
    started+=("$s")
  else
    echo "server $s did not start"
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
