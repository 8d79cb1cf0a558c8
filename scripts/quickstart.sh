#!/usr/bin/env bash
# The README's first command: installs what it needs (Node 24 where the machine's node is older, pnpm,
# dependencies), builds, and runs the quickstart broker on its embedded default (no external server).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$GW_ROOT"
gw_install_and_build
cd examples/quickstart
node prepare.mjs
node ../../apps/broker/bin/geowatch.js run geowatch.yaml --until-idle --log-level "${GEOWATCH_LOG_LEVEL:-warn}"
node report.mjs
