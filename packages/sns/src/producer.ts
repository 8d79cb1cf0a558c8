import { PublishBatchCommand } from "@aws-sdk/client-sns";
import type { PublishBatchRequestEntry, SNSClient } from "@aws-sdk/client-sns";
import { GeoWatchError, backoffMs, payloadText, renderOptional, sleep } from "@geowatch/core";
import type { BackendHealth, OutRecord, Producer, ProducerCapabilities, SendResult } from "@geowatch/core";
import { BACKEND, Health, isFifo, makeClient, topicArn, awsError } from "./client.js";
import { ENCODING_ATTRIBUTE, KEY_ATTRIBUTE, attributesOf, bodyOf, subjectOf } from "./message.js";
import { SNS_MAX_MESSAGE_BYTES, parseOptions, snsProducerSchema } from "./options.js";
import type { SnsProducerOptions } from "./options.js";

/** An SNS producer: the `Producer` contract plus a health report. */
export interface SnsProducer extends Producer {
  readonly capabilities: ProducerCapabilities;
  health(): BackendHealth;
  close(): Promise<void>;
}

const DEFAULT_FIELDS = ["actiontype", "targettype", "featuretype"];
/** Rounds in which entries that failed for a transient reason are published again before `send` reports them. */
const ENTRY_ROUNDS = 3;

interface Prepared {
  index: number;
  entry: PublishBatchRequestEntry;
  bytes: number;
}

/**
 * Publishes records with PublishBatch (10 entries and `max_message_bytes` per call): subject and body
 * from the template codec, envelope metadata as message attributes for subscription filter policies,
 * FIFO group and deduplication ids. A record SNS cannot take fails alone, non-retryable; entries that
 * failed for a transient reason are published again, and only those.
 */
export function snsProducer(options: SnsProducerOptions): SnsProducer {
  const o = parseOptions<SnsProducerOptions>(snsProducerSchema, options, "sns producer");
  const client: SNSClient = makeClient(o);
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_SNS ?? "SNS";
  const maxBytes = o.maxMessageBytes ?? SNS_MAX_MESSAGE_BYTES;
  const fields = o.metadataAttributes ?? DEFAULT_FIELDS;
  const fifo = isFifo(o.topic);
  const health = new Health();
  let target: Promise<string> | undefined;
  let closed = false;

  const arnOf = (): Promise<string> => {
    target ??= (async () => {
      try {
        const t = await topicArn(client, o.topic);
        health.ok();
        if (fifo && o.deduplicationId === undefined && !t.contentDedup) {
          throw new GeoWatchError("CONFIG", `FIFO topic "${o.topic}" has no ContentBasedDeduplication: set deduplication_id (a template) or enable it on the topic`, {
            backend: BACKEND,
            path: "deduplication_id",
          });
        }
        return t.arn;
      } catch (err) {
        health.failed((err as Error).cause ?? err);
        target = undefined;
        throw err;
      }
    })();
    return target;
  };

  const reject = (message: string): SendResult => ({ ok: false, retryable: false, error: new GeoWatchError("SEND", message, { backend: BACKEND }) });

  const prepare = (r: OutRecord, index: number): Prepared | SendResult => {
    let value = r.value;
    let subject: string | undefined;
    if (o.subject === "template") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(payloadText(r.value));
      } catch {
        parsed = undefined;
      }
      const p = parsed as { subject?: unknown; text?: unknown } | undefined;
      if (typeof p?.subject !== "string" || typeof p.text !== "string") {
        return reject(`record ${index} is not the template codec's email output ({"subject","text"}), which subject: template needs`);
      }
      subject = subjectOf(p.subject);
      value = p.text;
    }
    const { body, base64 } = bodyOf(value);
    if (body === "") return reject(`record ${index} has an empty message, which SNS refuses`);
    const extra: Record<string, string> = {};
    if (r.key !== undefined) extra[KEY_ATTRIBUTE] = r.key;
    if (base64) extra[ENCODING_ATTRIBUTE] = "base64";
    const attrs = attributesOf(r.metadata, fields, r.headers, extra);
    if (attrs.problem) return reject(`record ${index}: ${attrs.problem}`);
    const bytes = Buffer.byteLength(body) + attrs.bytes + (subject ? Buffer.byteLength(subject) : 0);
    if (bytes > maxBytes) return reject(`record ${index} is ${bytes} bytes (message${base64 ? " as base64" : ""}, subject and attributes), over the SNS limit of ${maxBytes} bytes`);
    const entry: PublishBatchRequestEntry = { Id: String(index), Message: body };
    if (subject) entry.Subject = subject;
    if (Object.keys(attrs.attributes).length > 0) entry.MessageAttributes = attrs.attributes;
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

  return {
    capabilities: { batching: true, maxBatch: 10, maxBatchBytes: maxBytes, maxRecordBytes: maxBytes },
    async connect() {
      await arnOf();
    },
    health: () => health.report(endpoint),
    async send(records: OutRecord[]): Promise<SendResult[]> {
      if (closed) throw new GeoWatchError("CLOSED", `producer for topic "${o.topic}" is closed`, { backend: BACKEND });
      const arn = await arnOf();
      const results: SendResult[] = new Array(records.length);
      let pending: Prepared[] = [];
      records.forEach((r, i) => {
        const p = prepare(r, i);
        if ("entry" in p) pending.push(p);
        else results[i] = p;
      });
      for (let round = 1; pending.length > 0; round++) {
        const again: Prepared[] = [];
        for (const batch of batches(pending, maxBytes)) {
          const byId = new Map(batch.map((p) => [p.entry.Id!, p]));
          let out;
          try {
            out = await client.send(new PublishBatchCommand({ TopicArn: arn, PublishBatchRequestEntries: batch.map((p) => p.entry) }));
            health.ok();
          } catch (err) {
            health.failed(err);
            throw awsError(err, `publishing ${batch.length} message(s) to topic "${o.topic}"`);
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
                error: new GeoWatchError("SEND", `record ${p.index} refused by topic "${o.topic}": ${f.Code}: ${f.Message ?? ""}`, { backend: BACKEND, retryable: !f.SenderFault }),
              };
            }
          }
        }
        pending = again;
        if (pending.length > 0) await sleep(backoffMs(round, 100, 2000));
      }
      return results;
    },
    async close() {
      if (closed) return;
      closed = true;
      client.destroy();
    },
  };
}

/** Splits entries into PublishBatch calls: at most 10 entries and `maxBytes` each, order kept. */
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
