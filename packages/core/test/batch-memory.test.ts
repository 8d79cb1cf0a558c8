import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { Broker } from "../src/broker.js";
import { geojsonCodec, jsonCodec, ndjsonCodec, plainCodec } from "../src/codecs/index.js";
import { GeoWatchError } from "../src/errors.js";
import type { Codec, Message, OutRecord, Position, Producer, Stage } from "../src/types.js";
import { orderedSource } from "./sources.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function collecting(): Producer & { got: OutRecord[] } {
  const got: OutRecord[] = [];
  return { got, send: async (rs) => rs.map((r) => (got.push(r), { ok: true as const })) };
}

describe("a batch waiting for its sinks", () => {
  it("lets go of the decoded input its stages did not pass on", async () => {
    const decoded: Array<WeakRef<object>> = [];
    // A JSON codec that keeps a weak reference to every value it decodes.
    const watching: Codec = {
      ...jsonCodec,
      decode: (p) => {
        const v = jsonCodec.decode(p) as object;
        decoded.push(new WeakRef(v));
        return v;
      },
    };
    // Turns a batch of points into one summary message (as the geofence stage turns points into a few events).
    const summary: Stage = { name: "summary", process: (batch) => ({ pass: [{ value: { points: batch.length } }] }) };
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const waiting = new Promise<void>((r) => (arrived = r));
    const got: OutRecord[] = [];
    const slow: Producer = {
      send: async (rs) => {
        arrived();
        await held;
        return rs.map((r) => (got.push(r), { ok: true as const }));
      },
    };
    const src = orderedSource(Array.from({ length: 50 }, (_, i) => JSON.stringify({ i, pad: "x".repeat(100) })));
    const b = new Broker({ name: "t", count: 50, consumers: [{ name: "in", consumer: src, codec: watching }], producers: [{ name: "out", producer: slow, codec: jsonCodec }], stages: [summary] });
    const run = b.run({ untilIdle: true });
    await waiting;
    // The batch is in flight (its summary is being sent); its 50 decoded points are no longer needed.
    expect(decoded).toHaveLength(50);
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    const alive = decoded.filter((w) => w.deref() !== undefined).length;
    release();
    await run;
    expect(alive).toBe(0);
    expect(got.map((r) => r.value)).toEqual(['{"points":50}']);
    expect(src.committed).toBe(50);
  });

  it("still dead-letters an input message a stage passed on with its original bytes when a sink refuses it", async () => {
    const lines = ['{"i":1}', '{"i":2,"bad":true}', '{"i":3}'];
    const src = orderedSource(lines);
    // Passes the input on, plus one new message per batch.
    const tagging: Stage = { name: "tagging", process: (batch) => ({ pass: [...batch, { value: { batch: batch.length } }] }) };
    const out: OutRecord[] = [];
    const picky: Producer = {
      send: async (rs) =>
        rs.map((r) => {
          if (String(r.value).includes("bad")) return { ok: false as const, error: new GeoWatchError("VALIDATE", "bad record", { backend: "test" }), retryable: false };
          out.push(r);
          return { ok: true as const };
        }),
    };
    const dlq = collecting();
    const b = new Broker({
      name: "t",
      count: 10,
      maxTries: 1,
      consumers: [{ name: "in", consumer: src, codec: jsonCodec }],
      producers: [{ name: "out", producer: picky, codec: jsonCodec }],
      deadLetter: { name: "dlq", producer: dlq },
      stages: [tagging],
    });
    await b.run({ untilIdle: true });
    expect(out.map((r) => r.value)).toEqual(['{"i":1}', '{"i":3}', '{"batch":3}']);
    expect(dlq.got).toHaveLength(1);
    const letter = JSON.parse(dlq.got[0]!.value as string) as { reason: string; payload: string; position?: Position };
    expect(letter.reason).toMatch(/bad record/);
    // The original bytes of the record, and where it sits.
    expect(letter.payload).toBe(lines[1]);
    expect(src.committed).toBe(3);
  });

  it("hands stages messages with own properties only, as object literals would be", async () => {
    const src = orderedSource(['{"i":1}']);
    let seen: Message | undefined;
    const look: Stage = { name: "look", process: (batch) => ((seen = batch[0]), { pass: batch }) };
    const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: src, codec: jsonCodec }], producers: [{ name: "out", producer: collecting(), codec: jsonCodec }], stages: [look] });
    await b.run({ untilIdle: true });
    expect(Object.keys(seen!)).toEqual(["value", "source", "position"]);
    expect({ ...seen! }).toEqual({ value: { i: 1 }, source: "in", position: { stream: "s", offset: 0, next: 1 } });
    expect("key" in seen!).toBe(false);
  });
});

describe("Codec.jsonText", () => {
  it("marks the records of the json, geojson and ndjson codecs, and no others", async () => {
    const run = async (codec: Codec, value: string) => {
      const out = collecting();
      const b = new Broker({ name: "t", consumers: [{ name: "in", consumer: orderedSource([value]), codec: plainCodec }], producers: [{ name: "out", producer: out, codec }], stages: [{ name: "parse", process: (batch) => ({ pass: batch.map((m) => ({ ...m, value: codec === plainCodec ? m.value : JSON.parse(m.value as string) })) }) }] });
      await b.run({ untilIdle: true });
      return out.got[0]!;
    };
    const point = '{"type":"Point","coordinates":[1,2]}';
    for (const codec of [jsonCodec, geojsonCodec, ndjsonCodec]) {
      const r = await run(codec, point);
      expect(r.value).toBe(point);
      expect(r.jsonText).toBe(true);
    }
    const plain = await run(plainCodec, point);
    expect(plain.jsonText).toBeUndefined();
  });
});

describe("Stage.prepare", () => {
  it("sees each batch as soon as it is decoded, before earlier batches left process(), with the array process gets later", async () => {
    const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ i }));
    const log: string[] = [];
    const prepared = new Set<Message[]>();
    let sameArrays = true;
    const slow: Stage = {
      name: "slow",
      prepare: (batch) => {
        prepared.add(batch);
        log.push(`prepare ${(batch[0]!.value as { i: number }).i}`);
      },
      process: async (batch) => {
        sameArrays &&= prepared.has(batch);
        const first = (batch[0]!.value as { i: number }).i;
        log.push(`process ${first}`);
        await new Promise((r) => setTimeout(r, 30));
        log.push(`done ${first}`);
        return { pass: batch };
      },
    };
    const out = collecting();
    const b = new Broker({ name: "t", count: 2, consumers: [{ name: "in", consumer: orderedSource(lines), codec: jsonCodec }], producers: [{ name: "out", producer: out, codec: jsonCodec }], stages: [slow] });
    await b.run({ untilIdle: true });
    expect(sameArrays).toBe(true);
    // Batches still leave process() in order; prepare() of batch 2 (and 4) came while batch 0 was in process().
    expect(log.filter((l) => l.startsWith("process"))).toEqual(["process 0", "process 2", "process 4"]);
    expect(log.indexOf("prepare 2")).toBeLessThan(log.indexOf("done 0"));
    expect(log.indexOf("prepare 4")).toBeLessThan(log.indexOf("done 0"));
    expect(out.got.map((r) => JSON.parse(r.value as string).i)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("processes a batch whose prepare() threw, and says so", async () => {
    const warned: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => void warned.push(m), error() {} };
    const stage: Stage = { name: "s", prepare: () => { throw new Error("nope"); }, process: (batch) => ({ pass: batch }) };
    const out = collecting();
    const b = new Broker({ name: "t", logger, consumers: [{ name: "in", consumer: orderedSource(['{"i":1}']), codec: jsonCodec }], producers: [{ name: "out", producer: out, codec: jsonCodec }], stages: [stage] });
    await b.run({ untilIdle: true });
    expect(out.got.map((r) => r.value)).toEqual(['{"i":1}']);
    expect(warned).toContain("stage prepare failed; the batch is processed without it");
  });
});
