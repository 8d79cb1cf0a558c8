import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { SQSClient, SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs";
import { GeoWatchError, backoffMs, renderOptional, sleep } from "@geowatch/core";
import type { BackendHealth, OutRecord, Producer, ProducerCapabilities, SendResult } from "@geowatch/core";
import { BACKEND, Health, awsError, isFifo, makeClient, queueAttributes, queueUrl } from "./client.js";
import { ENCODING_ATTRIBUTE, KEY_ATTRIBUTE, MAX_ATTRIBUTES, badAttributeName, badText, bodyOf, stringAttributes } from "./message.js";
import { SQS_MAX_MESSAGE_BYTES, parseOptions, sqsProducerSchema } from "./options.js";
import type { SqsProducerOptions } from "./options.js";

/** An SQS producer: the `Producer` contract plus a health report. */
export interface SqsProducer extends Producer {
  readonly capabilities: ProducerCapabilities;
  health(): BackendHealth;
  close(): Promise<void>;
}

/** Rounds in which entries that failed for a transient reason are sent again before `send` reports them. */
const ENTRY_ROUNDS = 3;
/** Records one `send` takes: split here into SendMessageBatch calls of 10, several in flight. */
const MAX_SEND = 100;
/** SendMessageBatch calls in flight at once for a standard queue. */
const SEND_CONCURRENCY = 8;

interface Prepared {
  index: number;
  entry: SendMessageBatchRequestEntry;
  bytes: number;
}

/**
 * Sends records with SendMessageBatch: at most 10 entries and `max_message_bytes` per call, up to 8 calls in
 * flight for a standard queue (one for a FIFO queue, in order). A record SQS
 * cannot take (too big, too many or invalid attributes) fails alone with a non-retryable result; entries
 * that failed for a transient reason are sent again, and only those.
 */
export function sqsProducer(options: SqsProducerOptions): SqsProducer {
  const o = parseOptions<SqsProducerOptions>(sqsProducerSchema, options, "sqs producer");
  const client: SQSClient = makeClient(o);
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_SQS ?? "SQS";
  const maxBytes = o.maxMessageBytes ?? SQS_MAX_MESSAGE_BYTES;
  const health = new Health();
  const urls = new Map<string, Promise<string>>();
  let closed = false;

  /** The URL of a queue (cached), checking once that a FIFO queue without a dedup template dedups by content. */
  const urlOf = (queue: string): Promise<string> => {
    let p = urls.get(queue);
    if (!p) {
      p = (async () => {
        const url = await queueUrl(client, queue);
        if (isFifo(queue) && o.deduplicationId === undefined) {
          const a = await queueAttributes(client, url, ["ContentBasedDeduplication"]);
          if (a.ContentBasedDeduplication !== "true") {
            throw new GeoWatchError("CONFIG", `FIFO queue "${queue}" has no ContentBasedDeduplication: set deduplication_id (a template) or enable it on the queue`, {
              backend: BACKEND,
              path: "deduplication_id",
            });
          }
        }
        health.ok();
        return url;
      })();
      urls.set(queue, p);
      // A failed lookup is tried again on the next send.
      p.catch(() => urls.delete(queue));
    }
    return p;
  };

  const reject = (message: string): SendResult => ({ ok: false, retryable: false, error: new GeoWatchError("SEND", message, { backend: BACKEND }) });

  /** The batch entry for a record, or why SQS cannot take it. */
  const prepare = (r: OutRecord, index: number, fifo: boolean): Prepared | SendResult => {
    const { body, base64 } = bodyOf(r.value);
    const values: Record<string, string> = { ...r.headers };
    if (r.key !== undefined) values[KEY_ATTRIBUTE] = r.key;
    if (base64) values[ENCODING_ATTRIBUTE] = "base64";
    const names = Object.keys(values);
    if (names.length > MAX_ATTRIBUTES) {
      return reject(`record ${index} needs ${names.length} message attributes (headers${r.key !== undefined ? " + key" : ""}); SQS takes at most ${MAX_ATTRIBUTES}`);
    }
    for (const [name, value] of Object.entries(values)) {
      const bad = badAttributeName(name) ?? (badText(value) ? `header "${name}" ${badText(value)}` : undefined);
      if (bad) return reject(`record ${index}: ${bad}`);
    }
    const { attributes, bytes: attrBytes } = stringAttributes(values);
    const bytes = Buffer.byteLength(body) + attrBytes;
    if (bytes > maxBytes) {
      return reject(`record ${index} is ${bytes} bytes (body${base64 ? " as base64" : ""} and attributes), over the SQS limit of ${maxBytes} bytes`);
    }
    const entry: SendMessageBatchRequestEntry = { Id: String(index), MessageBody: body };
    if (names.length > 0) entry.MessageAttributes = attributes;
    if (o.delaySeconds !== undefined && !fifo) entry.DelaySeconds = o.delaySeconds;
    if (fifo) {
      const ctx = { key: r.key, headers: r.headers ?? {}, metadata: r.metadata ?? {} };
      entry.MessageGroupId = renderOptional(o.groupId ?? "{key}", ctx, "group_id") ?? o.defaultGroupId ?? "geowatch";
      if (o.deduplicationId !== undefined) {
        const dedup = renderOptional(o.deduplicationId, ctx, "deduplication_id");
        if (dedup === undefined) return reject(`record ${index}: deduplication_id "${o.deduplicationId}" needs a field the record does not have`);
        entry.MessageDeduplicationId = dedup.slice(0, 128);
      }
    }
    return { index, entry, bytes };
  };

  /** Sends one queue's entries in batches within the limits; fills `results`. */
  const sendTo = async (url: string, fifo: boolean, prepared: Prepared[], results: SendResult[]): Promise<void> => {
    let pending = prepared;
    for (let round = 1; pending.length > 0; round++) {
      const again: Prepared[] = [];
      const calls = batches(pending, maxBytes);
      // A FIFO queue gets one call at a time, so a group's order holds; a standard queue has no order to keep.
      await inParallel(calls, fifo ? 1 : SEND_CONCURRENCY, async (batch) => {
        const byId = new Map(batch.map((p) => [p.entry.Id!, p]));
        let out;
        try {
          out = await client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: batch.map((p) => p.entry) }));
          health.ok();
        } catch (err) {
          health.failed(err);
          // The whole call failed (after the SDK's own retries): the caller retries the batch.
          throw awsError(err, `sending ${batch.length} message(s) to queue "${o.queue}"`);
        }
        for (const s of out.Successful ?? []) {
          const p = byId.get(s.Id!);
          if (p) results[p.index] = s.MessageId ? { ok: true, id: s.MessageId } : { ok: true };
        }
        for (const f of out.Failed ?? []) {
          const p = byId.get(f.Id!);
          if (!p) continue;
          if (!f.SenderFault && round < ENTRY_ROUNDS) again.push(p);
          else {
            results[p.index] = {
              ok: false,
              retryable: !f.SenderFault,
              error: new GeoWatchError("SEND", `record ${p.index} refused by queue "${o.queue}": ${f.Code}: ${f.Message ?? ""}`, { backend: BACKEND, retryable: !f.SenderFault }),
            };
          }
        }
      });
      pending = again;
      if (pending.length > 0) await sleep(backoffMs(round, 100, 2000));
    }
  };

  return {
    capabilities: { batching: true, maxBatch: MAX_SEND, maxRecordBytes: maxBytes },
    async connect() {
      await urlOf(o.queue);
    },
    health: () => health.report(endpoint),
    async send(records: OutRecord[]): Promise<SendResult[]> {
      if (closed) throw new GeoWatchError("CLOSED", `producer for queue "${o.queue}" is closed`, { backend: BACKEND });
      const results: SendResult[] = new Array(records.length);
      const byQueue = new Map<string, Prepared[]>();
      records.forEach((r, i) => {
        const queue = r.topic ?? o.queue;
        const p = prepare(r, i, isFifo(queue));
        if ("entry" in p) byQueue.set(queue, [...(byQueue.get(queue) ?? []), p]);
        else results[i] = p;
      });
      // Queues one after the other, so a FIFO queue keeps the records' order.
      for (const [queue, prepared] of byQueue) await sendTo(await urlOf(queue), isFifo(queue), prepared, results);
      return results;
    },
    async close() {
      if (closed) return;
      closed = true;
      client.destroy();
    },
  };
}

/** Runs `fn` over `items` with at most `limit` at once; rejects with the first failure after all settled. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++]!;
        await fn(item).catch((err: unknown) => errors.push(err));
      }
    }),
  );
  if (errors.length > 0) throw errors[0];
}

/** Splits entries into SendMessageBatch calls: at most 10 entries and `maxBytes` each, order kept. */
function batches(items: Prepared[], maxBytes: number): Prepared[][] {
  const out: Prepared[][] = [];
  let cur: Prepared[] = [];
  let bytes = 0;
  for (const p of items) {
    if (cur.length > 0 && (cur.length === 10 || bytes + p.bytes > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += p.bytes;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
