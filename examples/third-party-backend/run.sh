#!/usr/bin/env bash
# Packs the workspace packages the example needs, installs them with npm (as a user would) into a
# temporary copy of the example, and runs its tests. Run after the workspace is built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/env.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/.packs"
for p in core file queue spatial broker testkit; do
  dir="$GW_ROOT/packages/$p"; [ -d "$dir" ] || dir="$GW_ROOT/apps/$p"
  (cd "$dir" && pnpm pack --pack-destination "$work/.packs" >/dev/null)
  mv "$work/.packs/geowatch-$p-"*.tgz "$work/.packs/geowatch-$p.tgz"
done
cp -r "$here/geowatch-backend-webhook" "$here/app" "$work/"
cd "$work/app"
# A bounded install: a dependency missing from the packs must fail fast, not hang.
timeout 600 npm install --install-links --prefer-offline --no-audit --no-fund --loglevel=error --fetch-timeout=60000 --fetch-retries=1 >&2
GEOWATCH_JSON_REPORT="${GEOWATCH_JSON_REPORT:-}" npx vitest run --root . ${GEOWATCH_JSON_REPORT:+--reporter=default --reporter=json --outputFile="$GEOWATCH_JSON_REPORT"}
