// The memcached store against the real server (bash .ci/servers/memcached.sh start): the testkit's store checks,
// then concurrency, the item size limit, TTLs and keys.
import { describe, expect, it } from "vitest";
import { isGeoWatchError, payloadText } from "@geowatch/core";
import { requireEnv, storeSuite } from "@geowatch/testkit";
import { createMemcachedStore, memcachedBackend, memcachedStore } from "../src/index.js";
import type { MemcachedStoreOptions } from "../src/index.js";

const HINT = "From the repo root run: bash .ci/servers/memcached.sh start && source .servers/env/memcached.env";
const servers = () => requireEnv("GEOWATCH_MEMCACHED_SERVERS", HINT);
const unique = (tag: string) => `gwt-${tag}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function open(extra: Partial<MemcachedStoreOptions> = {}) {
  return memcachedStore({ servers: servers(), ...extra });
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error("expected a rejection");
  return err;
}

storeSuite("memcached", {
  setup: async () => ({ store: () => open({ ttl: 600 }) }),
  capabilities: { append: true, read: true },
});

describe("memcached store", () => {
  it("asks the server for its item size limit (-I 2m) at connect", async () => {
    const s = open();
    try {
      await s.connect();
      const l = await s.limits();
      expect(l.itemSizeMax).toBe(2 * 1024 * 1024);
      expect(l.maxValueBytes).toBeGreaterThan(2 * 1024 * 1024 - 100);
      expect(s.state).toBe("ready");
    } finally {
      await s.close();
    }
  });

  it("two writers appending to one key at once lose nothing (protocol APPEND, ADD for a new key)", async () => {
    const a = open({ ttl: 600 });
    const b = open({ ttl: 600 });
    try {
      // Fresh keys, so both writers race to create each one; 100 appends per writer per key, all in flight together.
      const keys = Array.from({ length: 10 }, () => unique("race"));
      const per = 100;
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < per; i++) {
        for (const key of keys) {
          writes.push(a.write({ key, body: `a${i}\n`, contentType: "text/plain", append: true }));
          writes.push(b.write({ key, body: `b${i}\n`, contentType: "text/plain", append: true }));
        }
      }
      await Promise.all(writes);
      for (const key of keys) {
        const lines = payloadText((await a.read(key))!).split("\n").filter(Boolean);
        expect(lines).toHaveLength(2 * per);
        expect(new Set(lines).size).toBe(2 * per);
        // Each writer's own appends keep their order.
        const mine = lines.filter((l) => l.startsWith("a")).map((l) => Number(l.slice(1)));
        expect(mine).toEqual([...mine].sort((x, y) => x - y));
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a rewrite after a read is a compare-and-set: two read-merge-write writers lose nothing", async () => {
    const key = unique("cas");
    const a = open();
    const b = open();
    let conflicts = 0;
    async function add(s: typeof a, item: string) {
      for (let tries = 0; tries < 200; tries++) {
        const body = await s.read(key);
        const list = body === undefined ? [] : (JSON.parse(payloadText(body)) as string[]);
        try {
          await s.write({ key, body: JSON.stringify([...list, item]), contentType: "application/json", append: false });
          return;
        } catch (err) {
          if (!isGeoWatchError(err, "STORE") || !err.retryable || !/changed since it was read/.test(err.message)) throw err;
          conflicts++;
        }
      }
      throw new Error(`${item}: no write after 200 tries`);
    }
    try {
      await Promise.all([
        (async () => {
          for (let i = 0; i < 40; i++) await add(a, `a${i}`);
        })(),
        (async () => {
          for (let i = 0; i < 40; i++) await add(b, `b${i}`);
        })(),
      ]);
      const list = JSON.parse(payloadText((await a.read(key))!)) as string[];
      expect(list).toHaveLength(80);
      expect(new Set(list).size).toBe(80);
      expect(conflicts).toBeGreaterThan(0); // the writers did collide, and the CAS caught it
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a rewrite of a key another writer changed since the read fails retryable, and leaves their value", async () => {
    const key = unique("stale");
    const a = open();
    const b = open();
    try {
      await a.write({ key, body: "v1", contentType: "text/plain", append: false });
      expect(payloadText((await a.read(key))!)).toBe("v1");
      await b.write({ key, body: "v2", contentType: "text/plain", append: false });
      const err = await errorOf(a.write({ key, body: "v1+mine", contentType: "text/plain", append: false }));
      expect(isGeoWatchError(err, "STORE") && err.retryable).toBe(true);
      expect(err.message).toContain(`key "${key}" changed since it was read`);
      expect(payloadText((await b.read(key))!)).toBe("v2");
      // A key that was absent at the read and created since: the same.
      const fresh = unique("stale-new");
      expect(await a.read(fresh)).toBeUndefined();
      await b.write({ key: fresh, body: "theirs", contentType: "text/plain", append: false });
      expect((await errorOf(a.write({ key: fresh, body: "mine", contentType: "text/plain", append: false }))).message).toContain("changed since it was read");
      expect(payloadText((await b.read(fresh))!)).toBe("theirs");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a value above the server's item size limit is a STORE error naming the key and the sizes; nothing is written", async () => {
    const s = open();
    try {
      const key = unique("big");
      const err = await errorOf(s.write({ key, body: "x".repeat(2 * 1024 * 1024), contentType: "text/plain", append: false }));
      expect(isGeoWatchError(err, "STORE")).toBe(true);
      expect(err.message).toMatch(new RegExp(`key "${key}": its value is 2097152 bytes, above the largest value the server takes \\(\\d+ bytes; item_size_max 2097152 bytes\\)`));
      expect(await s.read(key)).toBeUndefined();
      // The largest value the store allows is one the server takes.
      const { maxValueBytes } = await s.limits();
      const fits = "y".repeat(maxValueBytes! - key.length);
      await s.write({ key, body: fits, contentType: "text/plain", append: false });
      expect(payloadText((await s.read(key))!).length).toBe(fits.length);
      // An append that would grow the key past the limit: the same error, saying so; the value stays as it was.
      const grow = await errorOf(s.write({ key, body: "z".repeat(1000), contentType: "text/plain", append: true }));
      expect(isGeoWatchError(grow, "STORE")).toBe(true);
      expect(grow.message).toContain(`key "${key}": appending 1000 bytes would grow it past the server's item size limit`);
      expect(payloadText((await s.read(key))!).length).toBe(fits.length);
    } finally {
      await s.close();
    }
  });

  it("max_value_bytes lowers the limit", async () => {
    const s = open({ maxValueBytes: 100 });
    try {
      const key = unique("small");
      await s.write({ key, body: "x".repeat(100), contentType: "text/plain", append: false });
      const err = await errorOf(s.write({ key, body: "x".repeat(101), contentType: "text/plain", append: false }));
      expect(err.message).toContain("its value is 101 bytes, above the largest value the server takes (100 bytes");
    } finally {
      await s.close();
    }
  });

  it("ttl per store and per key pattern; an append refreshes the ttl", async () => {
    // memcached counts expiry in whole seconds of its own clock: the waits leave a second either way.
    const s = open({ ttl: 4, ttls: [{ key: "{run}/forever/*", ttl: 0 }, { key: "{run}/tile/{z}/{x}/{y}.png", ttl: 1 }] });
    const run = unique("ttl");
    const r = async (key: string) => (await s.read(`${run}/${key}`)) !== undefined;
    try {
      const w = (key: string, append = false) => s.write({ key: `${run}/${key}`, body: "v\n", contentType: "text/plain", append });
      await Promise.all([w("plain"), w("forever/a/b"), w("tile/3/4/2.png"), w("tile/3/4/2.jpg"), w("kept", true)]);
      await sleep(2500);
      expect(await r("tile/3/4/2.png"), "pattern ttl 1 s: expired").toBe(false);
      expect(await r("tile/3/4/2.jpg"), "no pattern matches: the store ttl 4 s, not yet expired").toBe(true);
      await w("kept", true); // 4 s from now again
      await sleep(2700);
      expect(await r("plain"), "store ttl 4 s: expired").toBe(false);
      expect(await r("tile/3/4/2.jpg"), "store ttl 4 s: expired").toBe(false);
      expect(await r("forever/a/b"), "pattern ttl 0: kept").toBe(true);
      expect(await r("kept"), "written 5.2 s ago with ttl 4 s, but appended to 2.7 s ago: kept").toBe(true);
      expect(payloadText((await s.read(`${run}/kept`))!)).toBe("v\nv\n");
    } finally {
      await s.close();
    }
  }, 20_000);

  it("keys that memcached cannot hold are VALIDATE errors naming the key", async () => {
    const s = open({ keyPrefix: "p:" });
    try {
      for (const [key, why] of [
        ["has space", "holds a space or control character"],
        ["tab\there", "holds a space or control character"],
        ["k".repeat(249), "is 251 bytes, longer than memcached's 250"],
      ] as const) {
        const err = await errorOf(s.write({ key, body: "x", contentType: "text/plain", append: false }));
        expect(isGeoWatchError(err, "VALIDATE"), String(err)).toBe(true);
        expect(err.message).toContain(why);
      }
      const key = unique("prefixed");
      await s.write({ key, body: "x", contentType: "text/plain", append: false });
      const plain = open();
      expect(payloadText((await plain.read(`p:${key}`))!)).toBe("x");
      await plain.close();
    } finally {
      await s.close();
    }
  });

  it("an unreachable server: connect fails with CONNECT (retryable) naming the server", async () => {
    const s = createMemcachedStore({ servers: "127.0.0.1:1", timeoutMs: 300 });
    const err = await errorOf(s.connect());
    expect(isGeoWatchError(err, "CONNECT") && err.retryable).toBe(true);
    expect(err.message).toContain("memcached 127.0.0.1:1 unreachable");
    expect(s.health().ok).toBe(false);
    await s.close();
  });

  it("options are validated with paths as config spells them", () => {
    const parsed = memcachedBackend.store!.parse({ servers: ["a b"], ttl: -1, ttls: [{ key: "" }], max_value_bytes: 0, colour: 1 }, { role: "store" });
    expect(parsed.ok).toBe(false);
    const paths = parsed.ok ? [] : parsed.problems.map((p) => p.path).sort();
    expect(paths).toEqual(["colour", "max_value_bytes", "servers[0]", "ttl", "ttls[0].key", "ttls[0].ttl"]);
  });
});
