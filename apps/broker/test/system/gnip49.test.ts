// The GNIP-49 flow end to end against real servers: RabbitMQ (bash .ci/servers/rabbitmq.sh start), SMTP
// (aiosmtpd: bash .ci/servers/smtp.sh start) and the testkit's Slack Web API server. GeoServer
// notification-module events published to a topic exchange -> `geowatch run` (geoserver_events ->
// subscriptions) -> per-user feeds, Slack channels and mail, with a SIGKILL of the broker mid-flow. Every
// subscriber must receive exactly the events their subscriptions select, in every channel: nothing lost,
// nothing extra. Feeds are idempotent (no duplicate); Slack and mail may repeat what was in flight at the kill,
// and the test counts those repeats.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { connect, type ChannelModel } from "amqplib";
import { afterAll, expect, it } from "vitest";
import { feedServer, type FeedServer } from "@geowatch/feed";
import { requireEnv, startSlackServer } from "@geowatch/testkit";
import { requireServer, sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";

const SUBS_BIN = fileURLToPath(new URL("../../../../packages/subscriptions/bin/geowatch-subscriptions.js", import.meta.url));
// Reads the Maildir aiosmtpd delivers to with Python's email package (the email package's own test helper).
const READ_MAILDIR = fileURLToPath(new URL("../../../../packages/email/test/read-maildir.py", import.meta.url));
const children: RunChild[] = [];
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  for (const f of cleanup) await f().catch(() => undefined);
});

type Box = [number, number, number, number];
const NYC: Box = [-74.3, 40.5, -73.7, 40.95];
const WEST: Box = [-125, 30, -110, 45];
const LAYERS = ["topp:states", "tiger:roads", "nurc:lakes", "sf:archsites"];
const ring = ([x0, y0, x1, y1]: Box) => [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]];
const meets = (a: Box, b: Box) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
const bounds = ([minx, miny, maxx, maxy]: Box) => ({ minx, miny, maxx, maxy, crs: "EPSG:4326" });

/** What the test knows about an event it publishes, independent of the mapping under test. */
interface Truth {
  id: string;
  actiontype: string;
  targettype: string;
  featuretype?: string;
  bbox?: Box;
}

/** Event i as GeoServer's notification-geonode encoder writes it, and what it means. */
function event(i: number, run: string): { body: Record<string, unknown>; key: string; truth: Truth | undefined } {
  const id = `${run}-${i}`;
  const layer = LAYERS[i % LAYERS.length]!;
  const [ws, name] = layer.split(":") as [string, string];
  const where: Box = i % 3 === 0 ? [-74.05 + (i % 7) * 0.01, 40.6, -73.9, 40.8] : i % 3 === 1 ? [-120, 35, -115, 40] : [10, 45, 11, 46];
  const timestamp = new Date(Date.UTC(2026, 2, 1, 0, i)).toISOString().replace(/:00\.000Z$/, "Z");
  const base = { id, generator: "GeoServer", timestamp, user: "admin", originator: "10.0.0.5" };
  switch (i % 7) {
    case 0:
      return {
        key: "geoserver.catalog",
        body: { ...base, type: "Catalog", action: "Add", source: { id: `LayerInfoImpl-${i}`, type: "LayerInfo", name, workspace: ws, geographicBunds: bounds(where) } },
        truth: { id, actiontype: "create", targettype: "layer", featuretype: layer, bbox: where },
      };
    case 1:
      return {
        key: "geoserver.catalog",
        body: { ...base, type: "Catalog", action: "Update", properties: { defaultStyle: `${ws}:style${i}` }, source: { id: `LayerInfoImpl-${i}`, type: "LayerInfo", name, workspace: ws } },
        truth: { id, actiontype: "update", targettype: "layer", featuretype: layer },
      };
    case 2:
      return {
        key: "geoserver.catalog",
        body: { ...base, type: "Catalog", action: "Remove", source: { id: `FeatureTypeInfoImpl-${i}`, type: "FeatureTypeInfo", name, workspace: ws, store: "s" } },
        truth: { id, actiontype: "delete", targettype: "featuretype", featuretype: layer },
      };
    case 3:
    case 4:
      return {
        key: "geoserver.data",
        body: { ...base, type: "Data", source: { id: `FeatureTypeInfoImpl-${i}`, type: "FeatureTypeInfo", name, workspace: ws }, properties: { inserted: i % 5, updated: 1, bounds: bounds(where) } },
        truth: { id, actiontype: "edit", targettype: "data", featuretype: layer, bbox: where },
      };
    case 5:
      return {
        key: "geoserver.catalog",
        body: { ...base, type: "Catalog", action: "Add", source: { id: `DataStoreInfoImpl-${i}`, type: "StoreInfo", name: `store${i}`, workspace: ws } },
        truth: { id, actiontype: "create", targettype: "store" },
      };
    default:
      // Every seventh message is not a GeoServer notification: it must be dead-lettered, nothing else.
      return { key: "geoserver.other", body: { ...base, type: "Service", note: "not a notification" }, truth: undefined };
  }
}

/** The subscriptions, as the CLI adds them, and the rule each one stands for. */
interface Subscriber {
  user: string;
  channel: "feed" | "slack" | "email";
  /** Slack channel id or mail address; the feed name is the user. */
  address?: string;
  args: string[];
  wants: (t: Truth) => boolean;
}
const FEEDS: Subscriber[] = [
  { user: "alice", channel: "feed", args: ["--targettype", "layer"], wants: (t) => t.targettype === "layer" },
  { user: "bob", channel: "feed", args: ["--featuretype", "tiger:roads"], wants: (t) => t.featuretype === "tiger:roads" },
  { user: "carol", channel: "feed", args: ["--fence", "nyc"], wants: (t) => t.bbox !== undefined && meets(t.bbox, NYC) },
  {
    user: "dave",
    channel: "feed",
    args: ["--actiontype", "edit", "--targettype", "data", "--polygon", JSON.stringify({ type: "Polygon", coordinates: ring(WEST) })],
    wants: (t) => t.actiontype === "edit" && t.targettype === "data" && t.bbox !== undefined && meets(t.bbox, WEST),
  },
  { user: "erin", channel: "feed", args: ["--actiontype", "delete", "--actiontype", "create", "--targettype", "store", "--targettype", "featuretype"], wants: (t) => ["delete", "create"].includes(t.actiontype) && ["store", "featuretype"].includes(t.targettype) },
];
/** Slack channels and mail addresses; the run id keeps this run's mail apart in the shared Maildir. */
const others = (run: string): Subscriber[] => [
  { user: "roads-team", channel: "slack", address: "C0000ROADS", args: ["--featuretype", "tiger:roads"], wants: (t) => t.featuretype === "tiger:roads" },
  { user: "nyc-desk", channel: "slack", address: "C00000NYC", args: ["--fence", "nyc", "--targettype", "data"], wants: (t) => t.targettype === "data" && t.bbox !== undefined && meets(t.bbox, NYC) },
  { user: "frank", channel: "email", address: `frank+${run}@example.org`, args: ["--actiontype", "delete"], wants: (t) => t.actiontype === "delete" },
  { user: "gina", channel: "email", address: `gina+${run}@example.org`, args: ["--targettype", "store"], wants: (t) => t.targettype === "store" },
];

async function amqp(): Promise<ChannelModel> {
  const url = requireServer("GEOWATCH_AMQP_URL");
  try {
    const c = await connect(url);
    c.on("error", () => {});
    return c;
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at GEOWATCH_AMQP_URL (${(err as Error).message}); start it: bash .ci/servers/rabbitmq.sh start`);
  }
}

/** Polls `fn` until it returns a value; fails at once, with the child's log, when the child exits first. */
async function whileRunning<T>(child: RunChild, what: string, fn: () => T | undefined, ms: number, every: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    const gone = child.proc.exitCode !== null || child.proc.signalCode !== null;
    if (gone || Date.now() > deadline) {
      throw new Error(`${gone ? `geowatch run exited (${child.proc.exitCode ?? child.proc.signalCode})` : `timed out after ${ms} ms`} waiting for ${what}; its log ends: ${child.stderr().slice(-3000)}`);
    }
    await sleep(every);
  }
}

function feedRows(db: string): number {
  try {
    const d = new DatabaseSync(db, { readOnly: true, timeout: 2000 });
    try {
      return (d.prepare("SELECT count(*) AS n FROM feed_entries").get() as { n: number }).n;
    } finally {
      d.close();
    }
  } catch {
    return 0;
  }
}

it("GeoServer events over a RabbitMQ topic exchange reach exactly their subscribers' feeds, Slack channels and mail, through a SIGKILL", async () => {
  requireServer("GEOWATCH_AMQP_URL");
  const smtpHint = "This test mails through the real SMTP server: bash .ci/servers/smtp.sh start && source .servers/env/smtp.env";
  requireEnv("GEOWATCH_SMTP_HOST", smtpHint);
  const maildir = requireEnv("GEOWATCH_SMTP_MAILDIR", smtpHint);
  const dir = tempDir("gnip49");
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  const run = unique("gnip49");
  const exchange = `${run}-geoserver`;
  const queue = `${run}-notifications`;
  const N = 700;

  // Subscriptions through the CLI, the named area, the feed tokens.
  const subsDb = join(dir, "subscriptions.db");
  writeFileSync(join(dir, "areas.geojson"), JSON.stringify({ type: "FeatureCollection", features: [{ type: "Feature", id: "nyc", properties: {}, geometry: { type: "Polygon", coordinates: ring(NYC) } }] }));
  const SUBSCRIBERS = [...FEEDS, ...others(run)];
  for (const s of SUBSCRIBERS) {
    const address = s.address ? ["--address", s.address] : [];
    execFileSync(process.execPath, [SUBS_BIN, "add", "--db", subsDb, "--user", s.user, "--channel", s.channel, ...address, ...s.args], { stdio: "pipe" });
  }
  const tokens = Object.fromEntries(FEEDS.map((s) => [s.user, `${s.user}-${run}`]));
  writeFileSync(join(dir, "tokens.json"), JSON.stringify(tokens));
  const feedsDb = join(dir, "feeds.db");

  const events = Array.from({ length: N }, (_, i) => event(i, run));
  const truths = events.flatMap((e) => (e.truth ? [e.truth] : []));
  const expected = new Map(SUBSCRIBERS.map((s) => [s.user, truths.filter(s.wants).map((t) => t.id).sort()]));
  const count = (channel: string) => SUBSCRIBERS.filter((s) => s.channel === channel).reduce((n, s) => n + expected.get(s.user)!.length, 0);
  const total = count("feed");
  for (const [user, ids] of expected) expect(ids.length, `${user} subscribes to some events`).toBeGreaterThan(10);
  // The mix also has events nobody subscribed to.
  expect(truths.some((t) => SUBSCRIBERS.every((s) => !s.wants(t)))).toBe(true);

  const slack = await startSlackServer({
    channels: [
      { id: "C0000ROADS", name: "roads" },
      { id: "C00000NYC", name: "nyc" },
    ],
  });
  cleanup.push(() => slack.close());
  const config = writeConfig(dir, [
    "brokers:",
    "  - name: gnip49",
    "    count: 20",
    "    sleep_period: 0.1",
    "    consumers:",
    `      - { backend: amqp, queue: ${queue}, exchange: ${exchange}, bindings: ["geoserver.#"], prefetch: 50, codec: json }`,
    "    stages:",
    "      - { stage: geoserver_events }",
    "      - { stage: subscriptions, db: ./subscriptions.db, fences: ./areas.geojson, routes: { feed: feeds, slack: chat, email: mail } }",
    "    producers:",
    "      - { name: feeds, backend: feed, db: ./feeds.db, max_entries: 10000, codec: json }",
    `      - { name: chat, backend: slack, token: xoxb-geowatch-test, api_url: "${slack.url}", rate_per_channel: 500, codec: { name: template, options: { format: slack, templates: { default: "{{metadata.id}} {{metadata.actiontype}} {{metadata.targettype}}" } } } }`,
    '      - { name: mail, backend: email, from: "GeoWatch <geowatch@example.org>", subject: "{{metadata.id}} {{metadata.actiontype}} {{metadata.targettype}}", text: "{{metadata.actiontype}} {{metadata.targettype}} {{metadata.name}}", codec: json }',
    "    dead_letter: { backend: file, path: ./dead-letter.ndjson }",
  ]);

  const conn = await amqp();
  cleanup.push(async () => {
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue).catch(() => undefined);
    await ch.deleteExchange(exchange).catch(() => undefined);
    await conn.close();
  });
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, "geoserver.#");
  const publish = async (from: number, to: number) => {
    for (const e of events.slice(from, to)) ch.publish(exchange, e.key, Buffer.from(JSON.stringify(e.body)), { persistent: true, contentType: "application/json" });
    await ch.waitForConfirms();
  };

  // The feeds are served by their own process part (here: the test), reading the database the broker writes.
  const server: FeedServer = await feedServer({ db: feedsDb, tokensFile: join(dir, "tokens.json") });
  cleanup.push(() => server.close());

  await publish(0, N / 2);
  const first = await startRun(config);
  children.push(first);
  // SIGKILL as soon as the first entries are in, with half the events not even published yet.
  const atKill = await whileRunning(first, "the first feed entries", () => (feedRows(feedsDb) > 0 ? feedRows(feedsDb) : undefined), 60_000, 10);
  first.proc.kill("SIGKILL");
  expect(await first.exited).toBeNull();
  expect(atKill, "the kill came mid-flow").toBeLessThan(total);
  await publish(N / 2, N);

  const second = await startRun(config);
  children.push(second);
  const feed = async (user: string) => {
    const r = await fetch(`${server.url}/feeds/${user}.json?token=${tokens[user]!}&limit=1000`);
    expect(r.status).toBe(200);
    return ((await r.json()) as { items: Array<{ id: string; title: string; date_published: string; _geo?: unknown }> }).items;
  };
  await whileRunning(second, "every subscriber's feed to be complete", () => (feedRows(feedsDb) >= total ? true : undefined), 120_000, 200);
  const mails = () => (JSON.parse(execFileSync("python3", [READ_MAILDIR, maildir], { encoding: "utf8", maxBuffer: 256 << 20 })) as Array<{ rcpt_to: string; subject: string }>).filter((m) => m.rcpt_to.includes(`+${run}@`));
  await whileRunning(second, "every Slack message", () => (new Set(slack.messages.map((m) => `${m.channel} ${m.text}`)).size >= count("slack") ? true : undefined), 120_000, 200);
  await whileRunning(second, "every mail", () => {
    const got = mails();
    return new Set(got.map((m) => `${m.rcpt_to} ${m.subject}`)).size >= count("email") ? got : undefined;
  }, 120_000, 500);
  await until("the source queue to drain", async () => {
    const c = await conn.createChannel();
    try {
      const q = await c.checkQueue(queue);
      return q.messageCount === 0 ? true : undefined;
    } finally {
      await c.close();
    }
  }, 60_000, 200);
  await sleep(1000);
  expect(await stopRun(second)).toBe(0);

  for (const s of FEEDS) {
    const items = await feed(s.user);
    const ids = items.map((i) => i.id);
    expect(ids.length - new Set(ids).size, `${s.user}: duplicate entries`).toBe(0);
    expect([...ids].sort(), `${s.user} got exactly the events they subscribed to`).toEqual(expected.get(s.user));
  }
  expect(feedRows(feedsDb)).toBe(total);

  // Slack and mail: every subscriber got exactly their events; what the kill made the sinks send twice is counted.
  let repeats = 0;
  for (const s of SUBSCRIBERS.filter((x) => x.channel !== "feed")) {
    const ids =
      s.channel === "slack"
        ? slack.messagesIn(s.address!).map((m) => (m.text ?? "").split(" ")[0]!)
        : mails()
            .filter((m) => m.rcpt_to.includes(s.address!))
            .map((m) => m.subject.split(" ")[0]!);
    const distinct = [...new Set(ids)].sort();
    expect(distinct, `${s.user} (${s.channel}) got exactly the events they subscribed to`).toEqual(expected.get(s.user));
    repeats += ids.length - distinct.length;
  }

  // One entry as a reader sees it: title from the metadata, the event's date, GeoRSS from the lon/lat bounds.
  const carol = await feed("carol");
  const e0 = carol.find((i) => i.id === `${run}-0`)!;
  expect(e0.title).toBe("create layer topp:states");
  expect(e0.date_published).toBe("2026-03-01T00:00:00.000Z");
  const atom = await (await fetch(`${server.url}/feeds/carol.atom?token=${tokens.carol!}`)).text();
  expect(atom).toContain("<georss:box>40.6 -74.05 40.8 -73.9</georss:box>");
  // A wrong token tells nothing.
  expect((await fetch(`${server.url}/feeds/carol.atom?token=${tokens.bob!}`)).status).toBe(404);

  // Every non-notification was dead-lettered with the reason (a replay after the kill may repeat one).
  const dead = readFileSync(join(dir, "dead-letter.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { reason: string; payload: string });
  const bad = events.filter((e) => !e.truth).map((e) => e.body.id as string);
  expect([...new Set(dead.map((d) => (JSON.parse(d.payload) as { id: string }).id))].sort()).toEqual([...bad].sort());
  for (const d of dead) expect(d.reason).toBe('[geoserver_events] [geowatch] [geoserver] geoserver_events: not a GeoServer notification: type "Service" is neither Catalog nor Data');
  console.log(
    `[gnip49] ${N} events -> ${total} feed entries, ${count("slack")} Slack messages, ${count("email")} mails for ${SUBSCRIBERS.length} subscribers; ` +
      `SIGKILL after ${atKill} entries; 0 lost; 0 duplicate feed entries; ${repeats} Slack/mail deliveries repeated by the replay; ` +
      `${dead.length} dead letters for ${bad.length} bad events`,
  );
}, 240_000);
