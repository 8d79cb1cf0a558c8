#!/usr/bin/env bash
# The whole test suite, from a fresh clone: gets Node 24 and pnpm if needed, installs, builds, lints,
# starts the real servers the suites need (.ci/servers/*.sh), runs every package's tests against them,
# stops the servers, and prints one closing line: "N passed, N failed, N skipped".
# With CI=true a server that cannot start fails the run; nothing is skipped silently.
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
