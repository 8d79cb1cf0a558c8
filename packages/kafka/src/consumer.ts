import { GeoWatchError, waitForWake } from "@geowatch/core";
import type { Consumer, InRecord, Logger, Position, ReceiveOptions } from "@geowatch/core";
import type { Consumer as KConsumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import { createKafka, isRebalanceError, kafkaError } from "./client.js";
import { parseOptions, topicName } from "./options.js";
import type { KafkaOptions } from "./options.js";

/** Extras a factory may pass: the runtime's logger and secret reader (for the SASL env fallbacks). */
export interface KafkaConsumerDeps {
  logger?: Logger;
  secret?: (ref: string) => string | undefined;
}

const streamOf = (topic: string, partition: number) => `${topic}:${partition}`;

function parseStream(stream: string): { topic: string; partition: number } | undefined {
  const i = stream.lastIndexOf(":");
  const partition = Number(stream.slice(i + 1));
  if (i <= 0 || !Number.isInteger(partition)) return undefined;
  return { topic: stream.slice(0, i), partition };
}

function headersOf(h: KafkaMessage["headers"]): Record<string, string> | undefined {
  if (!h) return undefined;
  const out: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    // Kafka allows repeated header keys; the last one wins.
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last === undefined) continue;
    out[k] = typeof last === "string" ? last : last.toString("utf8");
    any = true;
  }
  return any ? out : undefined;
}

function toRecord(topic: string, partition: number, m: KafkaMessage): InRecord {
  const offset = m.offset;
  const rec: InRecord = {
    value: m.value ? new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength) : new Uint8Array(0),
    topic,
    position: { stream: streamOf(topic, partition), offset, next: (BigInt(offset) + 1n).toString() },
  };
  if (m.key) rec.key = m.key.toString("utf8");
  const headers = headersOf(m.headers);
  if (headers) rec.headers = headers;
  const ts = Number(m.timestamp);
  if (Number.isFinite(ts)) rec.timestamp = ts;
  return rec;
}

/**
 * A Kafka consumer-group member. kafkajs pushes batches; they land in a bounded buffer that `receive`
 * pulls from. A batch is always taken whole; once the buffer reaches its limit, the partitions that
 * delivered are paused until `receive` has drained it to half. Offsets are committed only by `commit`,
 * and only for owned partitions.
 */
export function kafkaConsumer(options: KafkaOptions, deps: KafkaConsumerDeps = {}): Consumer {
  const opts = parseOptions(options, "consumer");
  const logger = deps.logger;
  const limit = opts.maxBufferedRecords ?? 1000;
  const { kafka, brokers } = createKafka(opts, logger, deps.secret);

  let consumer: KConsumer | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let failure: GeoWatchError | undefined;
  /** Why kafkajs is restarting the consumer (a crash it recovers from), until the next join or fetch. */
  let lost: string | undefined;
  let buffer: InRecord[] = [];
  /** Between kafkajs' REBALANCING and the next GROUP_JOIN: partitions may be revoked, so hold everything back. */
  let rebalancing = false;
  /** Partitions of the current assignment, as `topic:partition`. */
  let owned = new Set<string>();
  /** Partitions we paused for backpressure. */
  const paused = new Set<string>();
  /** Per owned partition, the offset after the last record handed to `receive`'s caller. */
  const delivered = new Map<string, string>();
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };

  const pausePartition = (stream: string) => {
    const tp = parseStream(stream);
    if (!tp || !consumer) return;
    consumer.pause([{ topic: tp.topic, partitions: [tp.partition] }]);
    paused.add(stream);
  };

  const resumeAll = () => {
    if (!consumer || paused.size === 0) return;
    for (const stream of paused) {
      const tp = parseStream(stream);
      if (tp) consumer.resume([{ topic: tp.topic, partitions: [tp.partition] }]);
    }
    paused.clear();
  };

  const onJoin = (assignment: Record<string, number[]>) => {
    const next = new Set<string>();
    for (const [topic, partitions] of Object.entries(assignment)) for (const p of partitions) next.add(streamOf(topic, p));
    // kafkajs re-reads committed offsets after every join, so buffered records would come again: drop them all.
    buffer = [];
    rebalancing = false;
    resumeAll();
    for (const stream of [...delivered.keys()]) {
      if (!next.has(stream)) {
        delivered.delete(stream);
        continue;
      }
      // Still ours: continue after what the caller already holds instead of redelivering it.
      const tp = parseStream(stream)!;
      try {
        consumer?.seek({ topic: tp.topic, partition: tp.partition, offset: delivered.get(stream)! });
      } catch (err) {
        logger?.warn("kafka: could not seek past delivered records; they may come again", { stream, error: String(err) });
      }
    }
    const revoked = [...owned].filter((s) => !next.has(s));
    owned = next;
    logger?.info("kafka: joined group", { groupId: opts.groupId, partitions: [...next], revoked });
  };

  const eachBatch = async ({ batch, resolveOffset, isRunning, isStale }: EachBatchPayload) => {
    const { topic, partition } = batch;
    const stream = streamOf(topic, partition);
    if (!isRunning() || isStale() || rebalancing || !owned.has(stream) || closed) return;
    // The whole batch goes into the buffer even past the limit: kafkajs has already fetched and decoded it,
    // and leaving the rest for a re-fetch after `resume` decoded most records many times over (a fetch
    // returns up to 1 MB per partition). Past the limit the partition pauses, so the buffer holds at most
    // `limit` plus one fetched batch per partition.
    for (const m of batch.messages) buffer.push(toRecord(topic, partition, m));
    // lastOffset also covers trailing control records that kafkajs filtered out.
    resolveOffset(batch.lastOffset());
    if (buffer.length >= limit) pausePartition(stream);
    if (batch.messages.length > 0) wake();
  };

  const resolveTopics = async (): Promise<string[]> => {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const names = opts.topics ?? (opts.topic === undefined ? undefined : [opts.topic]);
      if (names) {
        const wanted = names.map((t) => topicName(opts, t));
        const missing = wanted.filter((t) => !existing.has(t));
        if (missing.length > 0) {
          throw new GeoWatchError(
            "NOT_FOUND",
            `topic ${missing.map((t) => `"${t}"`).join(", ")} does not exist on ${brokers.join(",")} (auto-creation is off; create it or set topic_check on a producer)`,
            { backend: "kafka" },
          );
        }
        return wanted;
      }
      const prefix = opts.topicPrefix ?? "";
      const re = new RegExp(opts.topicPattern!);
      const matched = [...existing].filter((t) => t.startsWith(prefix) && re.test(t.slice(prefix.length))).sort();
      if (matched.length === 0) {
        throw new GeoWatchError("NOT_FOUND", `no topic matches topicPattern /${opts.topicPattern}/ (prefix "${prefix}") on ${brokers.join(",")}`, {
          backend: "kafka",
        });
      }
      return matched;
    } catch (err) {
      throw kafkaError(err, "listing topics", brokers);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };

  const doConnect = async () => {
    const topics = await resolveTopics();
    // A short fetch long-poll keeps close() (which waits for the running fetch) quick.
    const c = kafka.consumer({ groupId: opts.groupId!, allowAutoTopicCreation: false, maxWaitTimeInMs: 1000, retry: { retries: 5 } });
    consumer = c;
    // "Latest" is resolved on the first fetch after a join; until then records sent now would be skipped.
    // So connect waits for that fetch (or for a join without partitions), or just the join with fromBeginning.
    const waitFetch = !(opts.fromBeginning ?? false);
    let ready: () => void = () => undefined;
    const firstReady = new Promise<void>((resolve) => (ready = resolve));
    let joinedOnce = false;
    c.on(c.events.GROUP_JOIN, (e) => {
      lost = undefined;
      onJoin(e.payload.memberAssignment);
      joinedOnce = true;
      if (!waitFetch || owned.size === 0) ready();
    });
    c.on(c.events.REBALANCING, () => {
      // Records not yet handed out may belong to a partition about to move: drop them, the owner re-reads them.
      rebalancing = true;
      buffer = [];
    });
    c.on(c.events.FETCH, () => {
      lost = undefined;
      if (joinedOnce) ready();
    });
    c.on(c.events.CRASH, (e) => {
      const err = e.payload.error;
      if (e.payload.restart) {
        lost = err.message;
        logger?.warn("kafka: consumer crashed, kafkajs restarts it", { error: err.message });
        return;
      }
      failure = kafkaError(err, "consuming", brokers);
      wake();
    });
    try {
      await c.connect();
      await c.subscribe({ topics, fromBeginning: opts.fromBeginning ?? false });
      await c.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch });
    } catch (err) {
      await c.disconnect().catch(() => undefined);
      throw kafkaError(err, "connecting the consumer", brokers);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([firstReady, new Promise<void>((r) => (timer = setTimeout(r, 30_000)))]);
    clearTimeout(timer);
  };

  const connect = (): Promise<void> => {
    if (closed) return Promise.reject(new GeoWatchError("CLOSED", "consumer is closed", { backend: "kafka" }));
    connecting ??= doConnect().catch((err: unknown) => {
      connecting = undefined;
      consumer = undefined;
      throw err;
    });
    return connecting;
  };

  const take = (max: number): InRecord[] => {
    if (rebalancing) return [];
    const out = buffer.splice(0, Math.max(0, max));
    for (const r of out) delivered.set(r.position!.stream, String(r.position!.next));
    // Resume once half the buffer is free, so fetches stay ahead without thrashing pause/resume.
    if (buffer.length <= limit / 2) resumeAll();
    return out;
  };

  return {
    capabilities: { ordering: "stream", batching: true },
    connect,
    health() {
      if (failure) return { ok: false, error: failure.message };
      if (lost !== undefined) return { ok: false, error: `[geowatch] [kafka] consumer lost ${brokers.join(",")}, rejoining the group: ${lost}` };
      return { ok: true };
    },
    async receive(max: number, o: ReceiveOptions): Promise<InRecord[]> {
      await connect();
      if (failure) throw failure;
      if (buffer.length > 0) return take(max);
      if (o.waitMs <= 0 || o.signal?.aborted) return [];
      await waitForWake(o.waitMs, o.signal, waiters);
      if (failure) throw failure;
      return take(max);
    },
    async commit(positions: Position[]): Promise<void> {
      if (!consumer || positions.length === 0) return;
      const offsets: Array<{ topic: string; partition: number; offset: string }> = [];
      for (const p of positions) {
        const tp = parseStream(p.stream);
        // A partition we no longer own belongs to another member now; its commit would be rejected or clobber theirs.
        if (!tp || !owned.has(p.stream)) {
          logger?.debug("kafka: skipping commit for a partition not owned", { stream: p.stream });
          continue;
        }
        offsets.push({ topic: tp.topic, partition: tp.partition, offset: String(p.next) });
      }
      if (offsets.length === 0) return;
      try {
        await consumer.commitOffsets(offsets);
      } catch (err) {
        if (isRebalanceError(err)) {
          // The group moved on; whoever owns these partitions now resumes from the last commit (at-least-once).
          logger?.warn("kafka: commit dropped during a rebalance", { offsets });
          return;
        }
        throw kafkaError(err, "committing offsets", brokers);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      buffer = [];
      wake();
      await connecting?.catch(() => undefined);
      const c = consumer;
      consumer = undefined;
      owned = new Set();
      await c?.disconnect().catch(() => undefined);
    },
  };
}
