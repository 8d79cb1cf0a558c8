import { randomUUID } from "node:crypto";
import { GeoWatchError, LeaseKeeper, guardConsumer, jsonLogger, reasonOf } from "@geowatch/core";
import type { Consumer, ConsumerCapabilities, InRecord, Logger, ManagedConsumer, ReceiveOptions } from "@geowatch/core";
import { parseOptions, queueConsumerSchema, resolvePath } from "./options.js";
import type { QueueConsumerOptions } from "./options.js";
import { acquireStore, releaseStore } from "./store.js";
import type { ClaimedRow, Lease, QueueStore } from "./store.js";

/** What `InRecord.handle` holds for queue records: the row id and the lease this delivery holds. */
export interface QueueHandle {
  id: number;
  lease: string;
}

/** Header carrying why a message was dead-lettered, on records received from a `<queue>.dead` queue. */
export const DEAD_REASON_HEADER = "x-geowatch-dead-reason";

/** A queue consumer: the `Consumer` contract plus lease extension for long jobs. */
export interface QueueConsumer extends Consumer {
  readonly capabilities: ConsumerCapabilities;
  ack(records: InRecord[]): Promise<void>;
  nack(records: InRecord[], opts: { requeue: boolean; reason?: string }): Promise<void>;
  /**
   * Keeps the leases of `records` for `ms` more (default `visibilityTimeoutMs`) from now.
   * Returns how many leases were still held; a lost lease means another consumer may have the message.
   */
  extend(records: InRecord[], ms?: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Consumes a SQLite-backed queue with leases. The leases of received messages are extended while they are
 * in flight (see `extendLeases`); a message whose consumer died comes back after `visibilityTimeoutMs`.
 */
export function createQueueConsumer(options: QueueConsumerOptions, ctx: { logger?: Logger } = {}): QueueConsumer {
  const o = parseOptions<QueueConsumerOptions>(queueConsumerSchema, options, "queue consumer");
  const path = resolvePath(o.path);
  const queue = o.queue;
  const visibilityMs = o.visibilityTimeoutMs ?? 30_000;
  const pollMs = o.pollIntervalMs ?? 50;
  const retryDelayMs = o.retryDelayMs ?? 0;
  const isDeadQueue = queue.endsWith(".dead");
  const maxLeased = o.maxLeased ?? 1000;
  const log = ctx.logger ?? jsonLogger();
  const waits = new Set<() => void>();
  let store: QueueStore | undefined;
  // Leases this instance holds and has not settled: extended while in flight, handed back on close so
  // they need not wait for expiry.
  const held = new LeaseKeeper<Lease>({
    intervalMs: o.extendLeases === false ? 0 : Math.max(1, Math.floor(visibilityMs / 3)),
    key: (l) => `${l.id}:${l.lease}`,
    maxHoldMs: o.maxLeaseMs ?? 3_600_000,
    extend: (leases) => {
      if (!store) return;
      const live = new Set(store.extend(leases, Date.now() + visibilityMs, true));
      return leases.filter((l) => !live.has(l.id));
    },
    onError: (err) => log.warn("lease extension failed; trying again", { backend: "queue", queue, error: reasonOf(err) }),
  });
  const settle = (records: InRecord[]): Lease[] => {
    const leases = leasesOf(records);
    const wasFull = held.size >= maxLeased;
    held.forget(leases);
    // A receive waiting for room can lease again.
    if (wasFull && held.size < maxLeased) for (const stop of [...waits]) stop();
    return leases;
  };
  /** Set by close: a waiting receive returns at once. */
  let closed = false;
  // The runtime layer calls connect before anything else and nothing after close.
  const open = (): QueueStore => store!;

  const toRecord = (row: ClaimedRow, lease: string): InRecord => {
    const rec: InRecord = {
      value: row.body ?? "",
      handle: { id: Number(row.id), lease } satisfies QueueHandle,
      redeliveries: Number(row.receive_count) - 1,
      timestamp: Number(row.enqueued_at),
    };
    if (row.key !== null) rec.key = row.key;
    let headers = row.headers === null ? undefined : (JSON.parse(row.headers) as Record<string, string>);
    if (isDeadQueue && row.reason !== null) headers = { ...headers, [DEAD_REASON_HEADER]: row.reason };
    if (headers) rec.headers = headers;
    return rec;
  };

  /** Waits `ms`, or less when a producer in this process sends to the queue, the signal aborts or we close. */
  const pause = async (s: QueueStore, ms: number, signal: AbortSignal | undefined): Promise<void> => {
    const w = s.waitFor(queue);
    const timer = setTimeout(w.stop, ms);
    signal?.addEventListener("abort", w.stop, { once: true });
    waits.add(w.stop);
    try {
      await w.promise;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", w.stop);
      waits.delete(w.stop);
    }
  };

  return {
    capabilities: { acks: true, batching: true, ordering: "none" },
    async connect() {
      store = acquireStore(path);
    },
    async receive(max: number, opts: ReceiveOptions): Promise<InRecord[]> {
      const s = open();
      // An aborted caller is shutting down: leasing messages it will not process would only delay them.
      if (max <= 0 || opts.signal?.aborted) return [];
      const deadline = Date.now() + Math.max(0, opts.waitMs);
      for (;;) {
        const room = Math.min(Math.floor(max), maxLeased - held.size);
        if (room > 0) {
          const now = Date.now();
          const lease = randomUUID();
          const rows = s.claim(queue, room, now, now + visibilityMs, lease, o.maxReceives);
          if (rows.length > 0) {
            held.track(rows.map((r) => ({ id: Number(r.id), lease })));
            return rows.map((r) => toRecord(r, lease));
          }
        }
        const left = deadline - Date.now();
        if (left <= 0 || opts.signal?.aborted) return [];
        await pause(s, Math.min(pollMs, left), opts.signal);
        if (closed || opts.signal?.aborted) return [];
      }
    },
    async ack(records: InRecord[]) {
      const s = open();
      if (records.length > 0) s.ack(settle(records));
    },
    async nack(records: InRecord[], opts: { requeue: boolean; reason?: string }) {
      const s = open();
      if (records.length === 0) return;
      const now = Date.now();
      const reason = opts.reason ?? (opts.requeue ? "requeued" : "rejected");
      s.nack(settle(records), opts.requeue, now + retryDelayMs, now, reason, o.maxReceives);
      if (opts.requeue && retryDelayMs === 0) s.notify(queue);
    },
    async extend(records: InRecord[], ms: number = visibilityMs) {
      const s = open();
      if (records.length === 0) return 0;
      return s.extend(leasesOf(records), Date.now() + ms).length;
    },
    /** Hands back the leases this instance never acked or nacked (visible again now), then lets go of the database. */
    async close() {
      closed = true;
      for (const stop of [...waits]) stop();
      const left = held.stop();
      if (!store) return;
      try {
        if (left.length > 0) {
          const s = store;
          s.giveBack(left, Date.now());
          s.notify(queue);
        }
      } finally {
        releaseStore(store);
        store = undefined;
      }
    },
  };
}

function leasesOf(records: InRecord[]): Lease[] {
  return records.map((r) => {
    const h = r.handle as Partial<QueueHandle> | undefined;
    if (typeof h?.id !== "number" || typeof h.lease !== "string") {
      throw new GeoWatchError("VALIDATE", "record has no queue handle (was it received from a queue consumer?)", {
        backend: "queue",
      });
    }
    return { id: h.id, lease: h.lease };
  });
}

/**
 * A queue consumer wrapped in core's runtime layer (connect once, refuse calls after close, close once), for
 * use without a config. The backend definition hands the runtime the raw object instead.
 */
export function queueConsumer(options: QueueConsumerOptions, ctx: { logger?: Logger } = {}): ManagedConsumer<QueueConsumer> {
  return guardConsumer(createQueueConsumer(options, ctx), { name: `queue consumer "${options.queue}"`, backend: "queue" });
}
