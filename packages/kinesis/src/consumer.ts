import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from "@aws-sdk/client-kinesis";
import type { GetShardIteratorCommandInput, KinesisClient, Shard } from "@aws-sdk/client-kinesis";
import { GeoWatchError, backoffMs, parseOptions, reasonOf, waitForWake } from "@geowatch/core";
import type { Consumer, InRecord, Logger, Position, ReceiveOptions } from "@geowatch/core";
import { SqliteCoordinator } from "./checkpoints.js";
import type { Coordinator, ShardInfo } from "./checkpoints.js";
import { BACKEND, awsError, dynamoClient, errorName, is5xx, isNetworkError, kinesisClient } from "./client.js";
import { DynamoCoordinator } from "./leases.js";
import { checkConsumer, kinesisConsumerSchema, timestampOf } from "./options.js";
import type { KinesisConsumerOptions } from "./options.js";

/** Extras a factory may pass: the runtime's logger, or a client to use instead of one built from options. */
export interface KinesisConsumerDeps {
  logger?: Logger;
  /** Injected Kinesis client (tests, custom credentials); the consumer does not destroy it on close. */
  client?: KinesisClient;
}

/** One shard this process reads. */
interface Reader {
  shardId: string;
  iterator: string | undefined;
  /** Where it resumes when there is no iterator: after this sequence number (undefined: the start position). */
  resumeAfter: string | undefined;
  /** The start position when nothing of this shard was read or checkpointed. */
  startType: "LATEST" | "TRIM_HORIZON" | "AT_TIMESTAMP" | "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER";
  /** Last sequence number put into the buffer. */
  lastRead: string | undefined;
  /** Last sequence number checkpointed. */
  committed: string | undefined;
  behindMs: number | undefined;
  /** GetRecords answered with no next iterator: the shard is closed and read to its end. */
  ended: boolean;
  finishing: boolean;
  nextCallAt: number;
  attempt: number;
  calling: boolean;
}

const MIN_CALL_GAP_MS = 200; // GetRecords: 5 calls per second per shard
const seqGreater = (a: string, b: string | undefined) => b === undefined || BigInt(a) > BigInt(b);

/**
 * Reads every shard of a stream (or the one `shardId`), follows resharding (a child shard starts only
 * once its parents are checkpointed as finished) and checkpoints a shard's sequence number only through
 * `commit`, i.e. after the broker acknowledged the records up to it. Checkpoints live in SQLite (one
 * process) or in a DynamoDB lease table that splits the shards between processes.
 */
export function kinesisConsumer(options: KinesisConsumerOptions, deps: KinesisConsumerDeps = {}): Consumer {
  const opts = parseOptions(kinesisConsumerSchema, options, "consumer", BACKEND);
  const problems = checkConsumer(opts);
  if (problems.length > 0) {
    throw new GeoWatchError("CONFIG", `invalid consumer options: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, { backend: BACKEND, path: problems[0]!.path });
  }
  const logger = deps.logger;
  const stream = opts.stream;
  const application = opts.application ?? "geowatch";
  const startType = opts.shardIteratorType ?? "LATEST";
  const limit = opts.maxBufferedRecords ?? 10_000;
  const idleMs = opts.idleTimeBetweenReadsMs ?? 1000;
  const syncMs = opts.shardSyncMs ?? 10_000;
  const workerId = opts.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;

  let client: KinesisClient | undefined;
  let coordinator: Coordinator | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let synced = false;
  let buffer: InRecord[] = [];
  const readers = new Map<string, Reader>();
  let finished = new Set<string>();
  let nextSyncAt = 0;
  let syncAttempt = 0;
  /** Why the last Kinesis call failed, until one succeeds (health and /ready). */
  let problem: string | undefined;
  let pumping: Promise<void> | undefined;
  const calls = new Set<Promise<void>>();
  const waiters = new Set<() => void>();
  const pumpWaiters = new Set<() => void>();
  const stop = new AbortController();
  const wake = (set: Set<() => void>) => {
    for (const w of [...set]) w();
  };

  const fail = (err: unknown, what: string) => {
    const e = awsError(err, what);
    // Throttling is not an outage: only a lost endpoint, server errors, a missing stream or refused credentials make the node not ready.
    if (isNetworkError(err) || is5xx(err) || e.code === "NOT_FOUND" || e.code === "AUTH") problem = e.message;
    return e;
  };

  const listShards = async (): Promise<ShardInfo[]> => {
    const all: Shard[] = [];
    let token: string | undefined;
    do {
      const r = await client!.send(new ListShardsCommand(token ? { NextToken: token } : { StreamName: stream }));
      all.push(...(r.Shards ?? []));
      token = r.NextToken;
    } while (token);
    let shards = all.map((s) => ({ id: s.ShardId!, parents: [s.ParentShardId, s.AdjacentParentShardId].filter((p): p is string => !!p) }));
    if (opts.shardId !== undefined) {
      shards = shards.filter((s) => s.id === opts.shardId).map((s) => ({ id: s.id, parents: [] }));
      if (shards.length === 0) throw new GeoWatchError("NOT_FOUND", `shard "${opts.shardId}" is not in stream "${stream}"`, { backend: BACKEND, path: "shardId" });
    }
    return shards;
  };

  const iteratorFor = async (r: Reader): Promise<string | undefined> => {
    const input: GetShardIteratorCommandInput = { StreamName: stream, ShardId: r.shardId, ShardIteratorType: r.startType };
    if (r.resumeAfter !== undefined) {
      input.ShardIteratorType = "AFTER_SEQUENCE_NUMBER";
      input.StartingSequenceNumber = r.resumeAfter;
    } else if (r.startType === "AT_TIMESTAMP") {
      input.Timestamp = timestampOf(opts.startTimestamp!);
    } else if (r.startType === "AT_SEQUENCE_NUMBER" || r.startType === "AFTER_SEQUENCE_NUMBER") {
      input.StartingSequenceNumber = opts.startSequenceNumber;
    }
    const res = await client!.send(new GetShardIteratorCommand(input));
    return res.ShardIterator;
  };

  const dropReader = (shardId: string, why: string) => {
    if (!readers.delete(shardId)) return;
    const before = buffer.length;
    buffer = buffer.filter((r) => r.position!.stream !== shardId);
    logger?.info("kinesis: stopped reading shard", { stream, shard: shardId, why, dropped: before - buffer.length });
  };

  const startReader = async (shardId: string, parents: string[], checkpoint: string | undefined) => {
    // A child of a shard this application read to its end continues right after it: from its first record.
    const type = checkpoint === undefined && parents.some((p) => finished.has(p)) ? "TRIM_HORIZON" : startType;
    const r: Reader = {
      shardId, iterator: undefined, resumeAfter: checkpoint, startType: type, lastRead: undefined, committed: checkpoint,
      behindMs: undefined, ended: false, finishing: false, nextCallAt: 0, attempt: 0, calling: false,
    };
    readers.set(shardId, r);
    logger?.info("kinesis: reading shard", { stream, shard: shardId, from: checkpoint ? `after ${checkpoint}` : type, worker: workerId });
    try {
      r.iterator = await iteratorFor(r);
    } catch (err) {
      // readShard asks again after a backoff.
      r.attempt++;
      r.nextCallAt = Date.now() + backoffMs(r.attempt, MIN_CALL_GAP_MS, 10_000);
      logger?.warn("kinesis: could not get a shard iterator", { shard: shardId, error: fail(err, `GetShardIterator ${shardId}`).message });
    }
  };

  const syncShards = async () => {
    const shards = await listShards();
    const res = await coordinator!.sync(shards);
    finished = res.finished;
    for (const id of [...readers.keys()]) if (!res.owned.has(id)) dropReader(id, "no longer owned");
    const parentsOf = new Map(shards.map((s) => [s.id, s.parents]));
    await Promise.all([...res.owned].filter(([id]) => !readers.has(id)).map(([id, o]) => startReader(id, parentsOf.get(id) ?? [], o.checkpoint)));
    synced = true;
    problem = undefined;
    nextSyncAt = Date.now() + syncMs;
  };

  /** Marks a closed shard finished once everything read from it is checkpointed; its children may then start. */
  const maybeFinish = async (r: Reader) => {
    if (!r.ended || r.finishing || readers.get(r.shardId) !== r) return;
    if (r.lastRead !== undefined && r.committed !== r.lastRead) return;
    r.finishing = true;
    try {
      if (await coordinator!.checkpoint(r.shardId, r.committed, true)) {
        finished.add(r.shardId);
        logger?.info("kinesis: shard finished", { stream, shard: r.shardId });
      }
      readers.delete(r.shardId);
      nextSyncAt = 0;
      wake(pumpWaiters);
    } catch (err) {
      r.finishing = false;
      logger?.warn("kinesis: could not checkpoint a finished shard; trying again", { shard: r.shardId, error: reasonOf(err) });
    }
  };

  const readShard = async (r: Reader) => {
    r.calling = true;
    try {
      if (!coordinator!.owns(r.shardId)) {
        dropReader(r.shardId, "lease lost");
        return;
      }
      r.iterator ??= await iteratorFor(r);
      if (!r.iterator) {
        r.ended = true;
        return;
      }
      const res = await client!.send(new GetRecordsCommand({ ShardIterator: r.iterator, Limit: opts.maxRecordsPerCall ?? 10_000 }));
      problem = undefined;
      r.attempt = 0;
      if (readers.get(r.shardId) !== r || closed) return;
      const got = res.Records ?? [];
      for (const rec of got) {
        const seq = rec.SequenceNumber!;
        const ir: InRecord = {
          value: rec.Data ?? new Uint8Array(0),
          position: { stream: r.shardId, offset: seq, next: seq },
        };
        if (rec.PartitionKey !== undefined) ir.key = rec.PartitionKey;
        if (rec.ApproximateArrivalTimestamp) ir.timestamp = rec.ApproximateArrivalTimestamp.getTime();
        buffer.push(ir);
        r.lastRead = seq;
        r.resumeAfter = seq;
      }
      r.behindMs = res.MillisBehindLatest;
      r.iterator = res.NextShardIterator;
      if (!r.iterator) r.ended = true;
      r.nextCallAt = Date.now() + (got.length > 0 ? MIN_CALL_GAP_MS : idleMs);
      if (got.length > 0) wake(waiters);
      if (r.ended) await maybeFinish(r);
    } catch (err) {
      const name = errorName(err);
      if (name === "ExpiredIteratorException") {
        // Renewed from the last record read (the checkpoint when none), at once.
        r.iterator = undefined;
        r.nextCallAt = Date.now();
        return;
      }
      r.attempt++;
      r.nextCallAt = Date.now() + backoffMs(r.attempt, MIN_CALL_GAP_MS * 2, 10_000);
      const e = fail(err, `GetRecords on shard ${r.shardId}`);
      if (name !== "ProvisionedThroughputExceededException") logger?.warn("kinesis: read failed; backing off", { shard: r.shardId, attempt: r.attempt, error: e.message });
    } finally {
      r.calling = false;
      wake(pumpWaiters);
    }
  };

  const pump = async () => {
    while (!closed) {
      const now = Date.now();
      if (now >= nextSyncAt) {
        try {
          await syncShards();
          syncAttempt = 0;
        } catch (err) {
          syncAttempt++;
          nextSyncAt = Date.now() + backoffMs(syncAttempt, 500, syncMs);
          logger?.warn("kinesis: shard/lease sync failed; trying again", { stream, error: fail(err, `listing shards of "${stream}"`).message });
        }
      }
      if (closed) break;
      let wait = Math.max(0, nextSyncAt - Date.now());
      for (const r of readers.values()) {
        if (r.calling || r.ended || r.finishing) continue;
        if (buffer.length >= limit) break;
        const due = r.nextCallAt - Date.now();
        if (due > 0) {
          wait = Math.min(wait, due);
          continue;
        }
        const call = readShard(r).finally(() => calls.delete(call));
        calls.add(call);
      }
      await waitForWake(Math.max(10, wait), stop.signal, pumpWaiters);
    }
  };

  const doConnect = async () => {
    client = deps.client ?? kinesisClient(opts);
    try {
      await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    } catch (err) {
      if (errorName(err) === "ResourceNotFoundException") throw new GeoWatchError("NOT_FOUND", `stream "${stream}" does not exist`, { backend: BACKEND, cause: err, retryable: true });
      throw fail(err, `describing stream "${stream}"`);
    }
    coordinator = opts.leaseTable
      ? new DynamoCoordinator(dynamoClient({ endpoint: opts.dynamodbEndpoint, region: opts.region }), {
          table: opts.leaseTable,
          group: `${application}/${stream}`,
          workerId,
          leaseDurationMs: opts.leaseDurationMs ?? 10_000,
          createTable: opts.createLeaseTable ?? true,
          logger,
        })
      : new SqliteCoordinator(opts.checkpointPath ?? process.env.GEOWATCH_KINESIS_CHECKPOINTS ?? "./geowatch-kinesis.db", application, stream);
    await coordinator.open();
    // The first sync takes the shards and their iterators now, so LATEST means "from connect".
    await syncShards();
    problem = undefined;
    pumping = pump();
  };

  const connect = (): Promise<void> => {
    if (closed) return Promise.reject(new GeoWatchError("CLOSED", "consumer is closed", { backend: BACKEND }));
    connecting ??= doConnect().catch(async (err: unknown) => {
      connecting = undefined;
      await coordinator?.close().catch(() => undefined);
      coordinator = undefined;
      if (!deps.client) client?.destroy();
      client = undefined;
      throw err;
    });
    return connecting;
  };

  const take = (max: number): InRecord[] => {
    const out = buffer.splice(0, Math.max(0, max));
    if (out.length > 0) wake(pumpWaiters);
    return out;
  };

  return {
    capabilities: { ordering: "stream", batching: true },
    connect,
    async receive(max: number, o: ReceiveOptions): Promise<InRecord[]> {
      await connect();
      if (buffer.length > 0) return take(max);
      if (o.waitMs <= 0 || o.signal?.aborted) return [];
      await waitForWake(o.waitMs, o.signal, waiters);
      return take(max);
    },
    async commit(positions: Position[]): Promise<void> {
      if (!coordinator) return;
      await Promise.all(
        positions.map(async (p) => {
          const r = readers.get(p.stream);
          const seq = String(p.next);
          // A shard handed to another process: its owner resumes from the last checkpoint (at-least-once).
          if (!r || !coordinator!.owns(p.stream)) {
            logger?.debug("kinesis: skipping checkpoint for a shard not owned", { shard: p.stream });
            return;
          }
          if (!seqGreater(seq, r.committed)) return;
          try {
            if (!(await coordinator!.checkpoint(p.stream, seq, false))) {
              dropReader(p.stream, "lease lost");
              return;
            }
          } catch (err) {
            throw awsError(err, `checkpointing shard ${p.stream}`);
          }
          if (seqGreater(seq, r.committed)) r.committed = seq;
          await maybeFinish(r);
        }),
      );
    },
    /**
     * True when the first shard sync is done, nothing is buffered, no closed shard waits for its last
     * checkpoint (its children would start after it), and every shard read reported MillisBehindLatest 0.
     */
    async caughtUp(): Promise<boolean> {
      await connect();
      if (!synced || buffer.length > 0 || problem !== undefined || nextSyncAt === 0) return false;
      for (const r of readers.values()) {
        if (r.ended || r.finishing || r.behindMs !== 0) return false;
      }
      return true;
    },
    health() {
      const p = problem ?? coordinator?.problem();
      return p === undefined ? { ok: true } : { ok: false, error: p };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      stop.abort();
      wake(waiters);
      await connecting?.catch(() => undefined);
      await pumping;
      await Promise.allSettled([...calls]);
      buffer = [];
      readers.clear();
      await coordinator?.close().catch((err: unknown) => logger?.warn("kinesis: could not release leases", { error: reasonOf(err) }));
      if (!deps.client) client?.destroy();
    },
  };
}
