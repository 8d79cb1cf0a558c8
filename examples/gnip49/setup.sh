#!/usr/bin/env bash
# Subscriptions and feed tokens for the example (run once, from anywhere). Tokens are random and written to
# tokens.json (mode 600); the feed URLs it prints carry them. With --all-channels it also subscribes a mail
# address and a Slack channel (for geowatch.all-channels.yaml).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SUBS="node $ROOT/packages/subscriptions/bin/geowatch-subscriptions.js"
DB="$HERE/subscriptions.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
$SUBS add --db "$DB" --user alice --channel feed --targettype layer            # every layer event
$SUBS add --db "$DB" --user bob --channel feed --featuretype tiger:roads       # one layer, any event
$SUBS add --db "$DB" --user carol --channel feed --fence nyc                   # anything inside New York
$SUBS add --db "$DB" --user dave --channel feed --actiontype delete            # every removal
if [ "${1:-}" = "--all-channels" ]; then
  $SUBS add --db "$DB" --user erin --channel email --address erin@example.org --actiontype delete --actiontype create
  $SUBS add --db "$DB" --user roads-team --channel slack --address '#gis-roads' --featuretype tiger:roads
fi
$SUBS list --db "$DB"
umask 077
node -e '
const { randomBytes } = require("node:crypto");
const users = ["alice", "bob", "carol", "dave"];
const tokens = Object.fromEntries(users.map((u) => [u, randomBytes(18).toString("base64url")]));
require("node:fs").writeFileSync(process.argv[1], JSON.stringify(tokens, null, 2));
for (const u of users) console.log(`http://127.0.0.1:8089/feeds/${u}.atom?token=${tokens[u]}`);
' "$HERE/tokens.json"
