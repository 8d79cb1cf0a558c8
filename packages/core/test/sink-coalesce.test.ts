import { describe, expect, it } from "vitest";
import { Broker } from "../src/broker.js";
import type { Consumer, InRecord, OutRecord, Producer } from "../src/types.js";

/** A queue-like source that hands out whatever it has: a few records per receive. */
function trickle(n: number, per: number): Consumer & { acked: number } {
  let i = 0;
  const c = {
    acked: 0,
    capabilities: { acks: true, batching: true },
    async receive(max: number): Promise<InRecord[]> {
      const k = Math.min(per, max, n - i);
      const out = Array.from({ length: k }, (_, j) => ({ value: String(i + j) }));
      i += k;
      return out;
    },
    async ack(rs: InRecord[]) {
      c.acked += rs.length;
    },
  };
  return c;
}

/** A sink whose every send takes `ms` (a confirm round trip), recording batch sizes and order. */
function slowSink(ms: number, failEvery = 0): Producer & { sizes: number[]; got: string[] } {
  let calls = 0;
  const p = {
    sizes: [] as number[],
    got: [] as string[],
    capabilities: { batching: true },
    async send(rs: OutRecord[]) {
      calls++;
      p.sizes.push(rs.length);
      await new Promise((r) => setTimeout(r, ms));
      if (failEvery && calls % failEvery === 0) return rs.map(() => ({ ok: false as const, error: new Error("nope"), retryable: true }));
      for (const r of rs) p.got.push(String(r.value));
      return rs.map(() => ({ ok: true as const }));
    },
  };
  return p;
}

describe("sink sends while busy", () => {
  it("batches that arrive while a send is in flight go out together, in order", async () => {
    const n = 400;
    const src = trickle(n, 4);
    const sink = slowSink(10);
    const b = new Broker({ name: "b", consumers: [{ name: "in", consumer: src }], producers: [{ name: "out", producer: sink }], receiveWaitMs: 0, sleepPeriodMs: 0, maxInFlight: 1000 });
    await b.run({ untilIdle: true });
    expect(sink.got).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect(src.acked).toBe(n);
    // One send per received batch would be 100 sends of 4.
    expect(sink.sizes.length).toBeLessThan(20);
    expect(Math.max(...sink.sizes)).toBeLessThanOrEqual(500 + 4);
  });

  it("a retried send still delivers each collected batch's messages exactly once and in order", async () => {
    const n = 200;
    const src = trickle(n, 5);
    const sink = slowSink(5, 3);
    const b = new Broker({ name: "b", consumers: [{ name: "in", consumer: src }], producers: [{ name: "out", producer: sink }], receiveWaitMs: 0, sleepPeriodMs: 0, retryBaseMs: 1, retryMaxMs: 2, maxTries: 10 });
    const stats = await b.run({ untilIdle: true });
    expect(sink.got).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect(stats.acked).toBe(n);
    expect(stats.deadLettered).toBe(0);
  });
});
