#!/usr/bin/env bash
# Subscriptions and feed tokens for the example (run once, from anywhere). Tokens are random and written to
# tokens.json (mode 600); the feed URLs it prints carry them.
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
$SUBS list --db "$DB"
umask 077
node -e '
const { randomBytes } = require("node:crypto");
const users = ["alice", "bob", "carol", "dave"];
const tokens = Object.fromEntries(users.map((u) => [u, randomBytes(18).toString("base64url")]));
require("node:fs").writeFileSync(process.argv[1], JSON.stringify(tokens, null, 2));
for (const u of users) console.log(`http://127.0.0.1:8089/feeds/${u}.atom?token=${tokens[u]}`);
' "$HERE/tokens.json"
