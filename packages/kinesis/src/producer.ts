import { randomBytes } from "node:crypto";
import { DescribeStreamSummaryCommand, PutRecordsCommand } from "@aws-sdk/client-kinesis";
import type { KinesisClient, PutRecordsRequestEntry } from "@aws-sdk/client-kinesis";
import { GeoWatchError, backoffMs, parseOptions, payloadBytes, sleep } from "@geowatch/core";
import type { Logger, OutRecord, Producer, SendResult } from "@geowatch/core";
import { BACKEND, awsError, isNetworkError, isThrottleOr5xx, kinesisClient } from "./client.js";
import { kinesisProducerSchema } from "./options.js";
import type { KinesisProducerOptions } from "./options.js";

export interface KinesisProducerDeps {
  logger?: Logger;
  /** Injected Kinesis client; the producer does not destroy it on close. */
  client?: KinesisClient;
}

/** PutRecords limits: 500 entries, 5 MiB per call, 1 MiB per record (data + partition key). */
export const MAX_RECORDS = 500;
export const MAX_CALL_BYTES = 5 * 1024 * 1024;
export const MAX_RECORD_BYTES = 1024 * 1024;
const MAX_KEY_CHARS = 256;

const encoder = new TextEncoder();

/** A stable lane for a partition key (FNV-1a). */
function laneOf(key: string, lanes: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % lanes;
}

/** Renders `{name}` from the record's metadata, `{key}` from its key; a missing value renders empty. */
function renderKey(template: string, r: OutRecord): string {
  return template.replace(/\{([A-Za-z0-9_.-]+)\}/g, (_, name: string) => {
    if (name === "key") return r.key ?? "";
    const meta = r.metadata;
    const v = meta && Object.hasOwn(meta, name) ? meta[name] : undefined;
    return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v as string | number | boolean);
  });
}

/**
 * PutRecords in chunks within the API's limits. Each record gets its own result with the sequence
 * number (`id` is `<shardId>/<sequenceNumber>`); entries that fail with throttling or an internal error
 * are sent again, alone, with backoff and jitter; a record over 1 MiB fails alone, not retryable.
 */
export function kinesisProducer(options: KinesisProducerOptions, deps: KinesisProducerDeps = {}): Producer {
  const opts = parseOptions(kinesisProducerSchema, options, "producer", BACKEND);
  const maxTries = opts.maxTries ?? 5;
  const baseMs = opts.retryBaseMs ?? 100;
  const parallel = opts.parallelCalls ?? 4;
  let client: KinesisClient | undefined = deps.client;
  let problem: string | undefined;
  let closed = false;
  let probing: Promise<unknown> | undefined;
  let probedAt = 0;

  const keyOf = (r: OutRecord): string => {
    const k = opts.partitionKey ? renderKey(opts.partitionKey, r) : r.key;
    // An empty key is not allowed: spread such records over the shards.
    const key = k === undefined || k === "" ? randomBytes(8).toString("hex") : k;
    return key.length > MAX_KEY_CHARS ? key.slice(0, MAX_KEY_CHARS) : key;
  };

  /** Sends one chunk; fills `results` at the entries' indexes, retrying only the failed ones. */
  const putChunk = async (entries: Array<{ index: number; entry: PutRecordsRequestEntry }>, results: SendResult[]) => {
    let pending = entries;
    for (let attempt = 1; pending.length > 0; attempt++) {
      let res;
      try {
        res = await client!.send(new PutRecordsCommand({ StreamName: opts.stream, Records: pending.map((p) => p.entry) }));
        problem = undefined;
      } catch (err) {
        const e = awsError(err, `PutRecords to "${opts.stream}"`);
        if (isNetworkError(err)) problem = e.message;
        if ((isThrottleOr5xx(err) || isNetworkError(err)) && attempt < maxTries && !closed) {
          await sleep(backoffMs(attempt, baseMs, 10_000));
          continue;
        }
        // The whole call failed: every entry of it fails with the same error.
        for (const p of pending) results[p.index] = { ok: false, error: e, retryable: e.retryable };
        return;
      }
      const out = res.Records ?? [];
      const again: typeof pending = [];
      pending.forEach((p, i) => {
        const r = out[i];
        if (r && !r.ErrorCode && r.SequenceNumber) {
          results[p.index] = { ok: true, id: `${r.ShardId}/${r.SequenceNumber}` };
          return;
        }
        const code = r?.ErrorCode ?? "NoResult";
        const retryable = code === "ProvisionedThroughputExceededException" || code === "InternalFailure" || code === "NoResult";
        if (retryable && attempt < maxTries && !closed) {
          again.push(p);
          return;
        }
        const error = new GeoWatchError("SEND", `PutRecords to "${opts.stream}": record ${p.index}: ${code}: ${r?.ErrorMessage ?? "no result"}`, { backend: BACKEND, retryable });
        results[p.index] = { ok: false, error, retryable };
      });
      pending = again;
      if (pending.length > 0) await sleep(backoffMs(attempt, baseMs, 10_000));
    }
  };

  return {
    // The core hands over up to one full call per lane at once.
    capabilities: { batching: true, maxBatch: MAX_RECORDS * parallel, maxBatchBytes: MAX_CALL_BYTES * parallel, maxRecordBytes: MAX_RECORD_BYTES },
    connect() {
      client ??= kinesisClient(opts);
      return Promise.resolve();
    },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      client ??= kinesisClient(opts);
      const results: SendResult[] = new Array<SendResult>(records.length);
      // One lane per share of the partition keys: a key always takes the same lane, so its records keep their
      // order, while the lanes' PutRecords calls run at once (one call at a time caps the rate at a round trip).
      const lanes: Array<Array<{ index: number; entry: PutRecordsRequestEntry; size: number }>> = Array.from({ length: parallel }, () => []);
      records.forEach((r, index) => {
        const data = payloadBytes(r.value);
        const key = keyOf(r);
        const size = data.byteLength + encoder.encode(key).byteLength;
        if (size > MAX_RECORD_BYTES) {
          results[index] = {
            ok: false,
            error: new GeoWatchError("SEND", `record ${index} is ${size} bytes with its partition key; Kinesis takes at most ${MAX_RECORD_BYTES}`, { backend: BACKEND, retryable: false }),
            retryable: false,
          };
          return;
        }
        lanes[parallel === 1 ? 0 : laneOf(key, parallel)]!.push({ index, entry: { Data: data, PartitionKey: key }, size });
      });
      await Promise.all(
        lanes.map(async (lane) => {
          let chunk: Array<{ index: number; entry: PutRecordsRequestEntry }> = [];
          let bytes = 0;
          for (const item of lane) {
            if (chunk.length >= MAX_RECORDS || bytes + item.size > MAX_CALL_BYTES) {
              await putChunk(chunk, results);
              chunk = [];
              bytes = 0;
            }
            chunk.push(item);
            bytes += item.size;
          }
          if (chunk.length > 0) await putChunk(chunk, results);
        }),
      );
      return results;
    },
    health() {
      // After an outage nothing may be sent for a while: probe the stream (at most every 2 s) so readiness comes back by itself.
      if (problem !== undefined && !probing && Date.now() - probedAt > 2000 && client && !closed) {
        probedAt = Date.now();
        probing = client
          .send(new DescribeStreamSummaryCommand({ StreamName: opts.stream }))
          .then(
            () => (problem = undefined),
            () => undefined,
          )
          .finally(() => (probing = undefined));
      }
      return problem === undefined ? { ok: true } : { ok: false, error: problem };
    },
    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      if (!deps.client) client?.destroy();
      return Promise.resolve();
    },
  };
}
