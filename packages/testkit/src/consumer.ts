import { describe, expect, it } from "vitest";
import { guardConsumer, isGeoWatchError } from "@geowatch/core";
import type { InRecord } from "@geowatch/core";
import type { ChannelCapabilities, ChannelCheck, ChannelSuiteOptions } from "./types.js";
import { LARGE_DEFAULT_BYTES, UNICODE_SAMPLES, largeText } from "./samples.js";
import {
  DEFAULT_TIMEOUT_MS, acknowledge, indexOf, needConsumer, numbered, onChannel, produce, quietMs,
  receiveFor, receiveN, runId, sameBytes, sortedTexts, textOf, using,
} from "./util.js";
import { deadLetter } from "./dead-letter.js";

function need(claimed: unknown, what: string): void {
  if (!claimed) throw new Error(`[geowatch-testkit] this check needs capabilities.${what}`);
}

/** Records of this run (by id) that arrived, as text. */
function texts(records: InRecord[]): string[] {
  return records.map((r) => textOf(r.value));
}

/** The broker acts on what the consumer declares (commit vs ack), so the claim and the declaration must agree. */
const declared: ChannelCheck = async (h, caps) => {
  await using(needConsumer(h), async (c) => {
    const own = c.capabilities ?? {};
    expect(own.ordering === "stream", 'ordering "stream" is claimed exactly when consumer.capabilities.ordering is "stream"').toBe(caps.ordering === "stream");
    if (caps.acks) expect(typeof c.ack, "acks: the consumer has ack()").toBe("function");
    if (caps.ordering === "stream") expect(typeof c.commit, 'ordering "stream": the consumer has commit()').toBe("function");
    if (caps.nackRequeue) expect(typeof c.nack, "nackRequeue: the consumer has nack()").toBe("function");
  });
};

const roundTrip: ChannelCheck = async (h, caps, opts = {}) => {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = runId();
  const sent = numbered(id, 10);
  await produce(h, sent.map((value) => ({ value })));
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(got.map((r) => r.value)), "every produced record arrives exactly once").toEqual([...sent].sort());
    await acknowledge(c, got, caps);
  });
};

const ordering: ChannelCheck = async (h, caps, opts = {}) => {
  need(caps.ordering === "stream" || caps.ordering === "total", 'ordering ("stream" or "total")');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = runId();
  const sent = numbered(id, 20);
  // One key, so partitioned channels put every record in the same stream.
  await produce(h, sent.map((value) => ({ value, key: `${id}-key` })));
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(got.length, "every produced record arrives").toBe(sent.length);
    if (caps.ordering === "total") {
      expect(got.map((r) => indexOf(id, r.value)), "records arrive in the order produced").toEqual(sent.map((_, i) => i));
    } else {
      const streams = new Map<string, number[]>();
      for (const r of got) {
        expect(r.position, 'ordering "stream": every record carries a position').toBeDefined();
        const list = streams.get(r.position!.stream) ?? [];
        list.push(indexOf(id, r.value));
        streams.set(r.position!.stream, list);
      }
      for (const [stream, order] of streams) {
        expect(order, `order within stream "${stream}"`).toEqual([...order].sort((a, b) => a - b));
      }
    }
    await acknowledge(c, got, caps);
  });
};

const ackRemoves: ChannelCheck = async (h, caps, opts = {}) => {
  need(caps.acks || caps.ordering === "stream", 'acks or ordering "stream"');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sent = numbered(runId(), 5);
  await produce(h, sent.map((value) => ({ value })));
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(got.map((r) => r.value))).toEqual([...sent].sort());
    await acknowledge(c, got, caps);
  });
  await using(needConsumer(h), async (c) => {
    const again = await receiveFor(c, quietMs(timeoutMs));
    expect(texts(again), "after acknowledgement a new consumer receives nothing more").toEqual([]);
  });
};

const redelivery: ChannelCheck = async (h, caps, opts = {}) => {
  need(caps.redelivery, "redelivery");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sent = numbered(runId(), 5);
  await produce(h, sent.map((value) => ({ value })));
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(got.map((r) => r.value))).toEqual([...sent].sort());
  });
  await using(needConsumer(h), async (c) => {
    const again = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(again.map((r) => r.value)), "a new consumer receives unacknowledged records again").toEqual([...sent].sort());
    await acknowledge(c, again, caps);
  });
};

const nackRequeue: ChannelCheck = async (h, caps, opts = {}) => {
  need(caps.nackRequeue, "nackRequeue");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sent = numbered(runId(), 3);
  await produce(h, sent.map((value) => ({ value })));
  await using(needConsumer(h), async (c) => {
    expect(typeof c.nack, "capabilities say nackRequeue, so the consumer has nack()").toBe("function");
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(got.map((r) => r.value))).toEqual([...sent].sort());
    await c.nack!(got, { requeue: true, reason: "testkit requeue" });
    const again = await receiveN(c, sent.length, timeoutMs);
    expect(sortedTexts(again.map((r) => r.value)), "nack with requeue delivers the records again").toEqual([...sent].sort());
    for (const r of again) {
      if (r.redeliveries !== undefined) expect(r.redeliveries, "a redelivered record counts its redeliveries").toBeGreaterThanOrEqual(1);
    }
    await acknowledge(c, again, caps);
  });
};

const large: ChannelCheck = async (h, caps, opts = {}) => {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const bytes = Math.min(LARGE_DEFAULT_BYTES, caps.maxRecordBytes ?? Infinity);
  const value = largeText(runId(), bytes);
  await produce(h, [{ value }]);
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, 1, timeoutMs);
    expect(got.length, `a ${bytes}-byte record arrives`).toBe(1);
    const same = sameBytes(got[0]!.value, value);
    expect(same, `the ${bytes}-byte record arrives byte-exact (got ${textOf(got[0]!.value).length} chars)`).toBe(true);
    await acknowledge(c, got, caps);
  });
};

const unicode: ChannelCheck = async (h, caps, opts = {}) => {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = runId();
  const sent = UNICODE_SAMPLES.map((s) => `${id} ${s}`);
  await produce(h, sent.map((value) => ({ value })));
  await using(needConsumer(h), async (c) => {
    const got = await receiveN(c, sent.length, timeoutMs);
    expect(got.length, "every unicode record arrives").toBe(sent.length);
    for (const s of sent) {
      const match = got.find((r) => sameBytes(r.value, s));
      expect(match ? s : sortedTexts(got.map((r) => r.value)), "arrives byte-exact").toEqual(s);
    }
    await acknowledge(c, got, caps);
  });
};

const emptyWait: ChannelCheck = async (h) => {
  const waitMs = 1000;
  await using(needConsumer(h), async (c) => {
    await c.connect?.();
    // A first call may join a group or open a connection; time the second.
    await c.receive(10, { waitMs: 200 });
    const t0 = performance.now();
    const got = await c.receive(10, { waitMs });
    const elapsed = performance.now() - t0;
    expect(texts(got), "an empty channel returns []").toEqual([]);
    expect(elapsed, `receive({ waitMs: ${waitMs} }) waits about waitMs (took ${Math.round(elapsed)} ms)`).toBeGreaterThanOrEqual(waitMs * 0.5);
    expect(elapsed, `receive({ waitMs: ${waitMs} }) returns soon after waitMs (took ${Math.round(elapsed)} ms)`).toBeLessThan(waitMs + 2000);
  });
};

const abortSignal: ChannelCheck = async (h) => {
  const waitMs = 8000;
  const abortAfter = 200;
  const grace = 2000;
  await using(needConsumer(h), async (c) => {
    await c.connect?.();
    await c.receive(10, { waitMs: 100 });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), abortAfter);
    const t0 = performance.now();
    let late: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        c.receive(10, { waitMs, signal: ac.signal }).then(
          (records) => ({ records }),
          (error: unknown) => ({ error }),
        ),
        new Promise<"late">((resolve) => (late = setTimeout(() => resolve("late"), abortAfter + grace))),
      ]);
      const elapsed = performance.now() - t0;
      expect(outcome, `receive settles within ${grace} ms of the abort (waitMs ${waitMs})`).not.toBe("late");
      if (outcome !== "late" && "records" in outcome) expect(texts(outcome.records), "an aborted receive on an empty channel returns []").toEqual([]);
      expect(elapsed).toBeLessThan(abortAfter + grace);
    } finally {
      clearTimeout(timer);
      clearTimeout(late);
    }
  });
};

const closeIdempotent: ChannelCheck = async (h) => {
  const open = needConsumer(h);
  const c = await open();
  try {
    await c.connect?.();
    await c.receive(1, { waitMs: 50 });
  } finally {
    await c.close?.();
    await c.close?.();
  }
  // The runtime layer is what refuses calls after close; the backend only has to survive a second close.
  const g = guardConsumer(await open(), { name: "testkit", backend: "testkit" });
  try {
    await g.receive(1, { waitMs: 50 });
  } finally {
    await g.close?.();
    await g.close?.();
  }
  const err = await g.receive(1, { waitMs: 50 }).then(() => undefined, (e: unknown) => e);
  expect(isGeoWatchError(err, "CLOSED"), `receive after close rejects with code CLOSED (got ${String(err)})`).toBe(true);
};

/** The consumer checks, each runnable on its own against a set-up harness. */
export const consumerChecks = {
  declared, roundTrip, ordering, ackRemoves, redelivery, nackRequeue, large, unicode, emptyWait, abortSignal, closeIdempotent, deadLetter,
} satisfies Record<string, ChannelCheck>;

/** Which checks a channel's capabilities call for. */
export function consumerPlan(caps: ChannelCapabilities): Array<[string, ChannelCheck]> {
  const plan: Array<[string, ChannelCheck]> = [
    ["the consumer declares what the suite is told (ordering, ack, commit, nack)", declared],
    ["round trip: produced records arrive", roundTrip],
  ];
  if (caps.ordering === "stream" || caps.ordering === "total") plan.push([`ordering (${caps.ordering}) is preserved`, ordering]);
  if (caps.acks || caps.ordering === "stream") plan.push(["acknowledged records are not delivered to a new consumer", ackRemoves]);
  if (caps.redelivery) plan.push(["unacknowledged records are delivered again to a new consumer", redelivery]);
  if (caps.nackRequeue) plan.push(["nack with requeue delivers again", nackRequeue]);
  plan.push(
    [`a large record (${Math.min(LARGE_DEFAULT_BYTES, caps.maxRecordBytes ?? Infinity)} bytes) arrives byte-exact`, large],
    ["unicode records arrive byte-exact", unicode],
    ["receive on an empty channel returns [] after about waitMs", emptyWait],
    ["receive honours an AbortSignal", abortSignal],
    ["close is idempotent (and receive after close is refused by the runtime layer)", closeIdempotent],
  );
  plan.push(["in a Broker, bad payloads go to the dead-letter sink and good ones on, and the source is acknowledged", deadLetter]);
  return plan;
}

/** `describe("<name> consumer conformance")`: one test per claimed capability. */
export function consumerSuite(name: string, opts: ChannelSuiteOptions): void {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  describe(`${name} consumer conformance`, () => {
    for (const [title, check] of consumerPlan(opts.capabilities)) {
      it(title, () => onChannel(opts.setup, (h) => check(h, opts.capabilities, { timeoutMs })), Math.max(60_000, timeoutMs * 4));
    }
  });
}
