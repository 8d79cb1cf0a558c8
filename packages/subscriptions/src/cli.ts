/** `geowatch-subscriptions add|remove|list`: manages the subscriptions the `subscriptions` stage reads. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { isGeoWatchError, reasonOf } from "@geowatch/core";
import { openSubscriptionStore } from "./store.js";
import type { Area, Subscription, SubscriptionInput } from "./store.js";

const HELP = `Usage: geowatch-subscriptions <command> [options]

Commands:
  add       add a subscription; prints its id (or the subscription as JSON with --json)
  remove    remove subscriptions by id:  remove --db FILE ID [ID...]
  list      list subscriptions (--user U to list one user's)

Options:
  --db FILE            subscription database (env GEOWATCH_SUBSCRIPTIONS_DB)
  --user U             the subscriber (add: required; list: filter)
  --channel C          add: email, feed, slack, or another sink kind the stage routes
  --address A          add: where the channel delivers (email address, Slack channel, feed name); default: the user
  --actiontype X       add: an event type to match (repeatable; none: every action)
  --targettype X       add: a target type to match (repeatable; none: every target)
  --featuretype X      add: a layer to match, e.g. topp:states (repeatable; none: every layer)
  --fence NAME         add: an area by fence name (from the stage's fence file)
  --polygon JSON|@FILE add: an area as a GeoJSON Polygon or MultiPolygon
  --json               print JSON
  -h, --help           this help

Exit codes: 0 done, 1 a subscription to remove does not exist or the database failed, 2 usage or invalid subscription.`;

class Usage extends Error {}

function describe(s: Subscription): string {
  const what = [
    s.actiontypes.length ? `actiontype=${s.actiontypes.join(",")}` : "",
    s.targettypes.length ? `targettype=${s.targettypes.join(",")}` : "",
    s.featuretypes.length ? `featuretype=${s.featuretypes.join(",")}` : "",
    s.area ? ("fence" in s.area ? `fence=${s.area.fence}` : `polygon(${s.area.polygon.type})`) : "",
  ].filter(Boolean);
  return `${s.id}\t${s.user}\t${s.channel}\t${s.address}\t${what.join(" ") || "(everything)"}`;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: { out: (s: string) => void; err: (s: string) => void; env: NodeJS.ProcessEnv } = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        db: { type: "string" },
        user: { type: "string" },
        channel: { type: "string" },
        address: { type: "string" },
        actiontype: { type: "string", multiple: true },
        targettype: { type: "string", multiple: true },
        featuretype: { type: "string", multiple: true },
        fence: { type: "string" },
        polygon: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.err(`geowatch-subscriptions: ${reasonOf(err)}\n\n${HELP}\n`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (v.help || command === "help") {
    io.out(`${HELP}\n`);
    return 0;
  }
  try {
    if (!command || !["add", "remove", "list"].includes(command)) throw new Usage(command ? `unknown command ${JSON.stringify(command)}` : "a command is required");
    const db = v.db ?? io.env.GEOWATCH_SUBSCRIPTIONS_DB;
    if (!db) throw new Usage("--db is required (or set GEOWATCH_SUBSCRIPTIONS_DB)");
    if (command !== "remove" && rest.length > 0) throw new Usage(`unexpected argument ${JSON.stringify(rest[0])}`);
    if (command === "add") {
      if (!v.user) throw new Usage("add needs --user");
      if (!v.channel) throw new Usage("add needs --channel");
      if (v.fence !== undefined && v.polygon !== undefined) throw new Usage("give --fence or --polygon, not both");
      const input: SubscriptionInput = { user: v.user, channel: v.channel };
      if (v.address !== undefined) input.address = v.address;
      if (v.actiontype) input.actiontypes = v.actiontype;
      if (v.targettype) input.targettypes = v.targettype;
      if (v.featuretype) input.featuretypes = v.featuretype;
      if (v.fence !== undefined) input.area = { fence: v.fence };
      if (v.polygon !== undefined) {
        const text = v.polygon.startsWith("@") ? readFileSync(resolve(v.polygon.slice(1)), "utf8") : v.polygon;
        let polygon: unknown;
        try {
          polygon = JSON.parse(text);
        } catch {
          throw new Usage("--polygon is not JSON");
        }
        input.area = { polygon } as Area;
      }
      const store = openSubscriptionStore(resolve(db));
      try {
        const s = store.add(input);
        io.out(v.json ? `${JSON.stringify(s)}\n` : `${s.id}\n`);
      } finally {
        store.close();
      }
      return 0;
    }
    if (command === "remove") {
      if (rest.length === 0) throw new Usage("remove needs at least one subscription id");
      const ids = rest.map((r) => {
        if (!/^[1-9][0-9]*$/.test(r)) throw new Usage(`${JSON.stringify(r)} is not a subscription id`);
        return Number(r);
      });
      const store = openSubscriptionStore(resolve(db));
      let missing = 0;
      try {
        for (const id of ids) {
          if (store.remove(id)) io.out(`removed ${id}\n`);
          else {
            io.err(`geowatch-subscriptions: no subscription ${id}\n`);
            missing++;
          }
        }
      } finally {
        store.close();
      }
      return missing > 0 ? 1 : 0;
    }
    const store = openSubscriptionStore(resolve(db));
    try {
      const list = store.list(v.user === undefined ? {} : { user: v.user });
      io.out(v.json ? `${JSON.stringify(list)}\n` : list.map((s) => `${describe(s)}\n`).join(""));
    } finally {
      store.close();
    }
    return 0;
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`geowatch-subscriptions: ${err.message}\n(see geowatch-subscriptions --help)\n`);
      return 2;
    }
    if (isGeoWatchError(err, "VALIDATE")) {
      io.err(`geowatch-subscriptions: invalid subscription: ${err.message.replace(/^\[geowatch\] \[subscriptions\] /, "")}\n`);
      return 2;
    }
    io.err(`geowatch-subscriptions: ${reasonOf(err)}\n`);
    return 1;
  }
}
