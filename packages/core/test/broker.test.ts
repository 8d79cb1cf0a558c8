import { describe, expect, it } from "vitest";
import { Broker } from "../src/broker.js";
import { memoryChannel } from "../src/backends/memory.js";
import { GeoWatchError } from "../src/errors.js";
import type { Codec, Consumer, InRecord, OutRecord, Position, Producer, SendResult, Store, StoreWrite } from "../src/types.js";

const json: Codec = {
  name: "json",
  contentType: "application/json",
  encode: (v) => JSON.stringify(v),
  decode: (p) => {
    try {
      return JSON.parse(typeof p === "string" ? p : new TextDecoder().decode(p));
    } catch (err) {
      throw new GeoWatchError("DECODE", `invalid JSON: ${(err as Error).message}`, { backend: "json" });
    }
  },
};

async function drain(c: Consumer, max = 100000): Promise<InRecord[]> {
  const out: InRecord[] = [];
  for (;;) {
    const got = await c.receive(max, { waitMs: 0 });
    if (got.length === 0) return out;
    out.push(...got);
    await c.ack?.(got);
  }
}

function collecting(): Producer & { got: OutRecord[] } {
  const got: OutRecord[] = [];
  return { got, send: async (rs) => rs.map((r) => (got.push(r), { ok: true as const })) };
}

describe("Broker", () => {
  it("moves messages, acknowledging only after the sink accepted them", async () => {
    const src = memoryChannel();
    await src.producer().send([1, 2, 3].map((i) => ({ value: JSON.stringify({ i }) })));
    const out = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src.consumer(), codec: json }], producers: [{ name: "out", producer: out, codec: json }] });
    const stats = await b.run({ untilIdle: true });
    expect(out.got.map((r) => JSON.parse(r.value as string).i)).toEqual([1, 2, 3]);
    expect(stats.acked).toBe(3);
    expect(src.size + src.inFlight).toBe(0);
  });

  it("dead-letters malformed payloads with the reason and keeps running", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: '{"ok":1}' }, { value: "{nope" }, { value: '{"ok":2}' }]);
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: out, codec: json }],
      deadLetter: { name: "dlq", producer: dlq },
    });
    const stats = await b.run({ untilIdle: true });
    expect(out.got).toHaveLength(2);
    expect(dlq.got).toHaveLength(1);
    const dead = JSON.parse(dlq.got[0]!.value as string);
    expect(dead.reason).toMatch(/\[json\] invalid JSON/);
    expect(dead.payload).toBe("{nope");
    expect(dlq.got[0]!.headers!["x-geowatch-reason"]).toMatch(/invalid JSON/);
    expect(stats.deadLettered).toBe(1);
    expect(src.size + src.inFlight).toBe(0);
  });

  it("retries failed records only, then dead-letters after maxTries", async () => {
    const src = memoryChannel();
    await src.producer().send([1, 2, 3].map((i) => ({ value: JSON.stringify({ i }) })));
    const attempts = new Map<number, number>();
    const flaky: Producer & { got: number[] } = {
      got: [],
      async send(rs) {
        return rs.map((r): SendResult => {
          const i = JSON.parse(r.value as string).i as number;
          const n = (attempts.get(i) ?? 0) + 1;
          attempts.set(i, n);
          if (i === 2 && n < 3) return { ok: false, error: new Error("busy") };
          if (i === 3) return { ok: false, error: new Error("always") };
          flaky.got.push(i);
          return { ok: true };
        });
      },
    };
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: flaky, codec: json }],
      deadLetter: { name: "dlq", producer: dlq },
      maxTries: 4,
      retryBaseMs: 1,
      retryMaxMs: 2,
    });
    const stats = await b.run({ untilIdle: true });
    expect(flaky.got.sort()).toEqual([1, 2]);
    expect(attempts.get(1)).toBe(1);
    expect(attempts.get(2)).toBe(3);
    expect(attempts.get(3)).toBe(4);
    expect(dlq.got).toHaveLength(1);
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/not delivered after 4 attempts: always/);
    expect(stats.retries).toBe(2 + 3);
  });

  it("leaves records unacknowledged when the dead-letter sink is down at shutdown", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: "{bad" }]);
    const down: Producer = { send: async () => { throw new Error("dlq down"); } };
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      deadLetter: { name: "dlq", producer: down, maxTries: 2 },
      retryBaseMs: 1,
    });
    const running = b.run();
    await new Promise((r) => setTimeout(r, 50));
    await b.stop();
    await running.catch(() => undefined);
    expect(src.size).toBe(1); // nacked back with requeue
  });

  it("commits ordered streams only up to the lowest unacknowledged position", async () => {
    const commits: Position[] = [];
    let at = 0;
    const recs: InRecord[] = [0, 1, 2, 3].map((o) => ({ value: `{"o":${o}}`, position: { stream: "p0", offset: o, next: o + 1 } }));
    const stream: Consumer = {
      capabilities: { ordering: "stream" },
      async receive(max) {
        const got = recs.slice(at, at + max);
        at += got.length;
        return got;
      },
      async commit(ps) {
        commits.push(...ps);
      },
    };
    // Slow first batch, fast second: the second may not commit past the first.
    let calls = 0;
    const sink: Producer = {
      async send(rs) {
        const first = calls++ === 0;
        if (first) await new Promise((r) => setTimeout(r, 30));
        return rs.map(() => ({ ok: true as const }));
      },
    };
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: stream, codec: json, count: 2 }], producers: [{ name: "out", producer: sink, codec: json }] });
    await b.run({ untilIdle: true });
    expect(commits.at(-1)!.next).toBe(4);
    for (const c of commits) expect([2, 4]).toContain(c.next);
  });

  it("filters by metadata, deduplicates objects, keeps the last one, and counts", async () => {
    const src = memoryChannel();
    const env = (a: string, id: number) => JSON.stringify({ metadata: { actiontype: a, targettype: "layer" }, data: { id } });
    await src.producer().send([env("create", 1), env("delete", 2), env("create", 1), env("create", 3)].map((value) => ({ value })));
    const out = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: out, codec: json }],
      filterMetadata: { actiontype: ["create"] },
      deduplicate: true,
    });
    const stats = await b.run({ untilIdle: true });
    expect(out.got.map((r) => JSON.parse(r.value as string).data.id)).toEqual([1, 3]);
    expect(stats.duplicates).toBe(1);
    expect(stats.filtered).toBe(2);
    expect(out.got[0]!.metadata).toEqual({ actiontype: "create", targettype: "layer" });
  });

  it("gives each consumer its own count, so none starves", async () => {
    const a = memoryChannel();
    const c = memoryChannel();
    await a.producer().send(Array.from({ length: 50 }, (_, i) => ({ value: `{"a":${i}}` })));
    await c.producer().send(Array.from({ length: 5 }, (_, i) => ({ value: `{"c":${i}}` })));
    const out = collecting();
    const b = new Broker({
      name: "t",
      count: 5,
      consumers: [
        { name: "a", consumer: a.consumer(), codec: json },
        { name: "c", consumer: c.consumer(), codec: json },
      ],
      producers: [{ name: "out", producer: out, codec: json }],
    });
    await b.run({ maxCycles: 1 });
    const got = out.got.map((r) => Object.keys(JSON.parse(r.value as string))[0]);
    expect(got.filter((k) => k === "a")).toHaveLength(5);
    expect(got.filter((k) => k === "c")).toHaveLength(5);
  });

  it("buffers into stores, appends with `which`, and acknowledges after the flush", async () => {
    const files = new Map<string, string>();
    const store: Store = {
      capabilities: { append: true, read: true },
      async write(op: StoreWrite) {
        files.set(op.key, (op.append ? (files.get(op.key) ?? "") : "") + op.body);
      },
      async read(k) {
        return files.get(k);
      },
    };
    const src = memoryChannel();
    await src.producer().send([1, 2, 3].map((i) => ({ value: JSON.stringify({ metadata: { featuretype: "pts" }, data: i }) })));
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      storesOut: [
        { name: "all", store, key: "{featuretype}.ndjson", flushCount: 2, flushMs: 5 },
        { name: "last", store, key: "last.json", which: "last", mode: "snapshot" },
      ],
    });
    const stats = await b.run({ untilIdle: true });
    expect(files.get("pts.ndjson")!.trim().split("\n")).toHaveLength(3);
    expect(JSON.parse(files.get("last.json")!).data).toBe(3);
    expect(stats.acked).toBe(3);
  });

  it("dead-letters at once what a store or producer refuses for good, and retries what may pass", async () => {
    const writes = new Map<string, number>();
    const store: Store = {
      async write(op: StoreWrite) {
        writes.set(op.key, (writes.get(op.key) ?? 0) + 1);
        if (op.key === "bad.json") throw new GeoWatchError("VALIDATE", "the server refused the feature: no geometry", { backend: "t" });
        if (op.key === "flaky.json") throw new Error("socket hang up");
      },
    };
    let sends = 0;
    const refusing: Producer = {
      async send() {
        sends++;
        throw new GeoWatchError("ENCODE", "field x cannot be written", { backend: "t" });
      },
    };
    const src = memoryChannel();
    await src.producer().send(["bad", "flaky", "good"].map((k) => ({ value: JSON.stringify({ metadata: { k }, data: 1 }) })));
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      storesOut: [{ name: "st", store, key: "{k}.json", mode: "snapshot", flushCount: 1, flushMs: 1 }],
      deadLetter: { name: "dlq", producer: dlq },
      maxTries: 3,
      retryBaseMs: 1,
      retryMaxMs: 2,
    });
    await b.run({ untilIdle: true });
    expect(writes.get("bad.json")).toBe(1); // VALIDATE: not retried
    expect(writes.get("flaky.json")).toBe(3); // a foreign error may be transient: maxTries attempts
    expect(writes.get("good.json")).toBe(1);
    const reasons = dlq.got.map((r) => JSON.parse(r.value as string).reason as string).sort();
    expect(reasons).toHaveLength(2);
    expect(reasons[0]).toMatch(/store write to "bad.json" failed \(not retried: VALIDATE\): .*no geometry/);
    expect(reasons[1]).toMatch(/store write to "flaky.json" failed after 3 attempts: socket hang up/);

    const src2 = memoryChannel();
    await src2.producer().send([{ value: '{"a":1}' }, { value: '{"a":2}' }]);
    const dlq2 = collecting();
    const b2 = new Broker({
      name: "t2",
      consumers: [{ name: "in", consumer: src2.consumer(), codec: json }],
      producers: [{ name: "out", producer: refusing, codec: json }],
      deadLetter: { name: "dlq", producer: dlq2 },
      maxTries: 3,
      retryBaseMs: 1,
    });
    const stats = await b2.run({ untilIdle: true });
    expect(sends).toBe(1);
    expect(dlq2.got).toHaveLength(2);
    expect(JSON.parse(dlq2.got[0]!.value as string).reason).toMatch(/rejected \(not retried: ENCODE\): .*field x/);
    expect(stats.acked).toBe(2);
  });

  it("push hands values straight to the output side", async () => {
    const out = collecting();
    const b = new Broker({ name: "t", producers: [{ name: "out", producer: out, codec: json }] });
    await b.push([{ metadata: { actiontype: "x" }, data: 1 }, "plain"]);
    expect(out.got.map((r) => r.value)).toEqual(['{"metadata":{"actiontype":"x"},"data":1}', '"plain"']);
    expect(out.got[0]!.metadata).toEqual({ actiontype: "x" });
  });

  it("dead-letters a batch whose stage throws", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: "1" }]);
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      stages: [{ name: "boom", process: () => { throw new Error("kaboom"); } }],
      deadLetter: { name: "dlq", producer: dlq },
    });
    await b.run({ untilIdle: true });
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/processing failed: kaboom/);
    expect(await drain(src.consumer())).toHaveLength(0);
  });
});

describe("Broker batching", () => {
  it("splits sends by the sink's count and byte limits", async () => {
    const src = memoryChannel();
    await src.producer().send(Array.from({ length: 10 }, (_, i) => ({ value: JSON.stringify({ i, pad: "x".repeat(90) }) })));
    const sizes: number[] = [];
    const sink: Producer = { capabilities: { maxBatch: 4, maxBatchBytes: 250 }, send: async (rs) => (sizes.push(rs.length), rs.map(() => ({ ok: true as const }))) };
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src.consumer(), codec: json }], producers: [{ name: "out", producer: sink, codec: json }] });
    await b.run({ untilIdle: true });
    expect(sizes.reduce((a, n) => a + n, 0)).toBe(10);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2); // each record is ~100 bytes: two fit in 250
  });

  it("lingers to send small batches together, and acknowledges each after its send", async () => {
    const src = memoryChannel();
    const sizes: number[] = [];
    const sink: Producer = { send: async (rs) => (sizes.push(rs.length), rs.map(() => ({ ok: true as const }))) };
    const b = new Broker({
      name: "t",
      count: 2,
      receiveWaitMs: 5,
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: sink, codec: json, lingerMs: 200, maxBatch: 6 }],
    });
    await src.producer().send(Array.from({ length: 6 }, (_, i) => ({ value: String(i) })));
    const stats = await b.run({ untilIdle: true });
    expect(sizes).toEqual([6]);
    expect(stats.acked).toBe(6);
  });

  it("dead-letters a bytes payload as text when it is UTF-8", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: new TextEncoder().encode("{nope ü") }, { value: new Uint8Array([0xff, 0xfe]) }]);
    const dlq = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src.consumer(), codec: json }], deadLetter: { name: "dlq", producer: dlq } });
    await b.run({ untilIdle: true });
    expect(dlq.got.map((r) => JSON.parse(r.value as string).payload)).toEqual(["{nope ü", { base64: "//4=" }]);
  });
});

describe("CommitCoalescer", () => {
  it("sends the latest position per stream while a commit is running, and resolves every caller", async () => {
    const { CommitCoalescer } = await import("../src/ack-tracker.js");
    const calls: Array<Array<string | number>> = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const c = new CommitCoalescer(async (ps) => {
      calls.push(ps.map((p) => `${p.stream}@${p.next}`));
      if (calls.length === 1) await slow;
    });
    const a = c.add([{ stream: "p0", offset: 1, next: 1 }]);
    const b = c.add([{ stream: "p0", offset: 2, next: 2 }]);
    const d = c.add([{ stream: "p0", offset: 3, next: 3 }, { stream: "p1", offset: 9, next: 9 }]);
    release();
    await Promise.all([a, b, d]);
    expect(calls).toEqual([["p0@1"], ["p0@3", "p1@9"]]);
  });
});

describe("Broker.pushMapped", () => {
  it("turns application objects into envelope messages with a Mapping; a failing mapping dead-letters", async () => {
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({ name: "t", producers: [{ name: "out", producer: out, codec: json }], deadLetter: { name: "dlq", producer: dlq } });
    type Layer = { id: number; title: string };
    const layerMapping = {
      name: "layer",
      toMessage: (l: Layer) => {
        if (!l.title) throw new Error("layer without a title");
        return { value: { metadata: { actiontype: "create", targettype: "layer" }, data: l }, metadata: { actiontype: "create", targettype: "layer" }, key: String(l.id) };
      },
    };
    await b.pushMapped([{ id: 1, title: "roads" }, { id: 2, title: "" }], layerMapping);
    expect(out.got).toHaveLength(1);
    expect(out.got[0]!.key).toBe("1");
    expect(out.got[0]!.metadata).toEqual({ actiontype: "create", targettype: "layer" });
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/\[layer\] mapping failed: layer without a title/);
  });
});

describe("Broker with a sink that is down", () => {
  it("keeps retrying through an outage longer than maxTries instead of dead-lettering or acknowledging", async () => {
    const src = memoryChannel();
    await src.producer().send([1, 2, 3].map((i) => ({ value: JSON.stringify({ i }) })));
    let down = true;
    let calls = 0;
    const got: number[] = [];
    const sink: Producer = {
      async send(rs) {
        calls++;
        if (down) throw new GeoWatchError("CONNECT", "broker unreachable", { retryable: true });
        for (const r of rs) got.push(JSON.parse(r.value as string).i);
        return rs.map(() => ({ ok: true as const }));
      },
    };
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: sink, codec: json }],
      maxTries: 2,
      retryBaseMs: 1,
      retryMaxMs: 5,
    });
    const running = b.run({ untilIdle: true });
    while (calls < 10) await new Promise((r) => setTimeout(r, 5));
    expect(b.stats.deadLettered).toBe(0);
    expect(b.stats.acked).toBe(0);
    down = false;
    const stats = await running;
    expect(got).toEqual([1, 2, 3]);
    expect(stats.acked).toBe(3);
    expect(stats.deadLettered).toBe(0);
  });

  it("leaves messages unacknowledged when the sink is still down at shutdown", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: "1" }, { value: "2" }]);
    const sink: Producer = {
      send: async (rs) => rs.map(() => ({ ok: false as const, error: new GeoWatchError("TIMEOUT", "no answer", { retryable: true }) })),
    };
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: sink, codec: json }],
      maxTries: 2,
      retryBaseMs: 1,
      retryMaxMs: 5,
    });
    const running = b.run();
    await new Promise((r) => setTimeout(r, 50));
    await b.stop();
    await running;
    expect(b.stats.acked).toBe(0);
    expect(b.stats.deadLettered).toBe(0);
    expect(src.size).toBe(2); // given back
  });
});

describe("Broker hooks", () => {
  it("a before/after hook that throws is logged and counted; the loop goes on", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: "1" }, { value: "2" }]);
    const out = collecting();
    let calls = 0;
    const b = new Broker({
      name: "t",
      count: 1,
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: out, codec: json }],
      hooks: { before: () => { calls++; throw new Error("hook bug"); }, after: () => { throw new Error("after bug"); } },
    });
    const stats = await b.run({ untilIdle: true });
    expect(out.got).toHaveLength(2);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(stats.errors).toBeGreaterThanOrEqual(4);
  });
});
