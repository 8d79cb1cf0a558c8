// Faults kinesalite does not produce (it enforces no throughput limits, and iterators expire only after 5 min),
// injected around the real server: the calls still go to kinesalite, a wrapper fails chosen ones first.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ExpiredIteratorException, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ProvisionedThroughputExceededException, PutRecordsCommand,
} from "@aws-sdk/client-kinesis";
import type { PutRecordsCommandOutput } from "@aws-sdk/client-kinesis";
import type { InRecord } from "@geowatch/core";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, describe, expect, it } from "vitest";
import { kinesisConsumer, kinesisProducer } from "../src/index.js";
import { createStream, deleteStream, fresh, kinesisEndpoint, putRaw } from "./server.js";

const streams: string[] = [];
afterAll(async () => {
  await Promise.all(streams.map((s) => deleteStream(s)));
});

type Send = (cmd: unknown) => Promise<unknown>;

/** A real client whose `send` goes through `intercept` first. */
function wrapped(intercept: (cmd: unknown, real: Send) => Promise<unknown>): KinesisClient {
  const real = new KinesisClient({ endpoint: kinesisEndpoint(), region: "us-east-1", requestHandler: new NodeHttpHandler() });
  const send: Send = (cmd) => real.send(cmd as GetRecordsCommand);
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "send") return (cmd: unknown) => intercept(cmd, send);
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

const text = (r: InRecord) => Buffer.from(r.value as Uint8Array).toString("utf8");

describe("kinesis faults", () => {
  it("GetRecords: ProvisionedThroughputExceeded backs off with growing jittered waits, an expired iterator is renewed after the last record read; nothing lost or repeated", async () => {
    const stream = fresh("throttle");
    streams.push(stream);
    await createStream(stream, 1);
    const sent = Array.from({ length: 30 }, (_, i) => ({ value: `t-${i}`, key: "k" }));
    await putRaw(stream, sent.slice(0, 10));
    let getRecords = 0;
    const calls: Array<{ at: number; fault?: string }> = [];
    const renewals: string[] = [];
    const client = wrapped(async (cmd, real) => {
      if (cmd instanceof GetShardIteratorCommand) renewals.push(`${cmd.input.ShardIteratorType} ${cmd.input.StartingSequenceNumber ?? ""}`.trim());
      if (cmd instanceof GetRecordsCommand) {
        getRecords++;
        const at = Date.now();
        if (getRecords >= 2 && getRecords <= 4) {
          calls.push({ at, fault: "throttle" });
          throw new ProvisionedThroughputExceededException({ message: "Rate exceeded for shard", $metadata: { httpStatusCode: 400 } });
        }
        if (getRecords === 6) {
          calls.push({ at, fault: "expired" });
          throw new ExpiredIteratorException({ message: "Iterator expired", $metadata: { httpStatusCode: 400 } });
        }
        calls.push({ at });
      }
      return real(cmd);
    });
    const c = kinesisConsumer(
      { stream, shardIteratorType: "TRIM_HORIZON", checkpointPath: join(mkdtempSync(join(tmpdir(), "gw-kinesis-")), "cp.db"), idleTimeBetweenReadsMs: 200 },
      { client },
    );
    const got: InRecord[] = [];
    // Waves: 10 records before the throttled calls, 10 before the expired iterator, 10 after its renewal.
    let wave = 1;
    try {
      const deadline = Date.now() + 20_000;
      while (got.length < 30 && Date.now() < deadline) {
        got.push(...(await c.receive(100, { waitMs: 300 })));
        if (wave === 1 && got.length >= 10 && getRecords >= 5) {
          await putRaw(stream, sent.slice(10, 20));
          wave = 2;
        }
        if (wave === 2 && getRecords >= 7) {
          await putRaw(stream, sent.slice(20, 30));
          wave = 3;
        }
      }
    } finally {
      await c.close!();
      client.destroy();
    }
    expect(got.map(text), "every record once, in order").toEqual(Array.from({ length: 30 }, (_, i) => `t-${i}`));
    // Throttled calls 2, 3, 4: each next call waits longer (200 ms doubling from 400 ms, with jitter: at least half).
    const gaps = [1, 2, 3].map((i) => calls[i + 1]!.at - calls[i]!.at);
    expect(calls.slice(1, 4).map((x) => x.fault)).toEqual(["throttle", "throttle", "throttle"]);
    expect(gaps[0], `first backoff ${gaps[0]} ms`).toBeGreaterThanOrEqual(190);
    expect(gaps[1], `second backoff ${gaps[1]} ms`).toBeGreaterThanOrEqual(390);
    expect(gaps[2], `third backoff ${gaps[2]} ms`).toBeGreaterThanOrEqual(790);
    // The expired iterator was renewed right after the last record read so far, not from the start.
    expect(renewals[0]).toBe("TRIM_HORIZON");
    expect(renewals.length, `renewals: ${renewals.join(" | ")}`).toBe(2);
    expect(renewals[1]).toMatch(/^AFTER_SEQUENCE_NUMBER \d+$/);
    expect(got.slice(0, 20).map((r) => String(r.position!.offset)), "renewed after a record already read").toContain(renewals[1]!.split(" ")[1]);
  });

  it("PutRecords: only the entries that failed are sent again, and every record lands once", async () => {
    const stream = fresh("partial");
    streams.push(stream);
    await createStream(stream, 2);
    const batches: string[][] = [];
    const client = wrapped(async (cmd, real) => {
      if (!(cmd instanceof PutRecordsCommand)) return real(cmd);
      const entries = cmd.input.Records ?? [];
      batches.push(entries.map((e) => Buffer.from(e.Data!).toString("utf8")));
      if (batches.length > 1) return real(cmd);
      // First call: the server takes the even entries; the odd ones come back throttled.
      const even = entries.filter((_, i) => i % 2 === 0);
      const res = (await real(new PutRecordsCommand({ ...cmd.input, Records: even }))) as PutRecordsCommandOutput;
      let k = 0;
      return {
        ...res,
        FailedRecordCount: entries.length - even.length,
        Records: entries.map((_, i) => (i % 2 === 0 ? res.Records![k++]! : { ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "Rate exceeded for shard" })),
      };
    });
    const p = kinesisProducer({ stream, retryBaseMs: 20, parallelCalls: 1 }, { client });
    const values = Array.from({ length: 9 }, (_, i) => `p-${i}`);
    const res = await p.send(values.map((value, i) => ({ value, key: `k${i}` })));
    await p.close!();
    expect(res.map((r) => r.ok)).toEqual(values.map(() => true));
    expect(batches.length).toBe(2);
    expect(batches[1], "the retry carries only the failed entries").toEqual(values.filter((_, i) => i % 2 === 1));
    const c = kinesisConsumer({ stream, shardIteratorType: "TRIM_HORIZON", checkpointPath: join(mkdtempSync(join(tmpdir(), "gw-kinesis-")), "cp.db"), idleTimeBetweenReadsMs: 200 }, { client });
    try {
      const got: InRecord[] = [];
      const deadline = Date.now() + 10_000;
      while (got.length < values.length && Date.now() < deadline) got.push(...(await c.receive(100, { waitMs: 300 })));
      await new Promise((r) => setTimeout(r, 500));
      got.push(...(await c.receive(100, { waitMs: 100 })));
      expect(got.map(text).sort()).toEqual([...values].sort());
    } finally {
      await c.close!();
      client.destroy();
    }
  });
});
