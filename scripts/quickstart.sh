#!/usr/bin/env bash
# The README's first command: installs what it needs (Node 24 where the machine's node is older, pnpm,
# dependencies), builds, runs the quickstart broker on its embedded default (no external server) and prints
# a short summary. The tools' own output goes to a log file, printed in full only as a path.
# GEOWATCH_QUICKSTART_NO_BUILD=1 skips install and build (the quickstart's test runs after the build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
example="$root/examples/quickstart"
# Until prepare.mjs has made out/, the log lives in a temp file; then it moves to out/quickstart.log.
log="$(mktemp "${TMPDIR:-/tmp}/geowatch-quickstart.XXXXXX.log")"

say() { echo "[quickstart] $*"; }
fail() {
  say "FAILED: $1"
  echo "---- last lines of $log ----"
  tail -n 25 "$log"
  echo "---- full log: $log"
  exit 1
}
seconds() { echo $(( $(date +%s) - $1 )); }

started=$(date +%s)
if [ "${GEOWATCH_QUICKSTART_NO_BUILD:-}" != 1 ]; then
  if [ ! -d "$root/node_modules/.pnpm" ] || [ ! -f "$root/apps/broker/dist/cli.js" ]; then
    say "first run: installing Node 24 (if this machine's node is older than 22.13), pnpm and the dependencies,"
    say "then building every package. This took 20-40 s on a fresh clone here (2 cores, downloads included)."
  else
    say "checking dependencies and build (seconds; up to a minute after source changes)"
  fi
fi
# env.sh reports what it installs on stderr: that goes to the log with the rest of the tool output.
# shellcheck source=env.sh
source "$root/scripts/env.sh" 2>>"$log" || fail "could not get Node 24 and pnpm"
if [ "${GEOWATCH_QUICKSTART_NO_BUILD:-}" != 1 ]; then
  gw_install_and_build >>"$log" 2>&1 || fail "install or build"
  say "ready in $(seconds "$started") s"
fi

cd "$example"
node prepare.mjs >>"$log" 2>&1 || fail "preparing the input"
mv "$log" out/quickstart.log
log="$example/out/quickstart.log"

say "running examples/quickstart/geowatch.yaml"
run_started=$(date +%s)
# stdout is the console producer (one line per event): kept in the log, summarised below.
node "$root/apps/broker/bin/geowatch.js" run geowatch.yaml --until-idle --no-status \
  --log-level "${GEOWATCH_LOG_LEVEL:-warn}" >>"$log" 2>&1 || fail "geowatch run"
node report.mjs --log "$log" --seconds "$(seconds "$run_started")" || fail "reading the results"
