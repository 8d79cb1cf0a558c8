import { GeoWatchError, guardConsumer, waitForWake } from "@geowatch/core";
import type { Consumer, InRecord, Logger, ManagedConsumer, Position, ReceiveOptions } from "@geowatch/core";
import type { Admin, Consumer as KConsumer, EachBatchPayload, KafkaMessage } from "kafkajs";
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
  let out: Record<string, string> | undefined;
  // for-in, not Object.entries: most records carry no headers and this runs once per record.
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    // Kafka allows repeated header keys; the last one wins.
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last === undefined) continue;
    out ??= {};
    out[k] = typeof last === "string" ? last : last.toString("utf8");
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/** The offset after `offset` (a decimal string): plain number arithmetic while it is exact, BigInt beyond. */
function nextOffset(offset: string): string {
  const n = Number(offset);
  return n < Number.MAX_SAFE_INTEGER ? String(n + 1) : (BigInt(offset) + 1n).toString();
}

function toRecord(topic: string, stream: string, m: KafkaMessage): InRecord {
  const offset = m.offset;
  const rec: InRecord = {
    // kafkajs' Buffer is a Uint8Array over the fetch response: handed on as it is, no copy and no extra view.
    value: m.value ?? EMPTY,
    topic,
    position: { stream, offset, next: nextOffset(offset) },
  };
  if (m.key) rec.key = m.key.toString("utf8");
  const headers = headersOf(m.headers);
  if (headers) rec.headers = headers;
  const ts = Number(m.timestamp);
  if (Number.isFinite(ts)) rec.timestamp = ts;
  return rec;
}

/** The record after which a batch's trailing control records (transaction markers) are skipped too. */
const skipTo = new WeakMap<InRecord, string>();

/**
 * A Kafka consumer-group member. kafkajs pushes batches; they land in a bounded buffer that `receive`
 * pulls from. A batch is always taken whole; once the buffer reaches its limit, the partitions that
 * delivered are paused until `receive` has drained it to half. Offsets are committed only by `commit`,
 * and only for owned partitions.
 */
export function createKafkaConsumer(options: KafkaOptions, deps: KafkaConsumerDeps = {}): Consumer {
  const opts = parseOptions(options, "consumer");
  const logger = deps.logger;
  const limit = opts.maxBufferedRecords ?? 10_000;
  const { kafka, brokers } = createKafka(opts, logger, deps.secret);

  let consumer: KConsumer | undefined;
  /** The connect in flight, so close can wait for it and disconnect what it opened. */
  let connecting: Promise<void> | undefined;
  /** Set by close: batches kafkajs still delivers are dropped. */
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
  /** A join, then a fetch after it: until both, the consumer's positions are not known. */
  let joined = false;
  let fetchedSinceJoin = false;
  /** Where each owned partition starts (its committed offset, else earliest/latest), looked up once per assignment. */
  let starts: Map<string, bigint | "latest"> | undefined;
  /** One admin client for `caughtUp`, connected on first use and kept until close. */
  let admin: Admin | undefined;
  let checking: Promise<boolean> | undefined;
  let adminFailing = false;
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
    starts = undefined;
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
    for (const m of batch.messages) buffer.push(toRecord(topic, stream, m));
    // lastOffset also covers trailing control records that kafkajs filtered out.
    const last = batch.lastOffset();
    const tail = buffer[buffer.length - 1];
    if (tail && batch.messages.length > 0 && BigInt(tail.position!.next) <= BigInt(last)) skipTo.set(tail, (BigInt(last) + 1n).toString());
    resolveOffset(last);
    if (buffer.length >= limit) pausePartition(stream);
    if (batch.messages.length > 0) wake();
  };

  /**
   * A batch of only control records or aborted messages never reaches eachBatch (kafkajs resolves it
   * itself), so the consumer moves past offsets it never hands out: record that as delivered.
   */
  const onFilteredBatch = (topic: string, partition: number, lastOffset: string) => {
    const stream = streamOf(topic, partition);
    if (rebalancing || !owned.has(stream) || closed) return;
    const end = (BigInt(lastOffset) + 1n).toString();
    for (let i = buffer.length - 1; i >= 0; i--) {
      const r = buffer[i]!;
      if (r.position!.stream !== stream) continue;
      // Records of this partition still wait in the buffer: skip past the markers once the last one is taken.
      skipTo.set(r, end);
      return;
    }
    if (BigInt(delivered.get(stream) ?? "-1") < BigInt(end)) delivered.set(stream, end);
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
    // A short fetch long-poll keeps close() (which waits for the running fetch) and the first caught-up
    // answer quick. Large fetches: a round trip per 1 MB (kafkajs' default per partition) left the pipeline
    // idle between fetches.
    const c = kafka.consumer({
      groupId: opts.groupId!,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: opts.fetchMaxWaitMs ?? 200,
      minBytes: opts.fetchMinBytes ?? 1,
      maxBytes: opts.fetchMaxBytes ?? 52_428_800,
      maxBytesPerPartition: opts.fetchMaxBytesPerPartition ?? 4_194_304,
      retry: { retries: 5 },
    });
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
      joined = true;
      fetchedSinceJoin = false;
      if (!waitFetch || owned.size === 0) ready();
    });
    c.on(c.events.REBALANCING, () => {
      // Records not yet handed out may belong to a partition about to move: drop them, the owner re-reads them.
      rebalancing = true;
      buffer = [];
    });
    c.on(c.events.FETCH, () => {
      lost = undefined;
      if (!joinedOnce) return;
      fetchedSinceJoin = true;
      ready();
    });
    c.on(c.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.batchSize === 0) onFilteredBatch(e.payload.topic, e.payload.partition, e.payload.lastOffset);
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

  // The runtime layer calls connect once at a time (retrying a failure) and nothing after close.
  const connect = async (): Promise<void> => {
    connecting = doConnect();
    try {
      await connecting;
    } catch (err) {
      consumer = undefined;
      throw err;
    } finally {
      connecting = undefined;
    }
  };

  const take = (max: number): InRecord[] => {
    if (rebalancing) return [];
    // splice, not slice: the buffer may hold whole 4 MB fetches (tens of thousands of records), and copying the
    // rest on every take was ~1% of a relay's CPU; V8 trims the front in place.
    const out = buffer.length <= max ? buffer : buffer.splice(0, Math.max(0, max));
    if (out === buffer) buffer = [];
    // Records of one partition sit in offset order: only the last one taken per partition says where it stands.
    const seen = new Set<string>();
    for (let i = out.length - 1; i >= 0; i--) {
      const r = out[i]!;
      const stream = r.position!.stream;
      if (seen.has(stream)) continue;
      seen.add(stream);
      delivered.set(stream, skipTo.get(r) ?? String(r.position!.next));
    }
    // Resume once half the buffer is free, so fetches stay ahead without thrashing pause/resume.
    if (buffer.length <= limit / 2) resumeAll();
    return out;
  };

  const adminClient = async (): Promise<Admin> => {
    if (admin) return admin;
    const a = kafka.admin();
    await a.connect();
    // close waits for a check in flight, then disconnects this client.
    admin = a;
    return a;
  };

  /** Start offsets of owned partitions without a delivered record: committed, else earliest or latest. */
  const startsOf = async (a: Admin, streams: string[], lows: Map<string, bigint>): Promise<Map<string, bigint | "latest">> => {
    const out = new Map<string, bigint | "latest">();
    const topics = [...new Set(streams.map((s) => parseStream(s)!.topic))];
    const res = await a.fetchOffsets({ groupId: opts.groupId!, topics });
    const committedAt = new Map<string, bigint>();
    for (const t of res) for (const p of t.partitions) committedAt.set(streamOf(t.topic, p.partition), BigInt(p.offset));
    for (const s of streams) {
      const c = committedAt.get(s) ?? -1n;
      // No commit (or one the log no longer holds): kafkajs starts where `fromBeginning` says.
      if (c >= 0n && c >= (lows.get(s) ?? 0n)) out.set(s, c);
      else out.set(s, opts.fromBeginning ? (lows.get(s) ?? 0n) : "latest");
    }
    return out;
  };

  const checkCaughtUp = async (): Promise<boolean> => {
    if (!consumer || !joined || rebalancing || lost !== undefined || buffer.length > 0) return false;
    const streams = [...owned];
    // A member without partitions (more members than partitions) has nothing to read.
    if (streams.length === 0) return true;
    // Before the first fetch after a join kafkajs has not resolved where it reads from.
    if (!fetchedSinceJoin) return false;
    const generation = owned;
    try {
      const a = await adminClient();
      const topics = [...new Set(streams.map((s) => parseStream(s)!.topic))];
      const high = new Map<string, bigint>();
      const low = new Map<string, bigint>();
      for (const [i, offsets] of (await Promise.all(topics.map((t) => a.fetchTopicOffsets(t)))).entries()) {
        for (const p of offsets) {
          high.set(streamOf(topics[i]!, p.partition), BigInt(p.high));
          low.set(streamOf(topics[i]!, p.partition), BigInt(p.low));
        }
      }
      adminFailing = false;
      const unknown = streams.filter((s) => !delivered.has(s) && !starts?.has(s));
      if (unknown.length > 0) {
        const found = await startsOf(a, unknown, low);
        // A rebalance while we looked: the answer belongs to the old assignment.
        if (owned !== generation) return false;
        starts = new Map([...(starts ?? []), ...found]);
      }
      if (owned !== generation || rebalancing || buffer.length > 0) return false;
      for (const s of streams) {
        const hw = high.get(s);
        if (hw === undefined) return false;
        const d = delivered.get(s);
        const start = starts?.get(s);
        // With `fromBeginning: false` and no commit the start is the end: nothing was there to read.
        const at = d !== undefined ? BigInt(d) : start === "latest" ? hw : start;
        if (at === undefined || at < hw) return false;
      }
      return true;
    } catch (err) {
      // Not known to be caught up; the next check asks again with a fresh admin client. Logged once per outage.
      if (!adminFailing) logger?.warn("kafka: could not read the partitions' end offsets", { error: kafkaError(err, "checking lag", brokers).message });
      adminFailing = true;
      const stale = admin;
      admin = undefined;
      await stale?.disconnect().catch(() => undefined);
      return false;
    }
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
      if (failure) throw failure;
      if (buffer.length > 0) return take(max);
      if (o.waitMs <= 0 || o.signal?.aborted) return [];
      await waitForWake(o.waitMs, o.signal, waiters);
      if (failure) throw failure;
      return take(max);
    },
    /**
     * True when the group has assigned this member its partitions (or none), nothing is buffered, and every
     * assigned partition's next offset to consume has reached its high watermark. One admin offsets lookup per
     * assigned topic per call (plus one committed-offsets lookup after each join), on one kept admin client.
     */
    async caughtUp(): Promise<boolean> {
      if (failure) throw failure;
      checking ??= checkCaughtUp().finally(() => (checking = undefined));
      return checking;
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
      closed = true;
      buffer = [];
      wake();
      await connecting?.catch(() => undefined);
      const c = consumer;
      consumer = undefined;
      owned = new Set();
      await checking?.catch(() => undefined);
      const a = admin;
      admin = undefined;
      await Promise.all([c?.disconnect().catch(() => undefined), a?.disconnect().catch(() => undefined)]);
    },
  };
}

/**
 * A Kafka consumer wrapped in core's runtime layer (connect once with retries, refuse calls after close, close
 * once), for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function kafkaConsumer(options: KafkaOptions, deps: KafkaConsumerDeps = {}): ManagedConsumer {
  return guardConsumer(createKafkaConsumer(options, deps), { name: "kafka consumer", backend: "kafka", ...(deps.logger && { logger: deps.logger }) });
}
