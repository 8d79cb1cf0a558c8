// Regression tests against a real S3 API (moto: `bash .ci/servers/moto.sh start`).
import { createServer, connect as tcpConnect } from "node:net";
import type { Server, Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { guardStore, isGeoWatchError, payloadText } from "@geowatch/core";
import type { Consumer, InRecord, Position } from "@geowatch/core";
import { s3Backend, s3Consumer, s3Store } from "../src/index.js";
import type { S3ConsumerOptions, S3Store, S3StoreOptions } from "../src/index.js";
import { bucket, endpoint, rawClient } from "./server.js";

const drops: Array<() => Promise<void>> = [];
const open: Array<{ close?(): Promise<void> }> = [];
afterAll(async () => {
  for (const c of open) await c.close?.().catch(() => undefined);
  for (const d of drops) await d().catch(() => undefined);
});

async function newBucket(tag: string): Promise<string> {
  const b = await bucket(tag);
  drops.push(b.drop);
  return b.name;
}

function store(o: S3StoreOptions): S3Store {
  const s = s3Store({ endpoint: endpoint(), ...o });
  open.push(s);
  return s;
}

function consumer(o: S3ConsumerOptions): Consumer {
  const c = s3Consumer({ endpoint: endpoint(), pollMs: 100, ...o });
  open.push(c);
  return c;
}

const raw = rawClient();
const put = (b: string, key: string, body: string) => raw.send(new PutObjectCommand({ Bucket: b, Key: key, Body: body }));
const keysOf = async (b: string, prefix = "") => ((await raw.send(new ListObjectsV2Command({ Bucket: b, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!);
const text = (r: InRecord) => payloadText(r.value);
const lastPositions = (recs: InRecord[]): Position[] => (recs.length ? [recs[recs.length - 1]!.position!] : []);

async function drain(c: Consumer, want: number, ms = 10_000): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const deadline = Date.now() + ms;
  while (out.length < want && Date.now() < deadline) out.push(...(await c.receive(want - out.length, { waitMs: 500 })));
  return out;
}

describe("s3 store", () => {
  it("writes one new object per appended flush under partKey, and reads them back in order", async () => {
    const b = await newBucket("parts");
    const s = store({ bucket: b, partKey: "{key}/{seq}.ndjson" });
    for (let i = 0; i < 5; i++) await s.write({ key: "create/2026-12-01", body: `{"n":${i}}\n`, contentType: "application/x-ndjson", append: true });
    const keys = await keysOf(b, "create/2026-12-01/");
    expect(keys).toHaveLength(5);
    for (const k of keys) expect(k).toMatch(/^create\/2026-12-01\/\d{14}-\d{6}-[0-9a-f]{8}\.ndjson$/);
    expect(await s.list("create/")).toEqual(keys);
    expect(payloadText((await s.read("create/2026-12-01"))!)).toBe([0, 1, 2, 3, 4].map((n) => `{"n":${n}}\n`).join(""));
  });

  it("two writers appending at once lose nothing", async () => {
    const b = await newBucket("two");
    const [a, c] = [store({ bucket: b }), store({ bucket: b })];
    await Promise.all(
      [a, c].flatMap((s, w) => Array.from({ length: 20 }, (_, i) => s.write({ key: "k.ndjson", body: `${w}-${i}\n`, contentType: "text/plain", append: true }))),
    );
    const lines = payloadText((await a.read("k.ndjson"))!).trim().split("\n");
    expect(lines).toHaveLength(40);
    expect(new Set(lines).size).toBe(40);
  });

  it("a replace removes the parts it replaces", async () => {
    const b = await newBucket("replace");
    const s = store({ bucket: b, prefix: "p/" });
    await s.write({ key: "x", body: "a\n", contentType: "text/plain", append: true });
    await s.write({ key: "x", body: "b\n", contentType: "text/plain", append: true });
    await s.write({ key: "x", body: "only\n", contentType: "text/plain", append: false });
    expect(payloadText((await s.read("x"))!)).toBe("only\n");
    expect(await keysOf(b)).toEqual(["p/x"]);
  });

  it("a rewrite after a read is conditional: a concurrent writer's rewrite is not overwritten", async () => {
    const b = await newBucket("cond");
    const [a, c] = [store({ bucket: b }), store({ bucket: b })];
    await a.write({ key: "fc.json", body: "[1]", contentType: "application/json", append: false });
    // Both read [1]; c writes [1,3] first; a's [1,2] must be refused, not replace c's.
    expect(payloadText((await a.read("fc.json"))!)).toBe("[1]");
    expect(payloadText((await c.read("fc.json"))!)).toBe("[1]");
    await c.write({ key: "fc.json", body: "[1,3]", contentType: "application/json", append: false });
    const err = await a.write({ key: "fc.json", body: "[1,2]", contentType: "application/json", append: false }).catch((e: unknown) => e);
    expect(isGeoWatchError(err, "STORE")).toBe(true);
    expect((err as { retryable: boolean }).retryable).toBe(true);
    expect(String(err)).toMatch(/changed since it was read/);
    // The retry (as the core's store sink does it) reads again and merges.
    expect(payloadText((await a.read("fc.json"))!)).toBe("[1,3]");
    await a.write({ key: "fc.json", body: "[1,3,2]", contentType: "application/json", append: false });
    expect(payloadText((await c.read("fc.json"))!)).toBe("[1,3,2]");
    // A key that was absent when read is created only if still absent.
    expect(await a.read("new.json")).toBeUndefined();
    await c.write({ key: "new.json", body: "[9]", contentType: "application/json", append: false });
    await expect(a.write({ key: "new.json", body: "[8]", contentType: "application/json", append: false })).rejects.toThrow(/changed since it was read/);
  });

  it("bodies above multipart_bytes go up as a multipart upload and read back byte-exact", async () => {
    const b = await newBucket("multi");
    const s = store({ bucket: b, multipartBytes: 5 * 1024 * 1024 });
    const line = "x".repeat(1023) + "\n";
    const body = line.repeat(6 * 1024); // 6 MiB: two parts
    await s.write({ key: "big.ndjson", body, contentType: "application/x-ndjson", append: false });
    const got = await raw.send(new GetObjectCommand({ Bucket: b, Key: "big.ndjson" }));
    // A multipart ETag ends in -<parts>.
    expect(got.ETag).toMatch(/-2"$/);
    expect(payloadText((await s.read("big.ndjson"))!)).toBe(body);
  });

  it("refuses keys under .geowatch/ and lone surrogates; a missing bucket is a CONFIG error", async () => {
    const b = await newBucket("refuse");
    const s = store({ bucket: b });
    await expect(s.write({ key: ".geowatch/x", body: "a", contentType: "text/plain", append: false })).rejects.toThrow(/holds checkpoints/);
    const enc = await s.write({ key: "a", body: "bad \ud800 text", contentType: "text/plain", append: false }).catch((e: unknown) => e);
    expect(isGeoWatchError(enc, "ENCODE")).toBe(true);
    const missing = store({ bucket: `${b}-missing` });
    const err = await missing.connect!().catch((e: unknown) => e);
    expect(isGeoWatchError(err, "CONFIG")).toBe(true);
    expect(String(err)).toMatch(/does not exist/);
  });

  it("validates part_key and split/unpack through the backend definition", () => {
    const bad = s3Backend.store!.parse({ bucket: "bkt", part_key: "{seq}-{key}" }, { role: "store" });
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(bad)).toMatch(/part_key/);
    const both = s3Backend.consumer!.parse({ bucket: "bkt", split: "lines", unpack: "geojson" }, { role: "consumer" });
    expect(both.ok).toBe(false);
    const unknown = s3Backend.consumer!.parse({ bucket: "bkt", unpack: "shapefile" }, { role: "consumer" });
    expect(JSON.stringify(unknown)).toMatch(/unknown codec \\"shapefile\\"/);
    const good = s3Backend.consumer!.parse({ bucket: "bkt", prefix: "in/", group_id: "g1", start_at: "end" }, { role: "consumer" });
    expect(good.ok).toBe(true);
  });
});

describe("s3 store health", () => {
  /** A TCP proxy to moto that can cut every connection and refuse new ones. */
  async function proxy(): Promise<{ url: string; cut(): void; restore(): Promise<void>; close(): Promise<void> }> {
    const target = new URL(endpoint());
    const sockets = new Set<Socket>();
    let server: Server | undefined;
    let port = 0;
    const listen = () =>
      new Promise<void>((resolve) => {
        server = createServer((client) => {
          const up = tcpConnect(Number(target.port), target.hostname);
          sockets.add(client).add(up);
          client.pipe(up).pipe(client);
          const end = () => {
            client.destroy();
            up.destroy();
          };
          client.on("error", end).on("close", end);
          up.on("error", end).on("close", end);
        });
        server.listen(port, "127.0.0.1", () => {
          port = (server!.address() as { port: number }).port;
          resolve();
        });
      });
    await listen();
    const cut = () => {
      server?.close();
      server = undefined;
      for (const s of sockets) s.destroy();
      sockets.clear();
    };
    return { url: `http://127.0.0.1:${port}`, cut, restore: listen, close: async () => cut() };
  }

  it("reports not ok while the endpoint is unreachable and ok again once it answers", async () => {
    const b = await newBucket("health");
    const p = await proxy();
    const s = guardStore(s3Store({ bucket: b, endpoint: p.url, maxAttempts: 1, connectTimeoutMs: 500 }), { name: "h", backend: "s3" });
    open.push(s);
    try {
      await s.write({ key: "a", body: "1\n", contentType: "text/plain", append: true });
      expect(s.state).toBe("ready");
      p.cut();
      const err = await s.write({ key: "a", body: "2\n", contentType: "text/plain", append: true }).catch((e: unknown) => e);
      expect(isGeoWatchError(err, "CONNECT")).toBe(true);
      expect(s.state).toBe("reconnecting");
      expect(String(s.lastError)).toMatch(/unreachable|ECONNREFUSED/);
      await p.restore();
      const deadline = Date.now() + 5000;
      while (s.state !== "ready" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      // Back without another write: the probe noticed.
      expect(s.state).toBe("ready");
      await s.write({ key: "a", body: "3\n", contentType: "text/plain", append: true });
      expect(payloadText((await s.read!("a"))!)).toBe("1\n3\n");
    } finally {
      await p.close();
    }
  });
});

describe("s3 consumer", () => {
  it("turns new objects into records in key order and resumes after the checkpoint", async () => {
    const b = await newBucket("src");
    for (let i = 0; i < 3; i++) await put(b, `in/${i}.json`, `{"n":${i}}`);
    await put(b, "other/x.json", "{}");
    const c1 = consumer({ bucket: b, prefix: "in/" });
    const first = await drain(c1, 3);
    expect(first.map(text)).toEqual(['{"n":0}', '{"n":1}', '{"n":2}']);
    expect(first[0]!.key).toBe("in/0.json");
    expect(first[0]!.headers?.["s3-key"]).toBe("in/0.json");
    // Acknowledge the first two only.
    await c1.commit!(lastPositions(first.slice(0, 2)));
    expect(await c1.caughtUp!()).toBe(true);
    await put(b, "in/3.json", '{"n":3}');
    expect((await drain(c1, 1)).map(text)).toEqual(['{"n":3}']);
    await c1.close!();
    // A restart reads everything after the checkpoint again, nothing before it.
    const c2 = consumer({ bucket: b, prefix: "in/" });
    expect((await drain(c2, 2)).map(text)).toEqual(['{"n":2}', '{"n":3}']);
    expect(await c2.receive(10, { waitMs: 300 })).toEqual([]);
    const cp = await keysOf(b, ".geowatch/");
    expect(cp).toEqual([".geowatch/checkpoints/geowatch/in%2F.json"]);
  });

  it("split: lines resumes inside a partly acknowledged object", async () => {
    const b = await newBucket("lines");
    await put(b, "a.ndjson", "l0\nl1\r\n\nl2\nl3\n");
    const c1 = consumer({ bucket: b, split: "lines", groupId: "g" });
    const recs = await drain(c1, 4);
    expect(recs.map(text)).toEqual(["l0", "l1", "l2", "l3"]);
    await c1.commit!(lastPositions(recs.slice(0, 2)));
    await c1.close!();
    const c2 = consumer({ bucket: b, split: "lines", groupId: "g" });
    expect((await drain(c2, 2)).map(text)).toEqual(["l2", "l3"]);
    // Another group reads it all.
    const c3 = consumer({ bucket: b, split: "lines", groupId: "other" });
    expect(await drain(c3, 4)).toHaveLength(4);
  });

  it("unpack: geojson gives one record per feature", async () => {
    const b = await newBucket("feat");
    const fc = { type: "FeatureCollection", features: [1, 2, 3].map((id) => ({ type: "Feature", id, properties: { id }, geometry: { type: "Point", coordinates: [id, id] } })) };
    await put(b, "f.geojson", JSON.stringify(fc));
    const c = consumer({ bucket: b, unpack: "geojson" });
    const recs = await drain(c, 3);
    expect(recs.map((r) => (JSON.parse(text(r)) as { id: number }).id)).toEqual([1, 2, 3]);
  });

  it("start_at: end reads only objects written after the first start, and pins it", async () => {
    const b = await newBucket("end");
    await put(b, "0001", "old");
    const c1 = consumer({ bucket: b, startAt: "end" });
    expect(await c1.receive(10, { waitMs: 300 })).toEqual([]);
    await c1.close!();
    await put(b, "0002", "new");
    const c2 = consumer({ bucket: b, startAt: "end" });
    expect((await drain(c2, 1)).map(text)).toEqual(["new"]);
  });

  it("reads the objects the store writes, part by part", async () => {
    const b = await newBucket("roundtrip");
    const s = store({ bucket: b, partKey: "{key}/{seq}.ndjson" });
    const c = consumer({ bucket: b, prefix: "tracks/", split: "lines" });
    for (let i = 0; i < 3; i++) await s.write({ key: "tracks", body: `{"i":${2 * i}}\n{"i":${2 * i + 1}}\n`, contentType: "application/x-ndjson", append: true });
    expect((await drain(c, 6)).map((r) => (JSON.parse(text(r)) as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
