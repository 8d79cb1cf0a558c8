// A plain kafkajs peer for the system tests: creates topics, produces the input, reads the output back,
// and watches a group's committed offsets. The code under test (`geowatch run`) never shares it.
import { fixKafkajs } from "@geowatch/kafka";
import type { Admin } from "kafkajs";
import { requireServer, sleep } from "./helpers.js";

// kafkajs 2.2.4 with the backend's fixes, loaded after them (its request queue's negative timer otherwise prints
// TimeoutNegativeWarning in this process).
fixKafkajs();
const { default: kafkajs } = await import("kafkajs");
const { Kafka, logLevel } = kafkajs;

export function kafka() {
  return new Kafka({ clientId: "geowatch-system-test", brokers: requireServer("GEOWATCH_KAFKA_BROKERS").split(","), logLevel: logLevel.NOTHING });
}

export async function withAdmin<T>(fn: (a: Admin) => Promise<T>): Promise<T> {
  const a = kafka().admin();
  try {
    await a.connect();
  } catch (err) {
    throw new Error(`cannot reach Kafka at ${requireServer("GEOWATCH_KAFKA_BROKERS")} (${(err as Error).message}); start it: bash .ci/servers/kafka.sh start`);
  }
  try {
    return await fn(a);
  } finally {
    await a.disconnect().catch(() => undefined);
  }
}

export async function createTopics(topics: string[], partitions: number): Promise<void> {
  await withAdmin((a) => a.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: partitions })) }));
}

export async function deleteTopics(topics: string[]): Promise<void> {
  await withAdmin((a) => a.deleteTopics({ topics })).catch(() => undefined);
}

/** `{"id":i,...}` for i in [from, to), keyed `v<i % keys>`, in batches; `pace` ms between batches. */
export async function produce(topic: string, from: number, to: number, opts: { batch?: number; keys?: number; paceMs?: number } = {}): Promise<void> {
  const p = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  try {
    const batch = opts.batch ?? 2000;
    const pad = "x".repeat(60);
    for (let i = from; i < to; i += batch) {
      const messages = [];
      for (let j = i; j < Math.min(to, i + batch); j++) messages.push({ key: `v${j % (opts.keys ?? 1000)}`, value: `{"id":${j},"pad":"${pad}"}` });
      await p.send({ topic, acks: -1, messages });
      if (opts.paceMs) await sleep(opts.paceMs);
    }
  } finally {
    await p.disconnect();
  }
}

/**
 * Produces ids [0, n) in paced batches and keeps going through a broker outage: a batch that fails is sent
 * again (same ids) until it succeeds, so every id is written at least once. Returns how many batch sends failed.
 */
export async function produceThrough(topic: string, n: number, opts: { batch: number; paceMs: number; onProgress?: (sent: number) => void }): Promise<number> {
  const p = kafka().producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 2, initialRetryTime: 200 } });
  await p.connect();
  let failures = 0;
  try {
    const pad = "x".repeat(60);
    for (let i = 0; i < n; i += opts.batch) {
      const messages = [];
      for (let j = i; j < Math.min(n, i + opts.batch); j++) messages.push({ key: `v${j % 1000}`, value: `{"id":${j},"pad":"${pad}"}` });
      for (;;) {
        try {
          await p.send({ topic, acks: -1, messages });
          break;
        } catch {
          failures++;
          await sleep(500);
        }
      }
      opts.onProgress?.(Math.min(n, i + opts.batch));
      await sleep(opts.paceMs);
    }
  } finally {
    await p.disconnect().catch(() => undefined);
  }
  return failures;
}

/** Sum of the high watermarks of a topic (messages written, for a topic never truncated). */
export async function endOffsets(topic: string): Promise<number> {
  return withAdmin(async (a) => (await a.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0));
}

/** Sum of a group's committed offsets on a topic (partitions without a commit count 0). */
export async function committed(groupId: string, topic: string): Promise<number> {
  return withAdmin(async (a) => {
    const [t] = await a.fetchOffsets({ groupId, topics: [topic] });
    return (t?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
  });
}

/** Reads a whole topic from the beginning (a fresh group) and returns the `id` of every message. */
export async function readAllIds(topic: string, timeoutMs = 60_000): Promise<number[]> {
  const total = await endOffsets(topic);
  const ids: number[] = [];
  const c = kafka().consumer({ groupId: `verify-${topic}-${Date.now()}`, maxWaitTimeInMs: 500 });
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  await c.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        seen++;
        ids.push((JSON.parse(m.value!.toString("utf8")) as { id: number }).id);
      }
    },
  });
  const deadline = Date.now() + timeoutMs;
  while (seen < total && Date.now() < deadline) await sleep(200);
  await c.disconnect();
  if (seen < total) throw new Error(`read ${seen} of ${total} messages of ${topic} in ${timeoutMs} ms`);
  return ids;
}

/** Counts of ids: which of [0, n) are missing, how many extra copies. */
export function tally(ids: number[], n: number): { distinct: number; duplicates: number; missing: number[]; foreign: number } {
  const seen = new Uint32Array(n);
  let foreign = 0;
  for (const id of ids) {
    if (Number.isInteger(id) && id >= 0 && id < n) seen[id]!++;
    else foreign++;
  }
  const missing: number[] = [];
  let distinct = 0;
  for (let i = 0; i < n; i++) {
    if (seen[i] === 0) missing.push(i);
    else distinct++;
  }
  return { distinct, duplicates: ids.length - foreign - distinct, missing, foreign };
}
