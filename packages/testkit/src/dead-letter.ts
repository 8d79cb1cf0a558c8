import { expect } from "vitest";
import { Broker, GeoWatchError, memoryChannel } from "@geowatch/core";
import type { Codec, InRecord, MemoryChannel, Payload } from "@geowatch/core";
import type { ChannelCheck } from "./types.js";
import { DEFAULT_TIMEOUT_MS, coreExport, needConsumer, produce, quietMs, receiveFor, runId, textOf, using } from "./util.js";

/** Used only while the core has no `jsonCodec` of its own; it follows the Codec contract (DECODE on bad input). */
const fallbackJson: Codec = {
  name: "json",
  contentType: "application/json",
  encode: (v) => JSON.stringify(v),
  decode: (p: Payload) => {
    try {
      return JSON.parse(textOf(p)) as unknown;
    } catch (err) {
      throw new GeoWatchError("DECODE", `not JSON: ${(err as Error).message}`, { backend: "json", cause: err });
    }
  },
};

async function drain(ch: MemoryChannel): Promise<InRecord[]> {
  const c = ch.consumer();
  try {
    const got = await c.receive(ch.size, { waitMs: 0 });
    await c.ack?.(got);
    return got;
  } finally {
    await c.close?.();
  }
}

/** Why a dead letter was dead-lettered: the `x-geowatch-reason` header or the body's `reason`. */
function reasonOf(r: InRecord): string {
  const header = Object.entries(r.headers ?? {}).find(([k]) => /reason/i.test(k))?.[1];
  if (header) return header;
  try {
    const body = JSON.parse(textOf(r.value)) as { reason?: unknown };
    return typeof body.reason === "string" ? body.reason : "";
  } catch {
    return "";
  }
}

/** The original payload a dead letter carries (body `payload`), else its whole text. */
function payloadOf(r: InRecord): string {
  try {
    const body = JSON.parse(textOf(r.value)) as { payload?: unknown };
    if (typeof body.payload === "string") return body.payload;
    const b64 = (body.payload as { base64?: unknown } | undefined)?.base64;
    if (typeof b64 === "string") return Buffer.from(b64, "base64").toString("utf8");
  } catch {
    // Not a JSON wrapper: the dead letter is the raw record.
  }
  return textOf(r.value);
}

/**
 * Runs the channel's consumer inside the core Broker with a JSON codec: malformed records must reach the
 * dead-letter sink with a reason, good ones the output, and the source must end up acknowledged.
 */
export const deadLetter: ChannelCheck = async (h, caps, opts = {}) => {
  const codec = coreExport<Codec>("jsonCodec") ?? fallbackJson;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = runId();
  const good = [0, 1, 2].map((n) => ({ id, n }));
  const bad = [`{"id":"${id}","n":`, `${id} is not JSON`];
  await produce(h, [good[0]!, bad[0]!, good[1]!, bad[1]!, good[2]!].map((v) => ({ value: typeof v === "string" ? v : JSON.stringify(v) })));

  const out = memoryChannel();
  const dlq = memoryChannel();
  await using(needConsumer(h), async (consumer) => {
    const broker = new Broker({
      name: "testkit-dlq",
      consumers: [{ name: "in", consumer, codec }],
      producers: [{ name: "out", producer: out.producer() }],
      deadLetter: { name: "dlq", producer: dlq.producer() },
      receiveWaitMs: 500,
      sleepPeriodMs: 500,
    });
    // A slow source may deliver after the first idle cycle; run again until everything is through.
    const deadline = Date.now() + timeoutMs;
    do await broker.run({ untilIdle: true });
    while ((out.size < good.length || dlq.size < bad.length) && Date.now() < deadline);
  });

  const passed = (await drain(out)).map((r) => JSON.parse(textOf(r.value)) as { n: number }).sort((a, b) => a.n - b.n);
  expect(passed, "good records reach the output").toEqual(good);
  const dead = await drain(dlq);
  expect(dead.map(payloadOf).sort(), "malformed records reach the dead-letter sink").toEqual([...bad].sort());
  for (const d of dead) expect(reasonOf(d), "each dead letter says why").not.toBe("");

  if (caps.acks || caps.ordering === "stream") {
    await using(needConsumer(h), async (c) => {
      const again = await receiveFor(c, quietMs(timeoutMs));
      expect(again.map((r) => textOf(r.value)), "the broker acknowledged every source record").toEqual([]);
    });
  }
};
