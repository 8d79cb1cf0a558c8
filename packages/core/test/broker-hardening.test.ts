import { describe, expect, it } from "vitest";
import { Broker } from "../src/broker.js";
import { memoryChannel } from "../src/backends/memory.js";
import { GeoWatchError } from "../src/errors.js";
import type { Codec, Consumer, Logger, Message, OutRecord, Producer, Stage } from "../src/types.js";
import { orderedSource } from "./sources.js";

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

function collecting(): Producer & { got: OutRecord[] } {
  const got: OutRecord[] = [];
  return { got, send: async (rs) => rs.map((r) => (got.push(r), { ok: true as const })) };
}

function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A Feature whose properties nest `depth` levels (built as text: JSON.stringify itself overflows). */
function deepFeature(depth: number): string {
  return `{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`;
}

describe("no message can stop a stream", () => {
  it("dead-letters a Feature nested 5,000 levels deep with a reason that says so, and the rest flows and is committed", async () => {
    const lines = ['{"i":1}', deepFeature(5000), '{"i":2}'];
    const src = orderedSource(lines);
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      consumers: [{ name: "in", consumer: src, codec: json }],
      producers: [{ name: "out", producer: out, codec: json }],
      deadLetter: { name: "dlq", producer: dlq },
    });
    const stats = await b.run({ untilIdle: true });
    expect(out.got.map((r) => r.value)).toEqual(['{"i":1}', '{"i":2}']);
    expect(dlq.got).toHaveLength(1);
    const letter = JSON.parse(dlq.got[0]!.value as string) as { reason: string; payload: string };
    expect(letter.reason).toMatch(/nests deeper than 1000 levels \(at properties\.a\.a/);
    // The dead letter carries the original bytes, not the decoded value it could not write.
    expect(letter.payload).toBe(lines[1]);
    expect(stats.acked).toBe(3);
    expect(src.committed).toBe(3);
  });

  it("dead-letters the one message a stage throws on, not its whole batch", async () => {
    const src = memoryChannel();
    await src.producer().send([1, 2, 3, 4].map((i) => ({ value: JSON.stringify({ i }) })));
    const picky: Stage = {
      name: "picky",
      process: (batch) => {
        if (batch.some((m) => (m.value as { i: number }).i === 3)) throw new Error("three is not allowed");
        return { pass: batch };
      },
    };
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src.consumer(), codec: json }], producers: [{ name: "out", producer: out, codec: json }], deadLetter: { name: "dlq", producer: dlq }, stages: [picky] });
    await b.run({ untilIdle: true });
    expect(out.got.map((r) => JSON.parse(r.value as string).i)).toEqual([1, 2, 4]);
    expect(dlq.got).toHaveLength(1);
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/\[picky\] processing failed: three is not allowed/);
    expect(src.size + src.inFlight).toBe(0);
  });

  it("deduplicates by content without throwing on a value too deep to stringify", async () => {
    const src = orderedSource(['{"i":1}', deepFeature(20_000), '{"i":1}', '{"i":2}']);
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src, codec: json }], producers: [{ name: "out", producer: out, codec: json }], deadLetter: { name: "dlq", producer: dlq }, deduplicate: "content" });
    await b.run({ untilIdle: true });
    expect(out.got.map((r) => r.value)).toEqual(['{"i":1}', '{"i":2}']);
    expect(dlq.got).toHaveLength(1);
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/deduplicate failed: value nests deeper/);
    expect(src.committed).toBe(4);
  });
});

describe("a user callback that throws", () => {
  it("cannot block a sink: every message is still delivered and acknowledged", async () => {
    const src = memoryChannel();
    await src.producer().send(Array.from({ length: 50 }, (_, i) => ({ value: JSON.stringify({ i }) })));
    const out = collecting();
    const log = recordingLogger();
    const b = new Broker({
      name: "t",
      count: 5,
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: out, codec: json }],
      logger: log,
      observer: {
        sent: () => {
          throw new Error("metrics are broken");
        },
        acked: () => {
          throw new Error("metrics are broken");
        },
      },
    });
    const stats = await Promise.race([b.run({ untilIdle: true }), new Promise<never>((_, rej) => setTimeout(() => rej(new Error("broker blocked")), 10_000))]);
    expect(out.got).toHaveLength(50);
    expect(stats.acked).toBe(50);
    expect(log.lines.some((l) => l.msg === "sent callback failed")).toBe(true);
  });
});

describe("a dead-letter sink that refuses", () => {
  it("is logged at error level with the refusal, counted, and reported until it accepts", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: "{nope" }]);
    let refuse = true;
    const accepted: OutRecord[] = [];
    const dlq: Producer = {
      send: async (rs) =>
        rs.map((r) => (refuse ? { ok: false as const, error: new Error('routing key "{metadata.x}": metadata.x is missing'), retryable: false } : (accepted.push(r), { ok: true as const }))),
    };
    const log = recordingLogger();
    const failures: string[] = [];
    const b = new Broker({
      name: "t",
      retryBaseMs: 5,
      retryMaxMs: 20,
      consumers: [{ name: "in", consumer: src.consumer(), codec: json }],
      producers: [{ name: "out", producer: collecting(), codec: json }],
      deadLetter: { name: "dlq", producer: dlq },
      logger: log,
      observer: { deadLetterFailed: (_n, reason) => failures.push(reason) },
    });
    const running = b.run({ untilIdle: true });
    const deadline = Date.now() + 5000;
    while (b.stats.deadLetterFailures < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(b.deadLetterProblem()).toMatch(/metadata\.x is missing/);
    expect(log.lines.filter((l) => l.level === "error" && l.msg.startsWith("dead-letter sink failed")).length).toBeGreaterThanOrEqual(3);
    expect(failures[0]).toMatch(/refused 1 dead letter/);
    expect(src.inFlight).toBe(1); // not acknowledged while refused
    refuse = false;
    const stats = await running;
    expect(accepted).toHaveLength(1);
    expect(stats.acked).toBe(1);
    expect(b.deadLetterProblem()).toBeUndefined();
  });
});

describe("untilIdle", () => {
  it("stops only when every consumer that can tell says it is caught up", async () => {
    // Receives come back empty twice (a slow fetch), though 3 records are still unread.
    let empties = 2;
    const left = ['{"i":1}', '{"i":2}', '{"i":3}'];
    let checks = 0;
    const slow: Consumer = {
      async receive() {
        if (empties > 0) {
          empties--;
          return [];
        }
        return left.splice(0).map((value) => ({ value }));
      },
      async ack() {},
      async caughtUp() {
        checks++;
        return left.length === 0;
      },
    };
    const out = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: slow, codec: json }], producers: [{ name: "out", producer: out, codec: json }] });
    await b.run({ untilIdle: true });
    expect(out.got).toHaveLength(3);
    expect(checks).toBeGreaterThanOrEqual(2);
  });
});

describe("stage commits", () => {
  /** A stage that records the order of events: process, then the commit the broker calls after delivery. */
  function statefulStage(events: string[]): Stage {
    let batch = 0;
    return {
      name: "counter",
      process(msgs: Message[]) {
        const n = ++batch;
        events.push(`process ${n}`);
        return { pass: msgs, commit: () => void events.push(`commit ${n}`) };
      },
    };
  }

  it("runs a batch's commit after its sinks accepted it and before the source is acknowledged, in order", async () => {
    const events: string[] = [];
    const src = orderedSource(['{"i":1}', '{"i":2}', '{"i":3}', '{"i":4}']);
    const origCommit = src.commit.bind(src);
    src.commit = async (ps) => {
      events.push(`source commit ${ps.map((p) => p.next).join(",")}`);
      await origCommit(ps);
    };
    const slowSink: Producer = {
      send: async (rs) => {
        await new Promise((r) => setTimeout(r, rs.length === 1 && (JSON.parse(rs[0]!.value as string) as { i: number }).i === 1 ? 50 : 0));
        events.push(`sent ${rs.map((r) => (JSON.parse(r.value as string) as { i: number }).i).join(",")}`);
        return rs.map(() => ({ ok: true as const }));
      },
    };
    const b = new Broker({ name: "t", count: 1, consumers: [{ name: "in", consumer: src, codec: json }], producers: [{ name: "out", producer: slowSink, codec: json }], stages: [statefulStage(events)] });
    await b.run({ untilIdle: true });
    const commitIdx = (n: number) => events.indexOf(`commit ${n}`);
    // In order, each after its own delivery.
    expect(commitIdx(1)).toBeGreaterThan(events.indexOf("sent 1"));
    for (let n = 2; n <= 4; n++) expect(commitIdx(n)).toBeGreaterThan(commitIdx(n - 1));
    // The source never commits past a batch whose state is not persisted.
    const firstSourceCommit = events.findIndex((e) => e.startsWith("source commit"));
    expect(firstSourceCommit).toBeGreaterThan(commitIdx(1));
    expect(src.committed).toBe(4);
  });

  it("never commits a batch that was not delivered, nor any batch after it, and leaves them unacknowledged", async () => {
    const events: string[] = [];
    const src = orderedSource(['{"i":1}', '{"i":2}', '{"i":3}']);
    const down: Producer = { send: async () => Promise.reject(new GeoWatchError("CONNECT", "down", { retryable: true })) };
    const b = new Broker({ name: "t", count: 1, retryBaseMs: 1, retryMaxMs: 5, maxTries: 2, consumers: [{ name: "in", consumer: src, codec: json }], producers: [{ name: "out", producer: down, codec: json }], stages: [statefulStage(events)] });
    const running = b.run();
    const deadline = Date.now() + 5000;
    while (events.filter((e) => e.startsWith("process")).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await b.stop();
    await running;
    expect(events.filter((e) => e.startsWith("process")).length).toBe(3);
    expect(events.filter((e) => e.startsWith("commit"))).toEqual([]);
    expect(src.committed).toBe(0);
  });
});

describe("a node without a codec", () => {
  it("dead-letters bytes that are not UTF-8 with a DECODE reason naming the byte, instead of writing U+FFFD", async () => {
    const bad = new Uint8Array([0x6f, 0x6b, 0xff, 0x21]);
    let handed = false;
    const src: Consumer = {
      async receive() {
        if (handed) return [];
        handed = true;
        return [{ value: "fine" }, { value: bad }];
      },
      async ack() {},
    };
    const out = collecting();
    const dlq = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src }], producers: [{ name: "out", producer: out }], deadLetter: { name: "dlq", producer: dlq } });
    await b.run({ untilIdle: true });
    expect(out.got.map((r) => r.value)).toEqual(["fine"]);
    const letter = JSON.parse(dlq.got[0]!.value as string) as { reason: string; payload: { base64: string } };
    expect(letter.reason).toMatch(/invalid UTF-8 at byte 2/);
    expect(letter.payload).toEqual({ base64: Buffer.from(bad).toString("base64") });
  });
});

describe("routes", () => {
  it("dead-letters a message routed only to sinks the broker does not have, instead of acknowledging it undelivered", async () => {
    const src = memoryChannel();
    await src.producer().send([{ value: '{"to":"alerts"}' }, { value: '{"to":"nowhere"}' }]);
    const router: Stage = { name: "router", process: (batch) => ({ pass: batch.map((m) => ({ ...m, routes: [(m.value as { to: string }).to] })) }) };
    const alerts = collecting();
    const dlq = collecting();
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src.consumer(), codec: json }], producers: [{ name: "alerts", producer: alerts, codec: json }], deadLetter: { name: "dlq", producer: dlq }, stages: [router] });
    await b.run({ untilIdle: true });
    expect(alerts.got.map((r) => r.value)).toEqual(['{"to":"alerts"}']);
    expect(JSON.parse(dlq.got[0]!.value as string).reason).toMatch(/routed to "nowhere", which this broker does not have \(its sinks: alerts\)/);
  });
});
