#!/usr/bin/env bash
# publint and @arethetypeswrong/cli on every publishable package (run after a build).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" || exit 1
cd "$GW_ROOT"
rc=0
for dir in packages/* apps/*; do
  [ -f "$dir/package.json" ] || continue
  node -e 'process.exit(require("./'"$dir"'/package.json").private ? 1 : 0)' || continue
  (cd "$dir" && pnpm exec publint --strict >/tmp/publint.$$ 2>&1) || { echo "publint failed in $dir:"; cat /tmp/publint.$$; rc=1; }
  (cd "$dir" && pnpm exec attw --pack . --profile esm-only --format ascii >/tmp/attw.$$ 2>&1) || { echo "attw failed in $dir:"; cat /tmp/attw.$$; rc=1; }
done
rm -f /tmp/publint.$$ /tmp/attw.$$
[ $rc -eq 0 ] && echo "publint and attw pass on every package"
exit $rc
