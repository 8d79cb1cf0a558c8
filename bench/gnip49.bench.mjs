// GNIP-49 notifications (issue 10): GeoServer events -> geoserver_events -> subscriptions -> feed producer on
// node:sqlite, through the Broker, against a bare loop that does the same work by hand in the same run (parse
// the event, match the subscribers, insert the same entries with one transaction per batch). Also the feed
// server: Atom requests per second for a 100-entry feed against a bare Fastify route serving a precomputed
// document of the same size. Each measurement runs in its own process so its peak RSS is its own.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";

const pkg = (name) => new URL(`../packages/${name}/dist/index.js`, import.meta.url).href;
const { Broker, silentLogger, getCodec } = await import(new URL("../packages/core/dist/index.js", import.meta.url).href);
const { feedProducer, feedServer } = await import(pkg("feed"));
const { geoserverEvents, subscriptionsStage, openSubscriptionStore } = await import(pkg("subscriptions"));
const BATCH = 500;
const LAYERS = ["topp:states", "tiger:roads", "nurc:lakes", "sf:archsites"];
const SUBS = [
  { user: "alice", channel: "feed", targettypes: ["layer"] },
  { user: "bob", channel: "feed", featuretypes: ["tiger:roads"] },
  { user: "carol", channel: "feed", actiontypes: ["edit"] },
  { user: "dave", channel: "feed", actiontypes: ["delete", "create"], targettypes: ["featuretype", "store"] },
];

function event(i) {
  const layer = LAYERS[i % 4];
  const [workspace, name] = layer.split(":");
  const base = { id: `ev-${i}`, generator: "GeoServer", timestamp: "2026-03-01T10:20Z", user: "admin", originator: "127.0.0.1" };
  const bounds = { minx: -74.02, miny: 40.7, maxx: -73.95, maxy: 40.78, crs: "EPSG:4326" };
  switch (i % 4) {
    case 0: return { ...base, type: "Catalog", action: "Add", source: { id: `L${i}`, type: "LayerInfo", name, workspace, geographicBunds: bounds } };
    case 1: return { ...base, type: "Data", source: { id: `F${i}`, type: "FeatureTypeInfo", name, workspace }, properties: { inserted: 1, bounds } };
    case 2: return { ...base, type: "Catalog", action: "Remove", source: { id: `F${i}`, type: "FeatureTypeInfo", name, workspace } };
    default: return { ...base, type: "Catalog", action: "Update", properties: { defaultStyle: "x" }, source: { id: `L${i}`, type: "LayerInfo", name, workspace } };
  }
}
const ACTION = { Add: "create", Update: "update", Remove: "delete" };
const TARGET = { LayerInfo: "layer", FeatureTypeInfo: "featuretype" };
const wants = (s, m) =>
  (!s.actiontypes || s.actiontypes.includes(m.actiontype)) && (!s.targettypes || s.targettypes.includes(m.targettype)) && (!s.featuretypes || s.featuretypes.includes(m.featuretype));

function source(n) {
  let i = 0;
  return {
    capabilities: { acks: true, batching: true },
    async receive(max) {
      const m = Math.min(max, n - i);
      const out = new Array(m);
      for (let j = 0; j < m; j++) out[j] = { value: JSON.stringify(event(i + j)) };
      i += m;
      return out;
    },
    async ack() {},
  };
}

async function pipeline(mode, n, dir) {
  const db = join(dir, `${mode}.db`);
  const t0 = performance.now();
  let entries = 0;
  if (mode === "bare") {
    const d = new DatabaseSync(db);
    d.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE e (seq INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT, id TEXT, body TEXT, UNIQUE(user, id))");
    const ins = d.prepare("INSERT OR IGNORE INTO e (user, id, body) VALUES (?, ?, ?)");
    for (let i = 0; i < n; i += BATCH) {
      d.exec("BEGIN");
      for (let k = i; k < Math.min(n, i + BATCH); k++) {
        const ev = JSON.parse(JSON.stringify(event(k)));
        const isData = ev.type === "Data";
        const meta = { id: ev.id, actiontype: isData ? "edit" : ACTION[ev.action], targettype: isData ? "data" : TARGET[ev.source.type], featuretype: `${ev.source.workspace}:${ev.source.name}` };
        for (const s of SUBS) {
          if (!wants(s, meta)) continue;
          const text = JSON.stringify({ metadata: { ...meta, recipient: s.user, channel: "feed" }, data: ev });
          entries += Number(ins.run(s.user, ev.id, JSON.stringify({ title: `${meta.actiontype} ${meta.targettype} ${meta.featuretype}`, content: text })).changes);
        }
      }
      d.exec("COMMIT");
      await Promise.resolve();
    }
    d.close();
  } else {
    const subsDb = join(dir, "subs.db");
    const store = openSubscriptionStore(subsDb);
    if (store.list().length === 0) for (const s of SUBS) store.add(s);
    store.close();
    const ctx = { name: "s", logger: silentLogger, secret: () => undefined, baseDir: dir };
    const gs = await geoserverEvents.create({}, { ...ctx, name: "geoserver_events" });
    const subs = await subscriptionsStage.create({ db: subsDb, routes: { feed: ["feeds"] } }, { ...ctx, name: "subscriptions" });
    await subs.open();
    const feeds = feedProducer({ db, maxEntries: 1_000_000 });
    let sent = 0;
    const counting = { capabilities: feeds.capabilities, connect: () => feeds.connect(), close: () => feeds.close(), send: async (r) => ((sent += r.length), feeds.send(r)) };
    const broker = new Broker({
      name: "bench",
      consumers: [{ name: "in", consumer: source(n), codec: getCodec("json"), count: BATCH }],
      stages: [gs, subs],
      producers: [{ name: "feeds", producer: counting, codec: getCodec("json") }],
      logger: silentLogger,
      receiveWaitMs: 0,
      sleepPeriodMs: 0,
    });
    await counting.connect();
    const stats = await broker.run({ untilIdle: true });
    await subs.close();
    await counting.close();
    if (stats.acked !== n) throw new Error(`acked ${stats.acked}, want ${n}`);
    entries = sent;
  }
  const ms = performance.now() - t0;
  return { mode, n, entries, ms, rate: (n / ms) * 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 };
}

/** Requests per second over `seconds` with `conc` clients. */
async function hammer(url, seconds, conc) {
  const end = Date.now() + seconds * 1000;
  let count = 0;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (Date.now() < end) {
        const r = await fetch(url);
        const t = await r.text();
        if (r.status !== 200) throw new Error(`status ${r.status}`);
        bytes += t.length;
        count++;
      }
    }),
  );
  return { rps: count / seconds, bytes: bytes / count };
}

async function serve(mode, dir) {
  const db = join(dir, "serve.db");
  const tokensFile = join(dir, "tokens.json");
  writeFileSync(tokensFile, JSON.stringify({ alice: "t" }));
  const p = feedProducer({ db, maxEntries: 100 });
  const recs = Array.from({ length: 100 }, (_, i) => {
    const metadata = { id: `e${i}`, recipient: "alice", actiontype: "update", targettype: "layer", featuretype: "topp:states", date: "2026-03-01T10:00:00Z", bbox: [-74, 40, -73, 41] };
    return { value: JSON.stringify({ metadata, data: event(i) }), metadata };
  });
  await p.send(recs);
  await p.close();
  const server = await feedServer({ db, tokensFile });
  const atomUrl = `${server.url}/feeds/alice.atom?token=t`;
  const doc = await (await fetch(atomUrl)).text();
  let res;
  if (mode === "bare") {
    const { default: Fastify } = await import(new URL("../packages/feed/node_modules/fastify/fastify.js", import.meta.url).href);
    const app = Fastify({ logger: false });
    app.get("/x", async (_req, reply) => reply.type("application/atom+xml").send(doc));
    await app.listen({ port: 0, host: "127.0.0.1" });
    await hammer(`http://127.0.0.1:${app.server.address().port}/x`, 1, 8);
    res = await hammer(`http://127.0.0.1:${app.server.address().port}/x`, 4, 8);
    await app.close();
  } else {
    await hammer(atomUrl, 1, 8);
    res = await hammer(atomUrl, 4, 8);
  }
  await server.close();
  return { mode, ...res, maxRssMB: process.resourceUsage().maxRSS / 1024 };
}

function child(...args) {
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--child", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  const dir = mkdtempSync(join(tmpdir(), "gw-bench-gnip49-"));
  try {
    const [what, mode, n] = process.argv.slice(3);
    console.log(JSON.stringify(what === "pipeline" ? await pipeline(mode, Number(n), dir) : await serve(mode, dir)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  const n = Number(process.env.BENCH_N ?? 40_000);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const bare = [], gw = [], sbare = [], sgw = [];
  for (let r = 0; r < runs; r++) {
    bare.push(child("pipeline", "bare", String(n)));
    gw.push(child("pipeline", "broker", String(n)));
    sbare.push(child("serve", "bare"));
    sgw.push(child("serve", "feed"));
  }
  const med = (xs, k) => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (x) => Math.round(x).toLocaleString("en-US");
  if (gw[0].entries !== bare[0].entries) throw new Error(`entries differ: broker ${gw[0].entries}, bare ${bare[0].entries}`);
  const ratio = med(gw, "rate") / med(bare, "rate");
  const sratio = med(sgw, "rps") / med(sbare, "rps");
  console.log(`bare loop   ${fmt(n)} events -> ${fmt(bare[0].entries)} entries  ${fmt(med(bare, "rate"))} events/s (runs ${bare.map((b) => fmt(b.rate)).join(" / ")})  peak RSS ${fmt(med(bare, "maxRssMB"))} MB`);
  console.log(`broker      ${fmt(n)} events -> ${fmt(gw[0].entries)} entries  ${fmt(med(gw, "rate"))} events/s (runs ${gw.map((b) => fmt(b.rate)).join(" / ")})  peak RSS ${fmt(med(gw, "maxRssMB"))} MB`);
  console.log(`ratio broker/bare events/s: ${ratio.toFixed(2)}x`);
  console.log(`bare Fastify, same ${fmt(sgw[0].bytes)}-byte Atom: ${fmt(med(sbare, "rps"))} req/s (runs ${sbare.map((b) => fmt(b.rps)).join(" / ")})  peak RSS ${fmt(med(sbare, "maxRssMB"))} MB`);
  console.log(`feed server /feeds/alice.atom (100 entries, token check, render, ETag): ${fmt(med(sgw, "rps"))} req/s (runs ${sgw.map((b) => fmt(b.rps)).join(" / ")})  peak RSS ${fmt(med(sgw, "maxRssMB"))} MB`);
  console.log(`ratio feed/bare req/s: ${sratio.toFixed(2)}x`);
  console.log(JSON.stringify({ bench: "gnip49", n, runs, entries: gw[0].entries, bareRate: med(bare, "rate"), brokerRate: med(gw, "rate"), ratio, bareRps: med(sbare, "rps"), feedRps: med(sgw, "rps"), serveRatio: sratio }));
}
