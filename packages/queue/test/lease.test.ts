import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Broker, jsonCodec, silentLogger } from "@geowatch/core";
import type { Consumer, InRecord, OutRecord, Producer } from "@geowatch/core";
import { queueConsumer, queueProducer, queueStats } from "../src/index.js";
import type { QueueHandle } from "../src/index.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-queue-lease-"));
  path = join(dir, "queue.db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (r: InRecord) => (typeof r.value === "string" ? r.value : new TextDecoder().decode(r.value));

async function send(queue: string, values: string[]) {
  const p = queueProducer({ path, queue });
  try {
    await p.send(values.map((value) => ({ value })));
  } finally {
    await p.close?.();
  }
}

describe("queue leases while messages are in flight", () => {
  it("a broker whose sink takes 3 s per batch gets every message exactly once with a 1 s visibility timeout", async () => {
    const total = 60;
    await send("slow", Array.from({ length: total }, (_, i) => JSON.stringify({ i })));
    const consumer = queueConsumer({ path, queue: "slow", visibilityTimeoutMs: 1000, pollIntervalMs: 10 });
    // See every delivery, with the count of earlier deliveries the queue reports for it.
    const deliveries: Array<{ i: number; redeliveries: number | undefined }> = [];
    const watched: Consumer = {
      ...consumer,
      async receive(max, opts) {
        const got = await consumer.receive(max, opts);
        for (const r of got) deliveries.push({ i: (JSON.parse(text(r)) as { i: number }).i, redeliveries: r.redeliveries });
        return got;
      },
    };
    const sent: OutRecord[] = [];
    const slow: Producer = {
      async send(records) {
        await sleep(3000);
        sent.push(...records);
        return records.map(() => ({ ok: true as const }));
      },
    };
    const broker = new Broker({
      name: "slow-sink",
      consumers: [{ name: "jobs", consumer: watched, codec: jsonCodec }],
      producers: [{ name: "slow", producer: slow, codec: jsonCodec }],
      count: 20,
      sleepPeriodMs: 50,
      receiveWaitMs: 50,
      logger: silentLogger,
    });
    // Before the fix this never went idle (every batch's leases ran out mid-send): stop it and show why.
    const cap = setTimeout(() => void broker.stop(), 30_000);
    try {
      const stats = await broker.run({ untilIdle: true });
      expect(deliveries.length, "messages were received").toBeGreaterThan(0);
      expect(deliveries.filter((d) => d.redeliveries !== 0), "no message was redelivered").toEqual([]);
      expect(deliveries.map((d) => d.i).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
      const delivered = sent.map((r) => (JSON.parse(r.value as string) as { i: number }).i).sort((a, b) => a - b);
      expect(delivered, "every message reached the sink exactly once").toEqual(Array.from({ length: total }, (_, i) => i));
      expect(stats.acked).toBe(total);
      expect(queueStats(path, "slow")).toEqual({ ready: 0, inFlight: 0, delayed: 0, dead: 0 });
    } finally {
      clearTimeout(cap);
      await consumer.close();
    }
  }, 60_000);

  it("maxLeased bounds what receive leases; settling one lets a waiting receive lease again at once", async () => {
    await send("bounded", Array.from({ length: 10 }, (_, i) => `m${i}`));
    const c = queueConsumer({ path, queue: "bounded", maxLeased: 3, pollIntervalMs: 10_000 });
    try {
      const first = await c.receive(10, { waitMs: 500 });
      expect(first.map(text)).toEqual(["m0", "m1", "m2"]);
      expect(await c.receive(10, { waitMs: 50 }), "nothing more while 3 are held").toEqual([]);
      expect(queueStats(path, "bounded")).toMatchObject({ ready: 7, inFlight: 3 });
      const t0 = Date.now();
      const waiting = c.receive(10, { waitMs: 30_000 });
      await sleep(50);
      await c.ack([first[0]!]);
      const next = await waiting;
      expect(next.map(text)).toEqual(["m3"]);
      // Generous for a loaded machine, still far below the 10 s poll and the 30 s wait it must not need.
      expect(Date.now() - t0, "woken by the ack, not by the 10 s poll or the 30 s wait").toBeLessThan(8000);
      await c.nack([first[1]!], { requeue: false, reason: "no" });
      expect((await c.receive(10, { waitMs: 500 })).map(text)).toEqual(["m4"]);
    } finally {
      await c.close();
    }
    expect(() => queueConsumer({ path, queue: "q", maxLeased: 0, maxLeaseMs: -1, extendLeases: "yes" } as never)).toThrow(
      /extendLeases: .*maxLeaseMs: .*maxLeased: /,
    );
  });

  it("a live consumer keeps an unsettled lease, and stops extending it after maxLeaseMs so it comes back", async () => {
    await send("held", ["job"]);
    const a = queueConsumer({ path, queue: "held", visibilityTimeoutMs: 600, maxLeaseMs: 2000, pollIntervalMs: 10 });
    const b = queueConsumer({ path, queue: "held", visibilityTimeoutMs: 60_000, pollIntervalMs: 10 });
    try {
      const got = await a.receive(1, { waitMs: 500 });
      expect(got.map(text)).toEqual(["job"]);
      const t0 = Date.now();
      // Two and a half visibility timeouts later the lease is still live: b gets nothing.
      expect(await b.receive(1, { waitMs: 1500 })).toEqual([]);
      expect(queueStats(path, "held")).toMatchObject({ ready: 0, inFlight: 1 });
      // Past maxLeaseMs the lease runs out and b gets the message, as a redelivery.
      const again = await b.receive(1, { waitMs: 5000 });
      expect(again.map(text)).toEqual(["job"]);
      expect(again[0]!.redeliveries).toBe(1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2000 - 500);
      // a's late ack does not touch b's claim.
      await a.ack(got);
      expect(queueStats(path, "held")).toMatchObject({ inFlight: 1 });
      await b.ack(again);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a SIGKILLed holder stops extending: its leases expire and the messages are redelivered", async () => {
    await send("crash", ["x", "y", "z"]);
    const child = spawn(process.execPath, ["--import", fixture("register.mjs"), fixture("holder.ts"), path, "crash", "600", "3"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    try {
      const held = await new Promise<number[]>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) resolve(JSON.parse(out) as number[]);
        });
        child.on("exit", () => reject(new Error(`holder exited early: ${stderr}`)));
      });
      expect(held).toHaveLength(3);
      // Alive, the holder keeps its leases well past the 600 ms timeout.
      await sleep(1500);
      expect(queueStats(path, "crash"), `holder stderr: ${stderr}`).toMatchObject({ ready: 0, inFlight: 3 });
      child.kill("SIGKILL");
      expect(await exited).toBe("SIGKILL");
      const c = queueConsumer({ path, queue: "crash", pollIntervalMs: 10 });
      try {
        const t0 = Date.now();
        const again = await c.receive(10, { waitMs: 5000 });
        expect(again.map(text).sort()).toEqual(["x", "y", "z"]);
        expect(again.map((r) => (r.handle as QueueHandle).id).sort()).toEqual([...held].sort());
        expect(again.every((r) => r.redeliveries === 1)).toBe(true);
        expect(Date.now() - t0, "back within about one visibility timeout").toBeLessThan(3000);
        await c.ack(again);
      } finally {
        await c.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }, 30_000);
});

describe("lifecycle (core's runtime layer around the raw I/O)", () => {
  it("opens the database once under concurrent first calls; extend goes through the layer and is refused after close", async () => {
    const p = queueProducer({ path, queue: "life" });
    const c = queueConsumer({ path, queue: "life", pollIntervalMs: 10 });
    expect([p.state, c.state]).toEqual(["idle", "idle"]);
    await Promise.all([p.send([{ value: "a" }]), p.send([{ value: "b" }]), c.receive(0, { waitMs: 0 })]);
    expect([p.state, c.state]).toEqual(["ready", "ready"]);
    const got = await c.receive(10, { waitMs: 1000 });
    expect(got.map(text).sort()).toEqual(["a", "b"]);
    expect(await c.extend(got, 5000)).toBe(2);
    await c.ack(got);
    await c.close();
    await p.close();
    await expect(c.extend(got)).rejects.toThrow(/is closed/);
    await expect(p.send([{ value: "c" }])).rejects.toThrow(/is closed/);
  });
});
