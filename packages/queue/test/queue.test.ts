import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import type { InRecord } from "@geowatch/core";
import {
  DEAD_REASON_HEADER,
  openQueueDatabase,
  queueBackend,
  queueConsumer,
  queueProducer,
  queueStats,
} from "../src/index.js";
import type { QueueConsumerOptions, QueueHandle } from "../src/index.js";

const run = promisify(execFile);
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const nodeArgs = (script: string, ...args: string[]) => ["--import", fixture("register.mjs"), fixture(script), ...args];

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-queue-"));
  path = join(dir, "queue.db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (r: InRecord) => (typeof r.value === "string" ? r.value : new TextDecoder().decode(r.value));

async function send(queue: string, values: string[], extra: { delayMs?: number } = {}) {
  const p = queueProducer({ path, queue, ...extra });
  try {
    return await p.send(values.map((value) => ({ value })));
  } finally {
    await p.close?.();
  }
}

async function withConsumer<T>(opts: Partial<QueueConsumerOptions> & { queue: string }, fn: (c: ReturnType<typeof queueConsumer>) => Promise<T>) {
  const c = queueConsumer({ path, pollIntervalMs: 10, ...opts });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

describe("queue producer and consumer", () => {
  it("round trip keeps value type, key, headers, ids and timestamps", async () => {
    const p = queueProducer({ path, queue: "jobs" });
    const bytes = new Uint8Array([0, 1, 254, 255]);
    const before = Date.now();
    const res = await p.send([
      { value: "hello ✓", key: "k1", headers: { "x-a": "1" } },
      { value: bytes },
    ]);
    await p.close?.();
    expect(res.map((r) => r.ok)).toEqual([true, true]);
    const ids = res.map((r) => (r.ok ? Number(r.id) : NaN));
    expect(ids[1]).toBe(ids[0]! + 1);

    await withConsumer({ queue: "jobs" }, async (c) => {
      expect(c.capabilities).toMatchObject({ acks: true, batching: true });
      const got = await c.receive(10, { waitMs: 1000 });
      expect(got).toHaveLength(2);
      expect(got[0]).toMatchObject({ value: "hello ✓", key: "k1", headers: { "x-a": "1" }, redeliveries: 0 });
      expect(got[0]!.timestamp).toBeGreaterThanOrEqual(before);
      expect(got[1]!.value).toBeInstanceOf(Uint8Array);
      expect([...(got[1]!.value as Uint8Array)]).toEqual([...bytes]);
      expect(got.map((r) => (r.handle as QueueHandle).id)).toEqual(ids);
      await c.ack(got);
    });
    expect(queueStats(path, "jobs")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 0 });
  });

  it("a record's topic picks the queue", async () => {
    const p = queueProducer({ path, queue: "a" });
    await p.send([{ value: "to-a" }, { value: "to-b", topic: "b" }]);
    await p.close?.();
    expect(queueStats(path, "a").ready).toBe(1);
    expect(queueStats(path, "b").ready).toBe(1);
  });

  it("delivers FIFO across batches and receive sizes", async () => {
    const values = Array.from({ length: 50 }, (_, i) => `m${i}`);
    for (let i = 0; i < values.length; i += 7) await send("fifo", values.slice(i, i + 7));
    await withConsumer({ queue: "fifo" }, async (c) => {
      const got: InRecord[] = [];
      for (let n = 1; got.length < values.length; n = (n % 9) + 1) {
        const batch = await c.receive(n, { waitMs: 500 });
        expect(batch.length).toBeLessThanOrEqual(n);
        got.push(...batch);
      }
      expect(got.map(text)).toEqual(values);
      await c.ack(got);
    });
  });

  it("ack deletes: a new consumer gets nothing", async () => {
    await send("acked", ["a", "b", "c"]);
    await withConsumer({ queue: "acked" }, async (c) => {
      const got = await c.receive(10, { waitMs: 500 });
      expect(queueStats(path, "acked")).toMatchObject({ ready: 0, inFlight: 3 });
      await c.ack(got);
    });
    expect(queueStats(path, "acked")).toMatchObject({ ready: 0, inFlight: 0 });
    const row = openQueueDatabase(path);
    expect(row.db.prepare("SELECT count(*) AS n FROM queue_messages").get()).toEqual({ n: 0 });
    row.release();
    await withConsumer({ queue: "acked" }, async (c) => expect(await c.receive(10, { waitMs: 200 })).toEqual([]));
  });

  it("an unacked message is redelivered after the visibility timeout, counting redeliveries", async () => {
    await send("vt", ["job"]);
    // extendLeases: false stands for a consumer that stopped extending (lease-keeping: test/lease.test.ts).
    await withConsumer({ queue: "vt", visibilityTimeoutMs: 200, extendLeases: false }, async (c) => {
      const first = await c.receive(1, { waitMs: 500 });
      expect(first[0]!.redeliveries).toBe(0);
      expect(await c.receive(1, { waitMs: 50 }), "not visible while the lease is live").toEqual([]);
      const t0 = Date.now();
      const again = await c.receive(1, { waitMs: 2000 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
      expect(again.map(text)).toEqual(["job"]);
      expect(again[0]!.redeliveries).toBe(1);
      expect((again[0]!.handle as QueueHandle).lease).not.toBe((first[0]!.handle as QueueHandle).lease);
      await c.ack(again);
    });
  });

  it("nack with requeue redelivers now, or after retryDelayMs", async () => {
    await send("nq", ["x"]);
    await withConsumer({ queue: "nq" }, async (c) => {
      const got = await c.receive(1, { waitMs: 500 });
      await c.nack(got, { requeue: true, reason: "try again" });
      const again = await c.receive(1, { waitMs: 0 });
      expect(again.map(text)).toEqual(["x"]);
      expect(again[0]!.redeliveries).toBe(1);
      await c.ack(again);
    });
    await send("nq-delay", ["y"]);
    await withConsumer({ queue: "nq-delay", retryDelayMs: 300 }, async (c) => {
      await c.nack(await c.receive(1, { waitMs: 500 }), { requeue: true });
      expect(queueStats(path, "nq-delay")).toMatchObject({ ready: 0, delayed: 1 });
      expect(await c.receive(1, { waitMs: 100 })).toEqual([]);
      const again = await c.receive(1, { waitMs: 2000 });
      expect(again.map(text)).toEqual(["y"]);
      await c.ack(again);
    });
  });

  it("nack without requeue moves to <queue>.dead with the reason", async () => {
    await send("nd", ["bad", "good"]);
    await withConsumer({ queue: "nd" }, async (c) => {
      const [bad, good] = await c.receive(2, { waitMs: 500 });
      await c.nack([bad!], { requeue: false, reason: "cannot parse" });
      await c.ack([good!]);
    });
    expect(queueStats(path, "nd")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 1 });
    await withConsumer({ queue: "nd.dead" }, async (c) => {
      const dead = await c.receive(10, { waitMs: 500 });
      expect(dead.map(text)).toEqual(["bad"]);
      expect(dead[0]!.headers?.[DEAD_REASON_HEADER]).toBe("cannot parse");
      expect(dead[0]!.redeliveries).toBe(0);
      await c.ack(dead);
    });
  });

  it("maxReceives dead-letters after that many deliveries, by expiry or by requeue", async () => {
    await send("mr", ["expires", "requeued", "fine"]);
    await withConsumer({ queue: "mr", visibilityTimeoutMs: 100, maxReceives: 2, extendLeases: false }, async (c) => {
      const first = await c.receive(3, { waitMs: 1000 });
      expect(first.map(text)).toEqual(["expires", "requeued", "fine"]);
      await c.ack([first[2]!]);
      await c.nack([first[1]!], { requeue: true, reason: "flaky" });
      await sleep(150);
      const second = await c.receive(3, { waitMs: 1000 });
      expect(second.map(text).sort()).toEqual(["expires", "requeued"]);
      expect(second.map((r) => r.redeliveries)).toEqual([1, 1]);
      await c.nack(second.filter((r) => text(r) === "requeued"), { requeue: true, reason: "flaky" });
      await sleep(150);
      // Both are past maxReceives now: neither comes back.
      expect(await c.receive(3, { waitMs: 300 })).toEqual([]);
    });
    expect(queueStats(path, "mr")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 2 });
    await withConsumer({ queue: "mr.dead" }, async (c) => {
      const dead = await c.receive(10, { waitMs: 500 });
      const reasons = Object.fromEntries(dead.map((r) => [text(r), r.headers?.[DEAD_REASON_HEADER]]));
      expect(reasons).toEqual({
        requeued: "flaky (maxReceives 2 reached)",
        expires: "visibility timeout expired after 2 deliveries",
      });
      await c.ack(dead);
    });
  });

  it("a stale ack (or nack) after the lease moved on does not touch the new claim", async () => {
    await send("stale", ["job"]);
    const a = queueConsumer({ path, queue: "stale", visibilityTimeoutMs: 100, pollIntervalMs: 10, extendLeases: false });
    const b = queueConsumer({ path, queue: "stale", visibilityTimeoutMs: 60_000, pollIntervalMs: 10 });
    try {
      const fromA = await a.receive(1, { waitMs: 500 });
      await sleep(150);
      const fromB = await b.receive(1, { waitMs: 500 });
      expect(fromB.map(text)).toEqual(["job"]);
      await a.ack(fromA);
      await a.nack(fromA, { requeue: false, reason: "stale" });
      expect(await a.extend(fromA, 10)).toBe(0);
      expect(queueStats(path, "stale")).toEqual({ ready: 0, inFlight: 1, delayed: 0, dead: 0 });
      await b.ack(fromB);
      expect(queueStats(path, "stale").inFlight).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("extend keeps a lease alive past the visibility timeout", async () => {
    await send("ext", ["long job"]);
    await withConsumer({ queue: "ext", visibilityTimeoutMs: 150, extendLeases: false }, async (c) => {
      const got = await c.receive(1, { waitMs: 500 });
      for (let i = 0; i < 3; i++) {
        await sleep(100);
        expect(await c.extend(got)).toBe(1);
      }
      expect(await c.receive(1, { waitMs: 50 })).toEqual([]);
      await c.ack(got);
    });
  });

  it("close hands back unsettled leases at once", async () => {
    await send("close", ["a", "b"]);
    await withConsumer({ queue: "close" }, async (c) => {
      const got = await c.receive(2, { waitMs: 500 });
      await c.ack([got[0]!]);
    });
    expect(queueStats(path, "close")).toMatchObject({ ready: 1, inFlight: 0 });
    await withConsumer({ queue: "close" }, async (c) => {
      const again = await c.receive(5, { waitMs: 0 });
      expect(again.map(text)).toEqual(["b"]);
      expect(again[0]!.redeliveries).toBe(1);
      await c.ack(again);
    });
  });

  it("delayMs hides a message until it is due", async () => {
    await send("later", ["soon"], { delayMs: 300 });
    expect(queueStats(path, "later")).toMatchObject({ ready: 0, delayed: 1 });
    await withConsumer({ queue: "later" }, async (c) => {
      expect(await c.receive(1, { waitMs: 100 })).toEqual([]);
      expect((await c.receive(1, { waitMs: 2000 })).map(text)).toEqual(["soon"]);
    });
  });

  it("a waiting receive wakes on a send in the same process, before its poll interval", async () => {
    await withConsumer({ queue: "wake", pollIntervalMs: 60_000 }, async (c) => {
      const t0 = Date.now();
      const pending = c.receive(5, { waitMs: 60_000 });
      await sleep(50);
      await send("wake", ["ping"]);
      expect((await pending).map(text)).toEqual(["ping"]);
      // Far below the 60 s poll and wait, with room for a loaded machine.
      expect(Date.now() - t0).toBeLessThan(10_000);
    });
  });

  it("receive returns [] when aborted or closed while waiting", async () => {
    await withConsumer({ queue: "empty", pollIntervalMs: 60_000 }, async (c) => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const t0 = Date.now();
      expect(await c.receive(5, { waitMs: 60_000, signal: ac.signal })).toEqual([]);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const pending = c.receive(5, { waitMs: 5000 });
      await sleep(20);
      await c.close();
      expect(await pending).toEqual([]);
      await expect(c.receive(1, { waitMs: 0 })).rejects.toSatisfy((e) => isGeoWatchError(e, "CLOSED"));
    });
  });

  it("records without a queue handle are refused", async () => {
    await withConsumer({ queue: "h" }, async (c) => {
      await expect(c.ack([{ value: "x" }])).rejects.toSatisfy((e) => isGeoWatchError(e, "VALIDATE"));
    });
  });
});

describe("queue database and options", () => {
  it("openQueueDatabase shares one WAL connection per path and closes with the last reference", async () => {
    const a = openQueueDatabase(path);
    const b = openQueueDatabase(join(dir, ".", "queue.db"));
    expect(b.db).toBe(a.db);
    expect(a.db.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(Number((a.db.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout)).toBeGreaterThan(0);
    const idx = a.db.prepare("SELECT sql FROM sqlite_master WHERE name = 'queue_messages_ready'").get() as { sql: string };
    expect(idx.sql).toContain("(queue, visible_at, id)");
    a.release();
    a.release();
    expect(a.db.isOpen).toBe(true);
    b.release();
    expect(a.db.isOpen).toBe(false);
  });

  it("the path defaults to GEOWATCH_QUEUE_PATH", async () => {
    const prev = process.env.GEOWATCH_QUEUE_PATH;
    process.env.GEOWATCH_QUEUE_PATH = path;
    try {
      await send("env", ["e"]);
      const p = queueProducer({ queue: "env" });
      await p.send([{ value: "f" }]);
      await p.close?.();
      expect(queueStats(undefined, "env").ready).toBe(2);
    } finally {
      if (prev === undefined) delete process.env.GEOWATCH_QUEUE_PATH;
      else process.env.GEOWATCH_QUEUE_PATH = prev;
    }
  });

  it("validation reports every problem with its path", () => {
    expect(queueBackend.name).toBe("queue");
    const bad = queueBackend.consumer!.parse({ queue: "", visibility_timeout_ms: -1, poll_interval_ms: 1.5, nope: 1, also: 2 }, { role: "consumer" });
    const problems = bad.ok ? [] : bad.problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: "queue", message: expect.any(String) },
        { path: "visibility_timeout_ms", message: expect.any(String) },
        { path: "poll_interval_ms", message: expect.any(String) },
        { path: "nope", message: expect.stringMatching(/^unknown option \(known: path, queue, visibility_timeout_ms, /) },
        { path: "also", message: expect.stringMatching(/^unknown option/) },
      ]),
    );
    expect(problems).toHaveLength(5);
    expect(queueBackend.consumer!.parse({ queue: "jobs", path: "/tmp/x.db", max_receives: 3 }, { role: "consumer" }).ok).toBe(true);
    // A producer has no consumer options.
    const producer = queueBackend.producer!.parse({ queue: "jobs", max_receives: 3 }, { role: "producer" });
    expect(producer.ok ? [] : producer.problems.map((p) => p.path)).toEqual(["max_receives"]);
    let err: unknown;
    try {
      queueConsumer({ queue: "jobs", maxReceives: 0, retryDelayMs: -5 });
    } catch (e) {
      err = e;
    }
    expect(isGeoWatchError(err, "CONFIG")).toBe(true);
    expect(String(err)).toMatch(/\[geowatch\] \[queue\] invalid queue consumer options: maxReceives: .*; retryDelayMs: /);
  });
});

describe("queue across processes", () => {
  it("two consumers in two processes never claim the same message while its lease is live", async () => {
    const total = 5000;
    const values = Array.from({ length: total }, (_, i) => `c${i}`);
    for (let i = 0; i < total; i += 1000) await send("shared", values.slice(i, i + 1000));
    const startAt = String(Date.now() + 1500);
    const seed = process.env.GEOWATCH_SEED !== undefined ? Number(process.env.GEOWATCH_SEED) : Date.now() % 2 ** 31;
    console.log(`[queue] two-process claim seed ${seed} (set GEOWATCH_SEED=${seed} to repeat)`);
    const outs = await Promise.all(
      [0, 1].map((k) => run(process.execPath, nodeArgs("claimer.ts", path, "shared", startAt, String(seed + k)), { maxBuffer: 64 << 20 })),
    );
    const claims = outs.map((o) => JSON.parse(o.stdout) as Array<[number, string]>);
    const ids = claims.flat().map(([id]) => id);
    console.log(`[queue] two-process claim: ${claims[0]!.length} + ${claims[1]!.length} claims of ${total} messages`);
    // Both really contended (a process that started late would make this check weak).
    expect(claims[0]!.length, "both processes got a share").toBeGreaterThan(total / 20);
    expect(claims[1]!.length, "both processes got a share").toBeGreaterThan(total / 20);
    expect(new Set(ids).size, "no message claimed twice").toBe(ids.length);
    expect(ids.length).toBe(total);
    expect(queueStats(path, "shared")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 0 });
  }, 120_000);

  it("a relay SIGKILLed mid-stream and restarted delivers every message to B (duplicates allowed)", async () => {
    const total = 20_000;
    const kills = 3;
    const values = Array.from({ length: total }, (_, i) => `r${i}`);
    for (let i = 0; i < total; i += 2000) await send("A", values.slice(i, i + 2000));
    const db = openQueueDatabase(path);
    const countB = db.db.prepare("SELECT count(*) AS n FROM queue_messages WHERE queue = 'B'");
    const inB = () => Number((countB.get() as { n: number }).n);
    const start = () => spawn(process.execPath, nodeArgs("relay.ts", path, "A", "B", "1000"), { stdio: ["ignore", "ignore", "pipe"] });
    const exited = (child: ChildProcess) =>
      new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
        let stderr = "";
        child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("exit", (code, signal) => resolve({ code, signal, stderr }));
      });
    try {
      const killedAt: number[] = [];
      const leasesLeft: number[] = [];
      for (let k = 1; k <= kills; k++) {
        const child = start();
        const done = exited(child);
        // Kill once B has grown by a fresh slice, so every kill lands while the relay is busy.
        const target = Math.min(total - 1, inB() + Math.floor(total / (kills + 2)));
        while (inB() < target && child.exitCode === null) await sleep(5);
        child.kill("SIGKILL");
        const res = await done;
        expect(res.signal, `relay run ${k} was killed mid-stream (stderr: ${res.stderr})`).toBe("SIGKILL");
        killedAt.push(inB());
        leasesLeft.push(queueStats(path, "A").inFlight);
      }
      const last = await exited(start());
      expect(last.code, `the final relay run exits cleanly (stderr: ${last.stderr})`).toBe(0);

      const rows = db.db.prepare("SELECT body FROM queue_messages WHERE queue = 'B'").all() as Array<{ body: string }>;
      const seen = new Map<string, number>();
      for (const r of rows) seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
      const missing = values.filter((v) => !seen.has(v));
      const duplicates = rows.length - seen.size;
      console.log(`[queue] crash relay: ${total} messages, ${kills} SIGKILLs at B=${killedAt.join(",")} leaving ${leasesLeft.join(",")} leases on A; B holds ${rows.length} (${duplicates} duplicates)`);
      expect(missing.slice(0, 10), `${missing.length} messages never reached B`).toEqual([]);
      expect(seen.size).toBe(total);
      expect(queueStats(path, "A")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 0 });
    } finally {
      db.release();
    }
  }, 180_000);
});
