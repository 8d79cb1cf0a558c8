/**
 * Geofence state in a compacted Kafka changelog topic (the Kafka Streams approach). Each commit writes the
 * batch's changed tracks to the changelog, keyed by track, to the partition of the input partition they
 * came from (so the changelog has the input topic's partition count, and is created so when missing). The
 * process keeps the states of the streams it reads in memory; before it (re)starts reading an input
 * partition it replays that changelog partition to its end. Replays keep, per track, the state at the
 * latest input offset: a late write of a process that lost the partition never moves a track back.
 */
import { randomUUID } from "node:crypto";
import { GeoWatchError } from "@geowatch/core";
import type { Logger } from "@geowatch/core";
import type { Admin, Consumer, Kafka as KafkaClient, KafkaMessage, Producer } from "kafkajs";
import { compareOffsets } from "./offsets.js";
import type { CoveredPositions, GeofenceState, TrackState } from "./state.js";
import { onlyPosition } from "./state.js";

export interface KafkaStateOptions {
  /** Bootstrap brokers (`host:port`). */
  brokers: string[];
  /** The changelog topic (compacted), created with the input topic's partition count when missing. */
  topic: string;
  /** Client id. Default `geowatch-geofence-state`. */
  clientId?: string;
  /** Longest a replay of changelog partitions may take before the batch fails (and is retried). Default 120000. */
  restoreTimeoutMs?: number;
}

/** Where an input stream (`topic:partition`) goes in the changelog. */
function parseStream(stream: string): { topic: string; partition: number } | undefined {
  const i = stream.lastIndexOf(":");
  const partition = Number(stream.slice(i + 1));
  if (i <= 0 || !Number.isInteger(partition) || partition < 0) return undefined;
  return { topic: stream.slice(0, i), partition };
}

interface Stored {
  f: string[];
  x: number | null;
  y: number | null;
  c?: CoveredPositions;
}

/** Whether `next` may replace `prev`: not when both cover the same stream and `next` is at an earlier offset. */
function newer(prev: TrackState | undefined, next: TrackState): boolean {
  if (prev === undefined) return true;
  const a = onlyPosition(prev), b = onlyPosition(next);
  if (a === undefined || b === undefined || a.stream !== b.stream) return true;
  const c = compareOffsets(b.offset, a.offset);
  return c === undefined || c >= 0;
}

/** Connects a producer and an admin client to the changelog's cluster; loads `kafkajs` only here. */
export async function kafkaGeofenceState(options: KafkaStateOptions, logger?: Logger): Promise<GeofenceState & { readonly size: number; readonly restores: number }> {
  const topic = options.topic;
  const timeoutMs = options.restoreTimeoutMs ?? 120_000;
  let kafka: KafkaClient;
  try {
    // With @geowatch/kafka installed (the usual case: the input is Kafka), kafkajs 2.2.4 gets its fixes before it
    // loads (among them the request queue's negative timer behind TimeoutNegativeWarning); without it, as it is.
    const gk = (await import("@geowatch/kafka").catch(() => undefined)) as { fixKafkajs?: (logger?: Logger) => void } | undefined;
    gk?.fixKafkajs?.(logger);
    const mod = (await import("kafkajs")) as unknown as { default?: typeof import("kafkajs"); Kafka?: typeof import("kafkajs").Kafka };
    const k = mod.default ?? (mod as typeof import("kafkajs"));
    kafka = new k.Kafka({ clientId: options.clientId ?? "geowatch-geofence-state", brokers: options.brokers, logLevel: k.logLevel.NOTHING });
  } catch (err) {
    throw new GeoWatchError("CONFIG", "the kafka geofence state needs the `kafkajs` package: npm i kafkajs", { backend: "spatial", cause: err });
  }
  const where = `changelog "${topic}" on ${options.brokers.join(",")}`;
  const fail = (what: string, err: unknown): GeoWatchError =>
    err instanceof GeoWatchError ? err : new GeoWatchError("STORE", `cannot ${what} geofence state ${where}: ${(err as Error).message}`, { backend: "spatial", cause: err, retryable: true });
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const admin: Admin = kafka.admin();
  try {
    await Promise.all([producer.connect(), admin.connect()]);
  } catch (err) {
    await Promise.all([producer.disconnect().catch(() => undefined), admin.disconnect().catch(() => undefined)]);
    throw fail("connect to", err);
  }
  const states = new Map<string, TrackState>();
  let partitions: number | undefined;
  let closed = false;
  let restoreCount = 0;

  /** The changelog's partition count, creating the topic (compacted, `partitionsFor` partitions) when missing. */
  const ensureTopic = async (inputTopic: string): Promise<number> => {
    if (partitions !== undefined) return partitions;
    const count = async (t: string): Promise<number | undefined> => {
      try {
        const md = await admin.fetchTopicMetadata({ topics: [t] });
        return md.topics[0]?.partitions.length;
      } catch (err) {
        if ((err as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION") return undefined;
        throw err;
      }
    };
    let n = await count(topic);
    if (n === undefined) {
      const want = await count(inputTopic);
      if (want === undefined) throw new GeoWatchError("CONFIG", `input topic "${inputTopic}" not found while creating ${where}`, { backend: "spatial" });
      // Loses harmlessly to another process creating it at the same moment (createTopics answers false).
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: want, configEntries: [{ name: "cleanup.policy", value: "compact" }, { name: "min.cleanable.dirty.ratio", value: "0.1" }, { name: "segment.bytes", value: String(64 << 20) }] }],
      });
      logger?.info("geofence kafka state: created changelog", { topic, partitions: want });
      n = await count(topic);
      if (n === undefined) throw new GeoWatchError("STORE", `${where} was created but is not visible yet`, { backend: "spatial", retryable: true });
    }
    partitions = n;
    return n;
  };

  const partitionOf = async (stream: string): Promise<number> => {
    const tp = parseStream(stream);
    if (tp === undefined) throw new GeoWatchError("CONFIG", `geofence kafka state: input stream ${JSON.stringify(stream)} is not a Kafka partition (topic:partition)`, { backend: "spatial" });
    const n = await ensureTopic(tp.topic);
    if (tp.partition >= n) {
      throw new GeoWatchError("CONFIG", `${where} has ${n} partitions; input partition ${stream} needs at least ${tp.partition + 1} (the changelog follows the input's partitioning)`, { backend: "spatial" });
    }
    return tp.partition;
  };

  const decode = (m: KafkaMessage): TrackState | null => {
    if (m.value === null) return null;
    const s = JSON.parse(m.value.toString("utf8")) as Stored;
    return { fences: s.f, x: s.x ?? NaN, y: s.y ?? NaN, covered: s.c };
  };

  /** Replays changelog partitions to their current end, keeping only the given streams' tracks. */
  const replay = async (wanted: Map<number, Set<string>>): Promise<number> => {
    const offsets = await admin.fetchTopicOffsets(topic);
    const end = new Map<number, bigint>();
    for (const p of offsets) if (wanted.has(p.partition) && BigInt(p.high) > BigInt(p.low)) end.set(p.partition, BigInt(p.high));
    if (end.size === 0) return 0;
    let applied = 0;
    const consumer: Consumer = kafka.consumer({ groupId: `${topic}.restore.${randomUUID()}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 << 20, retry: { retries: 3 } });
    const reached = new Map<number, bigint>();
    let finish!: () => void;
    let abort!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      finish = res;
      abort = rej;
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      consumer.on(consumer.events.CRASH, (e) => {
        if (!e.payload.restart) abort(e.payload.error);
      });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const p = batch.partition;
          const stop = end.get(p);
          if (stop === undefined || (reached.get(p) ?? -1n) >= stop) {
            consumer.pause([{ topic, partitions: [p] }]);
            return;
          }
          const streams = wanted.get(p)!;
          for (const m of batch.messages) {
            const track = m.key?.toString("utf8");
            if (track === undefined) continue;
            const st = decode(m);
            if (st === null) {
              if (streams.has(onlyPosition(states.get(track) ?? { fences: [], x: NaN, y: NaN })?.stream ?? "")) states.delete(track);
              continue;
            }
            const at = onlyPosition(st);
            if (at === undefined || !streams.has(at.stream)) continue;
            if (newer(states.get(track), st)) {
              states.set(track, st);
              applied++;
            }
          }
          reached.set(p, BigInt(batch.lastOffset()) + 1n);
          if (reached.get(p)! >= stop) {
            consumer.pause([{ topic, partitions: [p] }]);
            if ([...end].every(([q, e]) => (reached.get(q) ?? -1n) >= e)) finish();
          }
        },
      });
      await Promise.race([done, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`replay did not reach the end in ${timeoutMs} ms`)), timeoutMs)))]);
      return applied;
    } finally {
      clearTimeout(timer);
      await consumer.disconnect().catch(() => undefined);
    }
  };

  const state: GeofenceState & { readonly size: number; readonly restores: number } = {
    partitioned: true,
    get restores() {
      return restoreCount;
    },
    get size() {
      return states.size;
    },
    get: (tracks) => tracks.map((t) => states.get(t)),
    async set(entries) {
      if (closed) throw new GeoWatchError("CLOSED", `geofence state ${where} is closed`, { backend: "spatial" });
      if (entries.length === 0) return;
      const messages: Array<{ key: string; value: string; partition: number }> = [];
      try {
        for (const [track, s] of entries) {
          const at = onlyPosition(s);
          const partition = at === undefined ? 0 : await partitionOf(at.stream);
          const stored: Stored = { f: s.fences, x: Number.isFinite(s.x) ? s.x : null, y: Number.isFinite(s.y) ? s.y : null };
          if (s.covered !== undefined) stored.c = s.covered;
          messages.push({ key: track, value: JSON.stringify(stored), partition });
        }
        await producer.send({ topic, acks: -1, messages });
      } catch (err) {
        throw fail("write", err);
      }
      for (const [track, s] of entries) if (newer(states.get(track), s)) states.set(track, s);
    },
    async restore(streams) {
      if (closed) throw new GeoWatchError("CLOSED", `geofence state ${where} is closed`, { backend: "spatial" });
      const wanted = new Map<number, Set<string>>();
      try {
        for (const s of streams) {
          const p = await partitionOf(s);
          let set = wanted.get(p);
          if (set === undefined) wanted.set(p, (set = new Set()));
          set.add(s);
        }
        // What this process held of these streams may be stale: the changelog is the truth now.
        const gone = new Set(streams);
        for (const [track, st] of states) if (gone.has(onlyPosition(st)?.stream ?? "")) states.delete(track);
        const t0 = Date.now();
        const applied = await replay(wanted);
        restoreCount++;
        logger?.info("geofence kafka state: restored", { topic, streams: [...streams], tracks: applied, ms: Date.now() - t0 });
      } catch (err) {
        throw fail("restore", err);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      states.clear();
      await Promise.all([producer.disconnect().catch(() => undefined), admin.disconnect().catch(() => undefined)]);
    },
  };
  return state;
}
