import { mkdtemp, rm, writeFile, appendFile, readFile, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import type { Consumer, InRecord } from "@geowatch/core";
import { fileBackend, fileConsumer, fileProducer, fileStore, fromLine, toLine } from "../src/index.js";

let dir: string;
const open: Consumer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gw-file-"));
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close?.();
  await rm(dir, { recursive: true, force: true });
});

function consumer(path: string, extra: Record<string, unknown> = {}): Consumer {
  const c = fileConsumer({ path, pollMs: 20, ...extra }, { logger: quiet });
  open.push(c);
  return c;
}
const warnings: string[] = [];
const quiet = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };

async function drain(c: Consumer, n: number, waitMs = 2000): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const until = Date.now() + waitMs;
  while (out.length < n && Date.now() < until) out.push(...(await c.receive(n - out.length, { waitMs: 100 })));
  return out;
}

const values = (recs: InRecord[]) => recs.map((r) => r.value);

async function put(path: string, vals: string[]): Promise<void> {
  const p = fileProducer({ path });
  await p.send(vals.map((value) => ({ value })));
  await p.close?.();
}

describe("line framing", () => {
  it("writes one-line JSON as is and anything else as a JSON string, and reads both back exactly", () => {
    const cases = ['{"a":1}', "[1,2]", "42", "plain text", "two\nlines", '"a json string"', ' "x"', "", "cr\r", "é ✓"];
    for (const v of cases) {
      const line = toLine(v);
      expect(line).not.toMatch(/[\n\r]/);
      expect(fromLine(line)).toBe(v);
    }
    expect(toLine('{"a":1}')).toBe('{"a":1}');
    expect(toLine("two\nlines")).toBe('"two\\nlines"');
    expect(toLine(new TextEncoder().encode('{"b":2}'))).toBe('{"b":2}');
    expect(() => toLine(new Uint8Array([0xff, 0xfe]))).toThrow(/UTF-8/);
  });

  it("writes JSON text a codec vouches for (jsonText) as is, but a JSON string still as a string literal", () => {
    expect(toLine('{"a":[1,2]}', true)).toBe('{"a":[1,2]}');
    expect(toLine("[1]", true)).toBe("[1]");
    // The json codec encodes the string "s" as "s" with its quotes: written as the literal of that text, as without the flag.
    expect(toLine('"s"', true)).toBe(toLine('"s"'));
    expect(fromLine(toLine('"s"', true))).toBe('"s"');
  });
});

describe("fileProducer + fileConsumer", () => {
  it("round trips records with positions", async () => {
    const path = join(dir, "sub", "ch.ndjson");
    const p = fileProducer({ path });
    const sent = ['{"n":1}', "hello", "multi\nline", new TextEncoder().encode('{"n":4}')];
    const res = await p.send(sent.map((value) => ({ value })));
    expect(res.every((r) => r.ok)).toBe(true);
    await p.close?.();
    const text = await readFile(path, "utf8");
    expect(text.split("\n")).toHaveLength(5);
    const recs = await drain(consumer(path), 4);
    expect(values(recs)).toEqual(['{"n":1}', "hello", "multi\nline", '{"n":4}']);
    expect(recs[0]?.position).toEqual({ stream: path, offset: 0, next: 8 });
    expect(recs[1]?.position).toEqual({ stream: path, offset: 8, next: 16 });
    expect(fileConsumer({ path }).capabilities).toEqual({ ordering: "stream", batching: true });
  });

  it("hands out byte positions and exact values from ASCII and multi-byte chunks, `max` lines at a time", async () => {
    const path = join(dir, "mixed");
    const ascii = ['{"a":"0123456789abcdef"}', "plain", "", '"quoted\\n"', "x".repeat(40)];
    const wide = ['{"é":"✓"}', "z"];
    await writeFile(path, [...ascii, ...wide].map((l) => `${l}\n`).join("") + "tail-no-newline");
    const c = consumer(path, { chunkBytes: 1024 });
    const got: InRecord[] = [];
    for (let i = 0; i < 10 && got.length < 7; i++) got.push(...(await c.receive(2, { waitMs: 50 })));
    expect(values(got)).toEqual([...ascii.slice(0, 3), "quoted\n", ascii[4], ...wide]);
    let at = 0;
    for (const [k, l] of [...ascii, ...wide].entries()) {
      const bytes = Buffer.byteLength(l) + 1;
      expect(got[k]?.position).toEqual({ stream: path, offset: at, next: at + bytes });
      at += bytes;
    }
    expect(await c.receive(10, { waitMs: 50 })).toEqual([]); // the partial last line waits for its newline
  });

  it("reads the next chunk ahead; lines appended after that read are read too, in order, with exact positions", async () => {
    const path = join(dir, "ahead");
    const line = (i: number) => `{"i":${String(i).padStart(3, "0")},"pad":"${"p".repeat(382)}"}`; // 400 bytes + newline
    await writeFile(path, [0, 1, 2].map((i) => `${line(i)}\n`).join(""));
    // 1024-byte chunks: the first read holds lines 0 and 1; the read ahead of line 2 comes back short.
    const c = consumer(path, { chunkBytes: 1024 });
    const first = await c.receive(2, { waitMs: 50 });
    expect(values(first)).toEqual([line(0), line(1)]);
    await appendFile(path, [3, 4, 5, 6, 7].map((i) => `${line(i)}\n`).join(""));
    const rest: InRecord[] = [];
    for (let i = 0; i < 20 && rest.length < 6; i++) rest.push(...(await c.receive(2, { waitMs: 50 })));
    expect(values(rest)).toEqual([2, 3, 4, 5, 6, 7].map(line));
    [...first, ...rest].forEach((r, k) => expect(r.position).toEqual({ stream: path, offset: 401 * k, next: 401 * (k + 1) }));
  });

  it("refuses a record that is not UTF-8 without failing the batch", async () => {
    const p = fileProducer({ path: join(dir, "x") });
    const res = await p.send([{ value: "ok" }, { value: new Uint8Array([0xff]) }]);
    await p.close?.();
    expect(res[0]?.ok).toBe(true);
    expect(res[1]?.ok).toBe(false);
  });

  it("resumes after a restart from the committed offset", async () => {
    const path = join(dir, "ch");
    await put(path, Array.from({ length: 10 }, (_, i) => `{"n":${i}}`));
    const a = consumer(path);
    const first = await drain(a, 10);
    expect(first).toHaveLength(10);
    await a.commit?.([first[4]!.position!]);
    await a.close?.();
    const offset = JSON.parse(await readFile(`${path}.offset`, "utf8")) as { offset: number };
    expect(offset.offset).toBe(first[4]!.position!.next);
    const b = consumer(path);
    expect(values(await drain(b, 5))).toEqual([5, 6, 7, 8, 9].map((n) => `{"n":${n}}`));
    expect(await b.receive(10, { waitMs: 50 })).toEqual([]);
  });

  it("commitIntervalMs: writes the offset at most once per interval, the newest at its end and on close", async () => {
    const path = join(dir, "ch");
    const offsetPath = join(dir, "ch.offset");
    await put(path, Array.from({ length: 6 }, (_, i) => `{"n":${i}}`));
    const saved = async () => (JSON.parse(await readFile(offsetPath, "utf8").catch(() => '{"offset":-1}')) as { offset: number }).offset;
    const a = consumer(path, { commitIntervalMs: 300 });
    const got = await drain(a, 6);
    // The first commit is written at once (nothing was written in the last interval) ...
    await a.commit?.([got[0]!.position!]);
    expect(await saved()).toBe(got[0]!.position!.next);
    // ... later ones within the interval move the offset in memory only ...
    await a.commit?.([got[1]!.position!]);
    await a.commit?.([got[2]!.position!]);
    expect(await saved()).toBe(got[0]!.position!.next);
    // ... and the newest is written when the interval ends.
    const until = Date.now() + 3000;
    while ((await saved()) !== got[2]!.position!.next && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(await saved()).toBe(got[2]!.position!.next);
    // A commit waiting for its interval is written by close.
    await a.commit?.([got[3]!.position!]);
    await a.commit?.([got[4]!.position!]);
    await a.close?.();
    expect(await saved()).toBe(got[4]!.position!.next);
    expect(values(await drain(consumer(path), 1))).toEqual(['{"n":5}']);
  });

  it("re-reads uncommitted lines after a restart and honours offsetPath", async () => {
    const path = join(dir, "ch");
    const offsetPath = join(dir, "offsets", "..", "my.offset");
    await put(path, ["1", "2", "3"]);
    const a = consumer(path, { offsetPath });
    const got = await drain(a, 3);
    await a.commit?.([got[0]!.position!]);
    await a.close?.();
    expect(values(await drain(consumer(path, { offsetPath }), 2))).toEqual(["2", "3"]);
    // The runtime layer refuses calls after close.
    await expect(a.commit!([])).rejects.toThrow(/"file consumer" is closed/);
  });

  it("does not emit a partial last line until its newline arrives", async () => {
    const path = join(dir, "ch");
    await writeFile(path, '{"a":1}\n{"b":');
    const c = consumer(path);
    expect(values(await c.receive(10, { waitMs: 100 }))).toEqual(['{"a":1}']);
    expect(await c.receive(10, { waitMs: 100 })).toEqual([]);
    await appendFile(path, "2}");
    expect(await c.receive(10, { waitMs: 100 })).toEqual([]);
    await appendFile(path, "\n");
    const recs = await c.receive(10, { waitMs: 1000 });
    expect(values(recs)).toEqual(['{"b":2}']);
    expect(recs[0]?.position).toEqual({ stream: path, offset: 8, next: 16 });
  });

  it("restarts from 0 after truncation and logs it", async () => {
    const path = join(dir, "ch");
    await put(path, Array.from({ length: 5 }, (_, i) => `{"old":${i}}`));
    const c = consumer(path);
    const old = await drain(c, 5);
    await c.commit?.([old[4]!.position!]);
    await truncate(path, 0);
    await appendFile(path, "7\n");
    warnings.length = 0;
    const recs = await drain(c, 1);
    expect(values(recs)).toEqual(["7"]);
    expect(recs[0]?.position?.offset).toBe(0);
    expect(warnings.join()).toMatch(/truncated/);
    await c.commit?.([recs[0]!.position!]);
    await c.close?.();
    // The offset file now points into the new content.
    expect(JSON.parse(await readFile(`${path}.offset`, "utf8"))).toMatchObject({ offset: 2 });
  });

  it("follows: waits for a missing file and delivers records appended after it started", async () => {
    const path = join(dir, "later", "ch");
    const c = consumer(path);
    const t0 = Date.now();
    expect(await c.receive(10, { waitMs: 150 })).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const pending = c.receive(10, { waitMs: 5000 });
    setTimeout(() => void put(path, ['{"late":1}']), 100);
    expect(values(await pending)).toEqual(['{"late":1}']);
    const more = c.receive(10, { waitMs: 5000 });
    setTimeout(() => void put(path, ['{"late":2}']), 50);
    expect(values(await more)).toEqual(['{"late":2}']);
  });

  it("returns [] early when the signal aborts", async () => {
    const c = consumer(join(dir, "none"));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    expect(await c.receive(1, { waitMs: 60_000, signal: ac.signal })).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("startAt end skips what is there and pins that offset", async () => {
    const path = join(dir, "ch");
    await writeFile(path, "1\n2\n");
    const a = consumer(path, { startAt: "end" });
    expect(await a.receive(10, { waitMs: 50 })).toEqual([]);
    await appendFile(path, "3\n");
    await a.close?.();
    expect(values(await drain(consumer(path, { startAt: "end" }), 1))).toEqual(["3"]);
  });

  // With a long commit interval the commit that frees the old file is written when the consumer switches.
  it.each([0, 60_000])("drains a rotated file before following the new one (commitIntervalMs %i)", async (commitIntervalMs) => {
    const path = join(dir, "ch");
    const p = fileProducer({ path, rotateBytes: 20 });
    const c = consumer(path, { commitIntervalMs });
    await p.send([{ value: "1" }, { value: "2" }]);
    const a = await drain(c, 2);
    await p.send([{ value: "333333333333" }, { value: "4" }]); // 19 bytes: still the first file
    await p.send([{ value: "5" }]); // past 20 bytes: rotates first
    await p.close?.();
    const b = await drain(c, 3, 500);
    expect(values([...a, ...b])).toEqual(["1", "2", "333333333333", "4"]);
    // The new file is read only once everything from the old one is committed.
    await c.commit?.([a[1]!.position!]); // written at once; the next one, within the interval, waits for it
    expect(await c.receive(10, { waitMs: 100 })).toEqual([]);
    await c.commit?.([b[1]!.position!]);
    const d = await drain(c, 1);
    expect(values(d)).toEqual(["5"]);
    expect(d[0]?.position).toEqual({ stream: path, offset: 0, next: 2 });
  });
});

describe("fileStore", () => {
  it("appends, snapshots and reads", async () => {
    const s = fileStore({ dir: join(dir, "store") });
    expect(s.capabilities).toEqual({ append: true, read: true });
    await s.connect?.();
    expect(await s.read?.("a/b.ndjson")).toBeUndefined();
    await s.write({ key: "a/b.ndjson", body: "1\n", contentType: "application/x-ndjson", append: true });
    await s.write({ key: "a/b.ndjson", body: new TextEncoder().encode("2\n"), contentType: "x", append: true });
    expect(new TextDecoder().decode((await s.read?.("a/b.ndjson")) as Uint8Array)).toBe("1\n2\n");
    await s.write({ key: "a/b.ndjson", body: '{"type":"FeatureCollection"}', contentType: "x", append: false });
    expect(new TextDecoder().decode((await s.read?.("a/b.ndjson")) as Uint8Array)).toBe('{"type":"FeatureCollection"}');
  });

  it("rejects keys that leave the directory with a SECURITY error naming the key", async () => {
    const s = fileStore({ dir });
    for (const key of ["../x", "a/../../x", "/etc/passwd", "a\\..\\x", "..", ""]) {
      const err = await s.write({ key, body: "x", contentType: "x", append: false }).catch((e: unknown) => e);
      expect(isGeoWatchError(err, "SECURITY"), key).toBe(true);
      expect((err as Error).message).toContain(`"${key}"`);
      await expect(s.read!(key)).rejects.toThrow(/SECURITY|key/);
    }
  });
});

describe("lifecycle (core's runtime layer around the raw I/O)", () => {
  it("connects once under concurrent first calls, and refuses calls after close", async () => {
    const path = join(dir, "life", "out.ndjson");
    const p = fileProducer({ path });
    expect(p.state).toBe("idle");
    const results = await Promise.all([1, 2, 3].map((i) => p.send([{ value: `{"i":${i}}` }])));
    expect(results.flat().every((r) => r.ok)).toBe(true);
    expect(p.state).toBe("ready");
    expect((await readFile(path, "utf8")).trim().split("\n").sort()).toEqual(['{"i":1}', '{"i":2}', '{"i":3}']);
    await p.close();
    await p.close(); // once
    await expect(p.send([{ value: "{}" }])).rejects.toThrow(/CLOSED|closed/);
    const c = fileConsumer({ path });
    expect((await c.receive(10, { waitMs: 100 })).length).toBe(3);
    await c.close();
    await expect(c.receive(1, { waitMs: 0 })).rejects.toThrow(/"file consumer" is closed/);
    const s = fileStore({ dir: join(dir, "life", "store") });
    await s.write({ key: "a.txt", body: "x", contentType: "text/plain", append: false });
    await s.close();
    await expect(s.write({ key: "a.txt", body: "y", contentType: "text/plain", append: false })).rejects.toThrow(/"file store" is closed/);
  });
});

describe("fileBackend", () => {
  it("validates options by role and reports every problem with its path, as config spells it", () => {
    expect(fileBackend.name).toBe("file");
    const consumer = fileBackend.consumer!;
    expect(consumer.parse({ path: "/tmp/x", start_at: "end" }, { role: "consumer" })).toEqual({ ok: true, options: { path: "/tmp/x", startAt: "end" } });
    const bad = consumer.parse({ path: 3, start_at: "middle", poll_ms: -1, nope: 1 }, { role: "consumer" });
    expect(bad.ok ? [] : bad.problems.map((p) => p.path).sort()).toEqual(["nope", "path", "poll_ms", "start_at"]);
    // A store takes `dir`, not `path`.
    const store = fileBackend.store!.parse({ path: "/tmp/x" }, { role: "store" });
    expect(store.ok ? [] : store.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([expect.stringMatching(/^dir: /), expect.stringMatching(/^path: unknown option \(known: dir, fsync\)/)]);
    expect(() => fileConsumer({ path: "" })).toThrow(/CONFIG|path/);
    expect(() => fileProducer({ path: "x", rotateBytes: 0 } as never)).toThrow(/rotateBytes/);
    expect(consumer.docs().map((d) => d.name)).toContain("offset_path");
    expect(consumer.docs().find((d) => d.name === "poll_ms")).toMatchObject({ type: "integer", default: 200, required: false });
  });

  it("resolves relative paths against the config file's folder", () => {
    const r = fileBackend.producer!.parse({ path: "out/events.ndjson" }, { role: "producer" }, { baseDir: "/srv/geowatch" });
    expect(r).toEqual({ ok: true, options: { path: "/srv/geowatch/out/events.ndjson" } });
  });
});
