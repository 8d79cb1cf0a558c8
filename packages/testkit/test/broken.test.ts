// A suite that cannot fail is worthless: each check must reject an implementation broken its way.
import { describe, expect, it } from "vitest";
import type { ChannelCapabilities, ChannelCheck, ChannelHarness } from "../src/index.js";
import { codecChecks, consumerChecks, onChannel, producerChecks, storeChecks } from "../src/index.js";
import { type Faults, queueHarness, refJsonCodec, refStore, streamHarness } from "./reference.js";

const queueCaps: ChannelCapabilities = { acks: true, ordering: "total", redelivery: true, nackRequeue: true, maxRecordBytes: 300 * 1024, keys: true, headers: true };
const streamCaps: ChannelCapabilities = { ordering: "stream", redelivery: true };
const opts = { timeoutMs: 1500 };

function run(make: (f: Faults) => ChannelHarness, f: Faults, check: ChannelCheck, caps: ChannelCapabilities): Promise<void> {
  return onChannel(async () => make(f), (h) => check(h, caps, opts));
}

describe("consumer checks fail on broken channels", () => {
  const cases: Array<[string, (f: Faults) => ChannelHarness, Faults, ChannelCheck, ChannelCapabilities, RegExp]> = [
    ["declared: a stream consumer that does not declare ordering \"stream\"", streamHarness, { undeclared: true }, consumerChecks.declared, streamCaps, /ordering "stream" is claimed/],
    ["roundTrip: a queue that drops every 3rd record", queueHarness, { dropEvery3rd: true }, consumerChecks.roundTrip, queueCaps, /exactly once/],
    ["roundTrip: a stream that drops every 3rd record", streamHarness, { dropEvery3rd: true }, consumerChecks.roundTrip, streamCaps, /exactly once/],
    ["ordering: a queue that delivers in reverse", queueHarness, { reverse: true }, consumerChecks.ordering, queueCaps, /order/],
    ["ordering: a stream that reverses within a stream", streamHarness, { reverse: true }, consumerChecks.ordering, streamCaps, /order within stream/],
    ["ackRemoves: a queue whose ack does nothing", queueHarness, { ackIgnored: true }, consumerChecks.ackRemoves, queueCaps, /receives nothing more/],
    ["ackRemoves: a stream whose commit does nothing", streamHarness, { ackIgnored: true }, consumerChecks.ackRemoves, streamCaps, /receives nothing more/],
    ["redelivery: a queue that loses unacknowledged records on close", queueHarness, { loseUnacked: true }, consumerChecks.redelivery, queueCaps, /again/],
    ["nackRequeue: a queue whose nack drops records", queueHarness, { nackDrops: true }, consumerChecks.nackRequeue, queueCaps, /nack with requeue/],
    ["large: a channel that silently cuts records at 64 KiB", queueHarness, { truncateAt: 64 * 1024 }, consumerChecks.large, queueCaps, /byte-exact/],
    ["unicode: a channel that mangles text through Latin-1", queueHarness, { latin1: true }, consumerChecks.unicode, queueCaps, /byte-exact/],
    ["emptyWait: a receive that does not wait", queueHarness, { noWait: true }, consumerChecks.emptyWait, queueCaps, /waits about waitMs/],
    ["abortSignal: a receive that ignores the signal", queueHarness, { ignoreAbort: true }, consumerChecks.abortSignal, queueCaps, /settles within/],
    ["closeIdempotent: a consumer whose second close throws", queueHarness, { closeTwiceThrows: true }, consumerChecks.closeIdempotent, queueCaps, /already closed/],
    ["deadLetter: a queue whose ack does nothing", queueHarness, { ackIgnored: true }, consumerChecks.deadLetter, queueCaps, /acknowledged every source record/],
    ["deadLetter: a queue that drops records", queueHarness, { dropEvery3rd: true }, consumerChecks.deadLetter, queueCaps, /reach the/],
  ];
  for (const [title, make, f, check, caps, message] of cases) {
    it(title, async () => {
      await expect(run(make, f, check, caps)).rejects.toThrow(message);
    });
  }
});

describe("producer checks fail on broken channels", () => {
  const cases: Array<[string, Faults, ChannelCheck, RegExp]> = [
    ["roundTrip: a producer that reports ok but drops every 3rd record", { dropEvery3rd: true }, producerChecks.roundTrip, /exactly once/],
    ["keysAndHeaders: a channel that loses keys and headers", { dropMeta: true }, producerChecks.keysAndHeaders, /key arrives as sent/],
    ["partialBatch: a producer that accepts records over its limit", { noSizeLimit: true }, producerChecks.partialBatch, /only the record over/],
    ["closeIdempotent: a producer whose second close throws", { closeTwiceThrows: true }, producerChecks.closeIdempotent, /already closed/],
  ];
  for (const [title, f, check, message] of cases) {
    it(title, async () => {
      await expect(run(queueHarness, f, check, queueCaps)).rejects.toThrow(message);
    });
  }
  it("results: a producer that returns fewer results than records", async () => {
    const h = queueHarness();
    const short: ChannelHarness = { producer: () => ({ send: async (rs) => (await h.producer().send(rs)).slice(1) }) };
    await expect(producerChecks.results(short, {}, opts)).rejects.toThrow(/one result per record/);
  });
});

describe("store checks fail on broken stores", () => {
  const on = (store: ReturnType<typeof refStore>) => ({ store });
  it("replace: a store that always appends", async () => {
    await expect(storeChecks.replace(on(refStore(new Map(), { appendAlways: true })), {})).rejects.toThrow(/replaces/);
  });
  it("append: a store that claims append but replaces", async () => {
    await expect(storeChecks.append(on(refStore(new Map(), { noAppend: true })), { append: true })).rejects.toThrow(/both/);
  });
  it("roundTrip: a store that forgets what it was given", async () => {
    const amnesiac = () => ({ write: async () => {}, read: async () => undefined });
    await expect(storeChecks.roundTrip({ store: amnesiac }, {})).rejects.toThrow(/reads back/);
  });
  it("missing: a store that reads an empty string for a missing key", async () => {
    const store = () => ({ write: async () => {}, read: async () => "" });
    await expect(storeChecks.missing({ store }, {})).rejects.toThrow(/undefined/);
  });
  it("unicode: a store that mangles text through Latin-1", async () => {
    await expect(storeChecks.unicode(on(refStore(new Map(), { latin1: true })), {})).rejects.toThrow(/unicode/);
  });
  it("closeIdempotent: a store whose second close throws", async () => {
    await expect(storeChecks.closeIdempotent(on(refStore(new Map(), { closeTwiceThrows: true })), {})).rejects.toThrow(/already closed/);
  });
});

describe("codec checks fail on broken codecs", () => {
  const samples = [{ a: 1 }, { b: "🛰️" }, [1, 2]];
  it("roundTrip: a codec that adds a field", () => {
    expect(() => codecChecks.roundTrip({ codec: refJsonCodec({ lossy: true }), samples, bad: [] })).toThrow(/survives encode\/decode/);
  });
  it("roundTrip: a custom equal that says no", () => {
    expect(() => codecChecks.roundTrip({ codec: refJsonCodec(), samples, bad: [], equal: () => false })).toThrow(/equals/);
  });
  it("badPayloads: a codec that throws bare Errors", () => {
    expect(() => codecChecks.badPayloads({ codec: refJsonCodec({ plainErrors: true }), samples, bad: ["{nope"] })).toThrow(/code DECODE/);
  });
  it("badPayloads: a codec that accepts anything", () => {
    const lenient = { ...refJsonCodec(), decode: () => null };
    expect(() => codecChecks.badPayloads({ codec: lenient, samples, bad: ["{nope"] })).toThrow(/is rejected/);
  });
  it("appendable: a codec that claims appendable but packs a JSON array", () => {
    const arrays = { ...refJsonCodec(), pack: (vs: unknown[]) => JSON.stringify(vs), unpack: (p: string | Uint8Array) => JSON.parse(String(p)) as unknown[] };
    expect(() => codecChecks.appendable({ codec: arrays, samples, bad: [] })).toThrow(/pack\(a\) \+ pack\(b\)/);
  });
  it("packRoundTrip: a codec whose unpack loses the last value", () => {
    const base = refJsonCodec();
    const lossy = { ...base, unpack: (p: string | Uint8Array) => base.unpack!(p).slice(0, -1) };
    expect(() => codecChecks.packRoundTrip({ codec: lossy, samples, bad: [] })).toThrow(/pack\/unpack/);
  });
});
