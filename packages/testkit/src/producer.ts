import { describe, expect, it } from "vitest";
import { guardProducer, isGeoWatchError } from "@geowatch/core";
import type { OutRecord, Payload, Producer } from "@geowatch/core";
import type { ChannelCapabilities, ChannelCheck, ChannelHarness, ChannelSuiteOptions } from "./types.js";
import { largeText } from "./samples.js";
import {
  DEFAULT_TIMEOUT_MS, acknowledge, numbered, onChannel, receiveN, runId, sortedTexts, textOf, using,
} from "./util.js";

function needProducer(h: ChannelHarness): () => Producer | Promise<Producer> {
  if (!h.producer) throw new Error("[geowatch-testkit] the harness has no producer(); producerSuite needs one");
  return h.producer;
}

/** Sends and expects every record accepted. */
async function sendAll(h: ChannelHarness, records: OutRecord[]): Promise<void> {
  await using(needProducer(h), async (p) => {
    const results = await p.send(records);
    expect(results.length, "send returns one result per record").toBe(records.length);
    expect(results.map((r) => (r.ok ? "ok" : r.error.message)), "every record is accepted").toEqual(records.map(() => "ok"));
  });
}

/** What reached the server: through a consumer on the channel, else through `readBack`. */
async function readBack(h: ChannelHarness, caps: ChannelCapabilities, n: number, timeoutMs: number): Promise<Payload[]> {
  if (h.consumer) {
    return using(h.consumer, async (c) => {
      const got = await receiveN(c, n, timeoutMs);
      await acknowledge(c, got, caps);
      return got.map((r) => r.value);
    });
  }
  if (h.readBack) return h.readBack(n, timeoutMs);
  throw new Error("[geowatch-testkit] the harness needs consumer() or readBack() to see what reached the server");
}

const results: ChannelCheck = async (h) => {
  const sent = numbered(runId(), 5);
  await sendAll(h, sent.map((value) => ({ value })));
};

const roundTrip: ChannelCheck = async (h, caps, opts = {}) => {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sent = numbered(runId(), 10);
  await sendAll(h, sent.map((value) => ({ value })));
  const got = await readBack(h, caps, sent.length, timeoutMs);
  expect(sortedTexts(got), "every sent record reaches the server exactly once").toEqual([...sent].sort());
};

const keysAndHeaders: ChannelCheck = async (h, caps, opts = {}) => {
  if (!caps.keys && !caps.headers) throw new Error("[geowatch-testkit] this check needs capabilities.keys or capabilities.headers");
  if (!h.consumer) throw new Error("[geowatch-testkit] checking keys/headers needs harness.consumer()");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = runId();
  const sent: OutRecord[] = [0, 1, 2].map((i) => ({
    value: `${id}-${i}`,
    key: `${id}-key-${i}`,
    headers: { "x-gwtk-index": String(i), "x-gwtk-text": "ünïcødé ✓" },
  }));
  await sendAll(h, sent);
  await using(h.consumer, async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(got.length, "every record arrives").toBe(sent.length);
    const byValue = new Map(got.map((r) => [textOf(r.value), r]));
    for (const s of sent) {
      const r = byValue.get(s.value as string);
      expect(r, `record ${String(s.value)} arrives`).toBeDefined();
      if (caps.keys) expect(r!.key, "the key arrives as sent").toBe(s.key);
      if (caps.headers) expect(r!.headers ?? {}, "the headers arrive as sent").toMatchObject(s.headers!);
    }
    await acknowledge(c, got, caps);
  });
};

const partialBatch: ChannelCheck = async (h, caps) => {
  const max = caps.maxRecordBytes;
  if (!max) throw new Error("[geowatch-testkit] this check needs capabilities.maxRecordBytes");
  const id = runId();
  const batch: OutRecord[] = [{ value: `${id}-0` }, { value: largeText(`${id}-big`, max + 1) }, { value: `${id}-2` }];
  await using(needProducer(h), async (p) => {
    const res = await p.send(batch);
    expect(res.length, "send returns one result per record").toBe(batch.length);
    expect(res.map((r) => r.ok), `only the record over ${max} bytes fails`).toEqual([true, false, true]);
    const failed = res[1]!;
    if (!failed.ok) expect(failed.error, "the failed result carries an Error").toBeInstanceOf(Error);
  });
};

const closeIdempotent: ChannelCheck = async (h) => {
  const open = needProducer(h);
  const p = await open();
  try {
    await p.connect?.();
  } finally {
    await p.close?.();
    await p.close?.();
  }
  const g = guardProducer(await open(), { name: "testkit", backend: "testkit" });
  await g.close?.();
  await g.close?.();
  const err = await g.send([{ value: "after close" }]).then(() => undefined, (e: unknown) => e);
  expect(isGeoWatchError(err, "CLOSED"), `send after close rejects with code CLOSED (got ${String(err)})`).toBe(true);
};

/** The producer checks, each runnable on its own against a set-up harness. */
export const producerChecks = { results, roundTrip, keysAndHeaders, partialBatch, closeIdempotent } satisfies Record<string, ChannelCheck>;

/** Which checks a channel's capabilities call for. */
export function producerPlan(caps: ChannelCapabilities): Array<[string, ChannelCheck]> {
  const plan: Array<[string, ChannelCheck]> = [
    ["send returns one ok result per record", results],
    ["round trip: sent records reach the server", roundTrip],
  ];
  if (caps.keys || caps.headers) plan.push([`${[caps.keys && "keys", caps.headers && "headers"].filter(Boolean).join(" and ")} arrive as sent`, keysAndHeaders]);
  if (caps.maxRecordBytes) plan.push([`a record over ${caps.maxRecordBytes} bytes fails alone in its batch`, partialBatch]);
  plan.push(["close is idempotent (and send after close is refused by the runtime layer)", closeIdempotent]);
  return plan;
}

/** `describe("<name> producer conformance")`: one test per claimed capability. */
export function producerSuite(name: string, opts: ChannelSuiteOptions): void {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  describe(`${name} producer conformance`, () => {
    for (const [title, check] of producerPlan(opts.capabilities)) {
      it(title, () => onChannel(opts.setup, (h) => check(h, opts.capabilities, { timeoutMs })), Math.max(60_000, timeoutMs * 4));
    }
  });
}
