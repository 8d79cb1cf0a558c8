import { GeoWatchError } from "@geowatch/core";
import type { Logger, OutRecord, Producer, SendResult } from "@geowatch/core";
import kafkajs from "kafkajs";
import type { Admin, Message, Producer as KProducer, RecordMetadata } from "kafkajs";
import { createKafka, kafkaError } from "./client.js";
import { parseOptions, topicName } from "./options.js";
import type { KafkaOptions } from "./options.js";

const { CompressionTypes, Partitioners } = kafkajs;

/** Extras a factory may pass: the runtime's logger and secret reader (for the SASL env fallbacks). */
export interface KafkaProducerDeps {
  logger?: Logger;
  secret?: (ref: string) => string | undefined;
}

function toMessage(r: OutRecord): Message {
  const v = r.value;
  const m: Message = { value: typeof v === "string" ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength) };
  if (r.key !== undefined) m.key = r.key;
  if (r.headers !== undefined) m.headers = { ...r.headers };
  return m;
}

/** Record ids `topic:partition:offset`, known when a topic's batch landed in one partition (appends keep order). */
function idsOf(meta: RecordMetadata[], topic: string, count: number): Array<string | undefined> {
  const parts = meta.filter((m) => m.topicName === topic);
  const only = parts.length === 1 ? parts[0] : undefined;
  if (!only?.baseOffset || only.baseOffset === "-1") return new Array<undefined>(count).fill(undefined);
  const base = BigInt(only.baseOffset);
  return Array.from({ length: count }, (_, i) => `${topic}:${only.partition}:${base + BigInt(i)}`);
}

/**
 * An idempotent Kafka producer (`acks: -1`). A batch is sent as one request per destination topic;
 * each record gets the result of its topic's request, so one missing topic fails only its records.
 */
export function kafkaProducer(options: KafkaOptions, deps: KafkaProducerDeps = {}): Producer {
  const opts = parseOptions(options, "producer");
  const { kafka, brokers } = createKafka(opts, deps.logger, deps.secret);
  const compression = opts.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None;
  const known = new Set<string>();
  let producer: KProducer | undefined;
  let admin: Admin | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  /** The last send's connection failure, until a send gets through. */
  let unreachable: string | undefined;

  const doConnect = async () => {
    const p = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
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

  const connect = (): Promise<void> => {
    if (closed) return Promise.reject(new GeoWatchError("CLOSED", "producer is closed", { backend: "kafka" }));
    connecting ??= doConnect().catch((err: unknown) => {
      connecting = undefined;
      throw err;
    });
    return connecting;
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
      await connect();
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
            const meta = await producer!.sendBatch({
              acks: -1,
              compression,
              topicMessages: [{ topic, messages: indices.map((i) => toMessage(records[i]!)) }],
            });
            unreachable = undefined;
            const ids = idsOf(meta, topic, indices.length);
            indices.forEach((i, n) => {
              const id = ids[n];
              results[i] = id === undefined ? { ok: true } : { ok: true, id };
            });
          } catch (err) {
            const error = kafkaError(err, `sending to topic "${topic}"`, brokers);
            if (error.code === "NOT_FOUND") known.delete(topic);
            if (error.code === "CONNECT" || error.code === "TIMEOUT") unreachable = error.message;
            for (const i of indices) results[i] = { ok: false, error, retryable: error.retryable };
          }
        }),
      );
      return results;
    },
    async ensureTopic(name: string, o: { create: boolean; partitions?: number }): Promise<void> {
      await connect();
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
      if (closed) return;
      closed = true;
      await connecting?.catch(() => undefined);
      await producer?.disconnect().catch(() => undefined);
      await admin?.disconnect().catch(() => undefined);
    },
  };
}
