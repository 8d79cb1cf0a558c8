import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import type { OutRecord, Producer } from "@geowatch/core";
import { escapeXml, feedProducer, feedServer, openFeedDb } from "../src/index.js";
import type { FeedServer } from "../src/index.js";

let dir: string;
let db: string;
let server: FeedServer;
let producer: Producer;
const tokens = { alice: "alice-token-1", bob: "bob-token-2" };

const envelope = (id: string, recipient: string, extra: Record<string, unknown> = {}, data: unknown = null): OutRecord => {
  const metadata = { id, recipient, channel: "feed", actiontype: "update", targettype: "layer", featuretype: "topp:states", date: "2026-03-01T10:00:00Z", ...extra };
  return { value: JSON.stringify({ metadata, data }), metadata };
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gw-feed-"));
  db = join(dir, "feeds.db");
  await writeFile(join(dir, "tokens.json"), JSON.stringify(tokens));
  server = await feedServer({ db, tokensFile: join(dir, "tokens.json"), title: "Test feeds" });
  producer = feedProducer({ db, maxEntries: 5 });
  await producer.connect?.();
});
afterAll(async () => {
  await producer.close?.();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers });

describe("feed producer", () => {
  it("puts each record in its recipient's feed and adds a redelivered record once", async () => {
    const batch = [envelope("e1", "alice"), envelope("e2", "alice"), envelope("e1", "bob")];
    expect((await producer.send(batch)).every((r) => r.ok)).toBe(true);
    expect((await producer.send(batch)).every((r) => r.ok)).toBe(true);
    const feeds = openFeedDb(db);
    try {
      expect(feeds.entries("alice", 100).map((e) => e.id)).toEqual(["e2", "e1"]);
      expect(feeds.entries("bob", 100).map((e) => e.id)).toEqual(["e1"]);
    } finally {
      feeds.close();
    }
  });

  it("keeps the last max_entries per user", async () => {
    const batch = Array.from({ length: 8 }, (_, i) => envelope(`p${i}`, "carol"));
    await producer.send(batch);
    const feeds = openFeedDb(db);
    try {
      expect(feeds.entries("carol", 100).map((e) => e.id)).toEqual(["p7", "p6", "p5", "p4", "p3"]);
    } finally {
      feeds.close();
    }
  });

  it("fails a record without recipient alone (not retryable) when there is no user option", async () => {
    const res = await producer.send([envelope("x1", "dave"), { value: "no metadata at all" }, envelope("x2", "dave")]);
    expect(res.map((r) => r.ok)).toEqual([true, false, true]);
    const bad = res[1]!;
    expect(!bad.ok && isGeoWatchError(bad.error, "VALIDATE") && bad.retryable === false).toBe(true);
    expect(!bad.ok && bad.error.message).toContain("metadata.recipient");
  });
});

describe("feed server", () => {
  it("serves Atom with GeoRSS point, box and polygon from the entry's geometry or bbox", async () => {
    await producer.send([
      envelope("g-point", "erin", {}, { type: "Feature", geometry: { type: "Point", coordinates: [10.5, 45.25] }, properties: {} }),
      envelope("g-box", "erin", { bbox: [-124.7, 24.9, -66.9, 49.4] }),
      envelope("g-poly", "erin", {}, { type: "Polygon", coordinates: [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]] }),
    ]);
    await writeFile(join(dir, "tokens.json"), JSON.stringify({ ...tokens, erin: "erin-token" }));
    const res = await get("/feeds/erin.atom?token=erin-token");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/atom+xml; charset=utf-8");
    const xml = await res.text();
    expect(xml).toContain("<georss:point>45.25 10.5</georss:point>");
    expect(xml).toContain("<georss:box>24.9 -124.7 49.4 -66.9</georss:box>");
    expect(xml).toContain("<georss:polygon>0 0 0 2 1 2 1 0 0 0</georss:polygon>");
    const rss = await (await get("/feeds/erin.rss?token=erin-token")).text();
    expect(rss).toContain('<rss version="2.0"');
    expect(rss).toContain("<georss:point>45.25 10.5</georss:point>");
  });

  it("answers a wrong token and an unknown user alike (404, same body), and a missing token with 401", async () => {
    const wrong = await get("/feeds/alice.atom?token=nope");
    const unknown = await get("/feeds/nobody.atom?token=nope");
    expect(wrong.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(await wrong.text()).toBe(await unknown.text());
    expect((await get("/feeds/alice.atom?token=bob-token-2")).status).toBe(404);
    expect((await get("/feeds/alice.atom")).status).toBe(401);
    expect((await get("/feeds/alice.atom", { authorization: "Bearer alice-token-1" })).status).toBe(200);
  });

  it("validates params and query with its JSON schemas", async () => {
    expect((await get("/feeds/alice.pdf?token=alice-token-1")).status).toBe(400);
    expect((await get("/feeds/alice.atom?token=alice-token-1&limit=0")).status).toBe(400);
    // Unknown query parameters (a reader's cache buster) are dropped, not refused.
    expect((await get("/feeds/alice.atom?token=alice-token-1&_=1")).status).toBe(200);
  });

  it("answers If-None-Match with 304 until the feed changes", async () => {
    const first = await get("/feeds/alice.atom?token=alice-token-1");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect((await get("/feeds/alice.atom?token=alice-token-1", { "if-none-match": etag! })).status).toBe(304);
    expect((await get("/feeds/alice.atom?token=alice-token-1", { "if-none-match": `W/${etag!}` })).status).toBe(304);
    await producer.send([envelope("e3", "alice")]);
    const after = await get("/feeds/alice.atom?token=alice-token-1", { "if-none-match": etag! });
    expect(after.status).toBe(200);
    expect(after.headers.get("etag")).not.toBe(etag);
  });

  it("answers 500 without details when the tokens file cannot be read", async () => {
    const errors: string[] = [];
    const dir2 = await mkdtemp(join(tmpdir(), "gw-feed-bad-"));
    const logger = { debug() {}, info() {}, warn() {}, error: (msg: string, f?: Record<string, unknown>) => void errors.push(`${msg} ${String(f?.error)}`) };
    const s2 = await feedServer({ db: join(dir2, "f.db"), tokensFile: join(dir2, "missing-tokens.json") }, { logger });
    try {
      const r = await fetch(`${s2.url}/feeds/alice.atom?token=x`);
      expect(r.status).toBe(500);
      const body = await r.text();
      expect(body).toBe('{"error":"internal error"}');
      expect(errors.join("\n")).toContain("missing-tokens.json");
    } finally {
      await s2.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it("escapes everything it writes", async () => {
    const nasty = `<script>&"quotes" 'apos'</script>\u0001]]>`;
    await producer.send([envelope("x<&>", "alice", { featuretype: nasty, link: `https://example.org/a?b=1&c=<2>` })]);
    const xml = await (await get("/feeds/alice.atom?token=alice-token-1")).text();
    expect(xml).not.toContain("<script>");
    expect(xml).toContain("&lt;script&gt;&amp;&quot;quotes&quot; &apos;apos&apos;&lt;/script&gt;\uFFFD]]&gt;");
    expect(xml).toContain('href="https://example.org/a?b=1&amp;c=&lt;2&gt;"');
    expect(escapeXml("a\uD800b")).toBe("a\uFFFDb");
  });
});
