import { GeoWatchError, guardProducer } from "@geowatch/core";
import type { Logger, ManagedProducer, OutRecord, Producer, SendResult } from "@geowatch/core";
import type { Admin, Message, Producer as KProducer, RecordMetadata } from "kafkajs";
import { createKafka, kafkaError } from "./client.js";
import { parseOptions, topicName } from "./options.js";
import type { KafkaOptions } from "./options.js";
import { loadKafkajs } from "./kafkajs-fixes.js";
import { defaultPartitioner } from "./partitioner.js";

/** Extras a factory may pass: the runtime's logger and secret reader (for the SASL env fallbacks). */
export interface KafkaProducerDeps {
  logger?: Logger;
  secret?: (ref: string) => string | undefined;
}

function toMessage(r: OutRecord): Message {
  const v = r.value;
  const m: Message = { value: typeof v === "string" || Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength) };
  if (r.key !== undefined) m.key = r.key;
  if (r.headers !== undefined) m.headers = { ...r.headers };
  return m;
}

/** One shared result for every accepted record without an id: a send of many records allocates none. */
const OK: SendResult = Object.freeze({ ok: true });

/** Record ids `topic:partition:offset`, known when a request's records landed in one partition (appends keep order). */
function idsOf(meta: RecordMetadata[], topic: string, count: number): Array<string | undefined> {
  const parts = meta.filter((m) => m.topicName === topic);
  const only = parts.length === 1 ? parts[0] : undefined;
  if (!only?.baseOffset || only.baseOffset === "-1") return new Array<undefined>(count).fill(undefined);
  const base = BigInt(only.baseOffset);
  return Array.from({ length: count }, (_, i) => `${topic}:${only.partition}:${base + BigInt(i)}`);
}

/**
 * An idempotent Kafka producer (`acks: -1`). A batch is sent per destination topic, as requests of at most
 * `maxRequestRecords`; each record gets the result of its request, so one missing topic fails only its records.
 */
export function createKafkaProducer(options: KafkaOptions, deps: KafkaProducerDeps = {}): Producer {
  const opts = parseOptions(options, "producer");
  const { kafka, brokers } = createKafka(opts, deps.logger, deps.secret);
  const { CompressionTypes } = loadKafkajs(deps.logger);
  const compression = opts.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None;
  const chunk = opts.maxRequestRecords ?? 1000;
  const known = new Set<string>();
  let producer: KProducer | undefined;
  let admin: Admin | undefined;
  /** The connect in flight, so close can wait for it and disconnect what it opened. */
  let connecting: Promise<void> | undefined;
  /** The last send's connection failure, until a send gets through. */
  let unreachable: string | undefined;

  const doConnect = async () => {
    const p = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // kafkajs' DefaultPartitioner's choices (Java-compatible murmur2 of the key), without its per-record allocations.
      createPartitioner: defaultPartitioner,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2000 },
    });
    const a = kafka.admin();
    try {
      await p.connect();
      await a.connect();
    } catch (err) {
      await p.disconnect().catch(() => undefined);
      await a.disconnect().catch(() => undefined);
      throw kafkaError(err, "connecting the producer", brokers);
    }
    producer = p;
    admin = a;
  };

  // The runtime layer calls connect once at a time (retrying a failure) and nothing after close.
  const connect = async (): Promise<void> => {
    connecting = doConnect();
    try {
      await connecting;
    } finally {
      connecting = undefined;
    }
  };

  const exists = async (topic: string): Promise<boolean> => {
    if (known.has(topic)) return true;
    try {
      const topics = await admin!.listTopics();
      for (const t of topics) known.add(t);
    } catch (err) {
      throw kafkaError(err, "listing topics", brokers);
    }
    return known.has(topic);
  };

  const missing = (topic: string) =>
    new GeoWatchError("NOT_FOUND", `topic "${topic}" does not exist on ${brokers.join(",")} (auto-creation is off; enable topic_check create or create it)`, {
      backend: "kafka",
    });

  return {
    capabilities: { batching: true },
    connect,
    health: () => (unreachable === undefined ? { ok: true } : { ok: false, error: unreachable }),
    async send(records: OutRecord[]): Promise<SendResult[]> {
      const results: SendResult[] = new Array(records.length);
      const byTopic = new Map<string, number[]>();
      records.forEach((r, i) => {
        const name = r.topic ?? opts.topic;
        if (name === undefined) {
          const error = new GeoWatchError("CONFIG", "record has no topic and the producer has no `topic` option", { backend: "kafka", path: "topic" });
          results[i] = { ok: false, error, retryable: false };
          return;
        }
        const topic = topicName(opts, name);
        const list = byTopic.get(topic);
        if (list) list.push(i);
        else byTopic.set(topic, [i]);
      });
      await Promise.all(
        [...byTopic].map(async ([topic, indices]) => {
          try {
            if (!(await exists(topic))) {
              const error = missing(topic);
              for (const i of indices) results[i] = { ok: false, error, retryable: false };
              return;
            }
          } catch (err) {
            const error = kafkaError(err, `sending to topic "${topic}"`, brokers);
            if (error.code === "CONNECT" || error.code === "TIMEOUT") unreachable = error.message;
            for (const i of indices) results[i] = { ok: false, error, retryable: error.retryable };
            return;
          }
          // A big send goes out as requests of at most `chunk` records, one after the other (the idempotent
          // producer sends one request at a time anyway). After a failed request the rest is not sent, so order is kept.
          for (let from = 0; from < indices.length; from += chunk) {
            const part = indices.length <= chunk ? indices : indices.slice(from, from + chunk);
            try {
              const meta = await producer!.sendBatch({ acks: -1, compression, topicMessages: [{ topic, messages: part.map((i) => toMessage(records[i]!)) }] });
              unreachable = undefined;
              const ids = idsOf(meta, topic, part.length);
              for (let n = 0; n < part.length; n++) {
                const id = ids[n];
                results[part[n]!] = id === undefined ? OK : { ok: true, id };
              }
            } catch (err) {
              const error = kafkaError(err, `sending to topic "${topic}"`, brokers);
              if (error.code === "NOT_FOUND") known.delete(topic);
              if (error.code === "CONNECT" || error.code === "TIMEOUT") unreachable = error.message;
              for (let n = from; n < indices.length; n++) results[indices[n]!] = { ok: false, error, retryable: error.retryable };
              return;
            }
          }
        }),
      );
      return results;
    },
    async ensureTopic(name: string, o: { create: boolean; partitions?: number }): Promise<void> {
      const topic = topicName(opts, name);
      if (await exists(topic)) return;
      if (!o.create) throw missing(topic);
      try {
        await admin!.createTopics({
          waitForLeaders: true,
          topics: [{ topic, numPartitions: o.partitions ?? opts.partitions ?? 1, replicationFactor: -1 }],
        });
      } catch (err) {
        // Another node may have created it meanwhile.
        if (!(err instanceof Error && /already exists/i.test(err.message))) throw kafkaError(err, `creating topic "${topic}"`, brokers);
      }
      known.add(topic);
    },
    async close(): Promise<void> {
      await connecting?.catch(() => undefined);
      await producer?.disconnect().catch(() => undefined);
      await admin?.disconnect().catch(() => undefined);
    },
  };
}

/**
 * A Kafka producer wrapped in core's runtime layer (connect once with retries, refuse calls after close, close
 * once), for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function kafkaProducer(options: KafkaOptions, deps: KafkaProducerDeps = {}): ManagedProducer {
  return guardProducer(createKafkaProducer(options, deps), { name: "kafka producer", backend: "kafka", ...(deps.logger && { logger: deps.logger }) });
}
