import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { isGeoWatchError } from "@geowatch/core";
import type { InRecord } from "@geowatch/core";
import { startTcpProxy } from "@geowatch/testkit";
import { describe, expect, it } from "vitest";
import { sqsConsumer, sqsProducer } from "../src/index.js";
import type { SqsConsumer } from "../src/index.js";
import { admin, createQueue, deleteQueue, endpoint, freshName, region } from "./server.js";

const text = (v: InRecord["value"]) => (typeof v === "string" ? v : Buffer.from(v).toString("utf8"));
const conn = () => ({ endpoint: endpoint(), region: region() });

/**
 * Receives until `n` distinct bodies arrived. A standard queue delivers at least once: the server may hand a copy out
 * twice (seen once in CI with moto: one body twice in 25, the 25th distinct one in the next receive).
 */
async function receiveDistinct(c: SqsConsumer, n: number, timeoutMs = 10_000): Promise<{ got: InRecord[]; bodies: string[] }> {
  const got: InRecord[] = [];
  const bodies = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  while (bodies.size < n && Date.now() < deadline) {
    for (const r of await c.receive(n - bodies.size, { waitMs: 500 })) {
      got.push(r);
      bodies.add(text(r.value));
    }
  }
  return { got, bodies: [...bodies] };
}

async function receiveN(c: SqsConsumer, n: number, timeoutMs = 10_000): Promise<InRecord[]> {
  const got: InRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n && Date.now() < deadline) got.push(...(await c.receive(n - got.length, { waitMs: 500 })));
  return got;
}

/** Messages the queue holds, visible or not, as the server counts them. */
async function counts(url: string): Promise<{ visible: number; inFlight: number }> {
  const c = admin();
  try {
    const a = await c.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }));
    return { visible: Number(a.Attributes!.ApproximateNumberOfMessages), inFlight: Number(a.Attributes!.ApproximateNumberOfMessagesNotVisible) };
  } finally {
    c.destroy();
  }
}

async function withQueue(fn: (name: string, url: string) => Promise<void>, attributes: Record<string, string> = {}, suffix = ""): Promise<void> {
  const name = freshName("sqs") + suffix;
  const url = await createQueue(name, attributes);
  try {
    await fn(name, url);
  } finally {
    await deleteQueue(url);
  }
}

describe("sqs consumer", () => {
  it("keeps held messages invisible past the visibility timeout while they are processed, deletes them on ack", async () => {
    await withQueue(async (queue, url) => {
      const p = sqsProducer({ ...conn(), queue });
      await p.send(Array.from({ length: 5 }, (_, i) => ({ value: `slow-${i}` })));
      await p.close();
      const slow = sqsConsumer({ ...conn(), queue, visibilityTimeoutSeconds: 2, waitTimeSeconds: 1 });
      const other = sqsConsumer({ ...conn(), queue, visibilityTimeoutSeconds: 2, waitTimeSeconds: 1 });
      try {
        const got = await receiveN(slow, 5);
        expect(got.length).toBe(5);
        // Three visibility timeouts later, nobody else has seen them.
        const stolen = await receiveN(other, 5, 6000);
        expect(stolen.map((r) => text(r.value)), "no message is redelivered while it is held").toEqual([]);
        await slow.ack(got);
        expect(await counts(url)).toEqual({ visible: 0, inFlight: 0 });
      } finally {
        await slow.close();
        await other.close();
      }
    });
  }, 30_000);

  it("without extension a held message comes back after the visibility timeout, with redeliveries counted", async () => {
    await withQueue(async (queue) => {
      const p = sqsProducer({ ...conn(), queue });
      await p.send([{ value: "once" }]);
      await p.close();
      const a = sqsConsumer({ ...conn(), queue, visibilityTimeoutSeconds: 1, waitTimeSeconds: 1, extendVisibility: false });
      try {
        const first = await receiveN(a, 1);
        expect(first[0]!.redeliveries).toBe(0);
        // Its own receivers keep polling, so the expired message comes back to this consumer.
        const again = await receiveN(a, 1, 8000);
        expect(again.map((r) => text(r.value))).toEqual(["once"]);
        expect(again[0]!.redeliveries).toBe(1);
        await a.ack(again);
      } finally {
        await a.close();
      }
    });
  }, 30_000);

  it("holds at most max_in_flight messages; acking makes room", async () => {
    await withQueue(async (queue) => {
      const p = sqsProducer({ ...conn(), queue });
      await p.send(Array.from({ length: 30 }, (_, i) => ({ value: `m-${i}` })));
      await p.close();
      const c = sqsConsumer({ ...conn(), queue, maxInFlight: 7, waitTimeSeconds: 1 });
      try {
        const first = await receiveN(c, 30, 3000);
        expect(first.length).toBe(7);
        await c.ack(first);
        const rest: InRecord[] = [];
        while (rest.length < 23) {
          const batch = await c.receive(23, { waitMs: 3000 });
          expect(batch.length).toBeGreaterThan(0);
          expect(batch.length).toBeLessThanOrEqual(7);
          rest.push(...batch);
          await c.ack(batch);
        }
        expect(new Set([...first, ...rest].map((r) => text(r.value))).size).toBe(30);
      } finally {
        await c.close();
      }
    });
  }, 30_000);

  it("reads messages other producers sent: String attributes become headers, Number ones too", async () => {
    await withQueue(async (queue, url) => {
      const c0 = admin();
      await c0.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: "from elsewhere",
          MessageAttributes: { origin: { DataType: "String", StringValue: "sdk" }, n: { DataType: "Number", StringValue: "42" } },
        }),
      );
      c0.destroy();
      const c = sqsConsumer({ ...conn(), queue, waitTimeSeconds: 1 });
      try {
        const [r] = await receiveN(c, 1);
        expect(text(r!.value)).toBe("from elsewhere");
        expect(r!.headers).toEqual({ origin: "sdk", n: "42" });
        expect(r!.key).toBeUndefined();
        expect(r!.timestamp).toBeGreaterThan(Date.now() - 60_000);
        await c.ack([r!]);
      } finally {
        await c.close();
      }
    });
  });

  it("a queue that does not exist fails connect with NOT_FOUND naming it", async () => {
    const c = sqsConsumer({ ...conn(), queue: "gw-no-such-queue" });
    const err = await c.connect!().then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err, "NOT_FOUND"), String(err)).toBe(true);
    expect(String(err)).toMatch(/\[sqs\] queue "gw-no-such-queue" does not exist/);
    await c.close();
  });

  it("health() is not ok while the endpoint is cut and ok after it is back; nothing is lost", async () => {
    await withQueue(async (queue) => {
      const target = new URL(endpoint());
      const proxy = await startTcpProxy({ targetHost: target.hostname, targetPort: Number(target.port) });
      // A long poll cut mid-flight may have taken the message on the server side: it is hidden until the
      // visibility timeout, so keep that short here.
      const c = sqsConsumer({ endpoint: `http://${proxy.address}`, region: region(), queue, waitTimeSeconds: 1, visibilityTimeoutSeconds: 2, maxAttempts: 1, requestTimeoutMs: 1000 });
      const p = sqsProducer({ ...conn(), queue });
      try {
        await c.receive(1, { waitMs: 100 });
        expect(c.health().ok).toBe(true);
        proxy.cut();
        const deadline = Date.now() + 10_000;
        while (c.health().ok && Date.now() < deadline) await c.receive(1, { waitMs: 200 });
        expect(c.health().ok, "health reports the cut").toBe(false);
        expect(c.health().error).toMatch(/unreachable/);
        expect((await p.send([{ value: "sent during the cut" }]))[0]!.ok).toBe(true);
        proxy.restore();
        const got = await receiveN(c, 1, 15_000);
        expect(got.map((r) => text(r.value))).toEqual(["sent during the cut"]);
        expect(c.health().ok).toBe(true);
        await c.ack(got);
      } finally {
        await c.close();
        await p.close();
        await proxy.close();
      }
    });
  }, 40_000);
});

describe("sqs producer", () => {
  it("splits by entry count and bytes: 25 records of 30 KB all arrive", async () => {
    await withQueue(async (queue) => {
      const p = sqsProducer({ ...conn(), queue });
      const body = (i: number) => `${i}-`.padEnd(30_000, "x");
      const res = await p.send(Array.from({ length: 25 }, (_, i) => ({ value: body(i) })));
      expect(res.every((r) => r.ok), JSON.stringify(res.filter((r) => !r.ok))).toBe(true);
      expect(new Set(res.map((r) => (r.ok ? r.id : ""))).size).toBe(25);
      await p.close();
      const c = sqsConsumer({ ...conn(), queue, waitTimeSeconds: 1 });
      try {
        const { got, bodies } = await receiveDistinct(c, 25);
        expect(bodies.sort()).toEqual(Array.from({ length: 25 }, (_, i) => body(i)).sort());
        // Copies handed out twice stay few (the ones in flight at once), never a second round of the queue.
        expect(got.length).toBeLessThan(35);
        await c.ack(got);
      } finally {
        await c.close();
      }
    });
  });

  it("bytes that are not SQS text travel as base64 and arrive byte-exact; a body over the limit fails alone", async () => {
    await withQueue(async (queue) => {
      const p = sqsProducer({ ...conn(), queue, maxMessageBytes: 1000 });
      const binary = new Uint8Array([0, 1, 2, 255, 254, 10, 0]);
      const res = await p.send([{ value: binary }, { value: "nul \u0000 inside" }, { value: "x".repeat(1001) }, { value: "plain" }]);
      expect(res.map((r) => r.ok)).toEqual([true, true, false, true]);
      expect(!res[2]!.ok && res[2]!.retryable).toBe(false);
      expect(!res[2]!.ok && res[2]!.error.message).toMatch(/1001 bytes .* over the SQS limit of 1000 bytes/);
      await p.close();
      const c = sqsConsumer({ ...conn(), queue, waitTimeSeconds: 1 });
      try {
        const got = await receiveN(c, 3);
        const bin = got.find((r) => r.value instanceof Uint8Array && r.value[0] === 0);
        expect(bin && Buffer.from(bin.value as Uint8Array).equals(Buffer.from(binary))).toBe(true);
        expect(got.some((r) => text(r.value) === "nul \u0000 inside")).toBe(true);
        expect(got.some((r) => r.value === "plain")).toBe(true);
        await c.ack(got);
      } finally {
        await c.close();
      }
    });
  });

  it("FIFO: the key is the message group (order kept per group); a queue without content dedup needs deduplication_id", async () => {
    await withQueue(
      async (queue, url) => {
        const refused = sqsProducer({ ...conn(), queue });
        const err = await refused.send([{ value: "x", key: "a" }]).then(() => undefined, (e: unknown) => e);
        expect(isGeoWatchError(err, "CONFIG"), String(err)).toBe(true);
        expect(String(err)).toMatch(/deduplication_id/);
        await refused.close();
        const p = sqsProducer({ ...conn(), queue, deduplicationId: "{key}-{headers.seq}" });
        const res = await p.send(Array.from({ length: 30 }, (_, i) => ({ value: `m-${i}`, key: `g${i % 3}`, headers: { seq: String(i) } })));
        expect(res.every((r) => r.ok), JSON.stringify(res.filter((r) => !r.ok))).toBe(true);
        // The same deduplication id within the window is dropped by the queue.
        await p.send([{ value: "m-0 again", key: "g0", headers: { seq: "0" } }]);
        await p.close();
        const raw = admin();
        const peek = await raw.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, MessageSystemAttributeNames: ["MessageGroupId"], VisibilityTimeout: 0 }));
        raw.destroy();
        expect(peek.Messages?.[0]?.Attributes?.MessageGroupId).toMatch(/^g[012]$/);
        const c = sqsConsumer({ ...conn(), queue, waitTimeSeconds: 1 });
        try {
          const got: InRecord[] = [];
          const deadline = Date.now() + 20_000;
          // FIFO hands out a group's next messages only after the earlier ones are deleted: ack as we go.
          while (got.length < 30 && Date.now() < deadline) {
            const batch = await c.receive(30, { waitMs: 500 });
            got.push(...batch);
            await c.ack(batch);
          }
          got.push(...(await c.receive(10, { waitMs: 1000 })));
          expect(got.length).toBe(30);
          for (const g of ["g0", "g1", "g2"]) {
            const seq = got.filter((r) => r.key === g).map((r) => Number(text(r.value).slice(2)));
            expect(seq, `order within group ${g}`).toEqual([...seq].sort((a, b) => a - b));
            expect(seq.length).toBe(10);
          }
        } finally {
          await c.close();
        }
      },
      { FifoQueue: "true" },
      ".fifo",
    );
  }, 40_000);
});
