import { guardProducer } from "@geowatch/core";
import type { ManagedProducer, OutRecord, Producer, SendResult } from "@geowatch/core";
import { parseOptions, queueProducerSchema, resolvePath } from "./options.js";
import type { QueueProducerOptions } from "./options.js";
import { acquireStore, releaseStore } from "./store.js";
import type { NewRow, QueueStore } from "./store.js";

/** Sends records to a SQLite-backed queue; one `send` is one transaction. */
export function createQueueProducer(options: QueueProducerOptions): Producer {
  const o = parseOptions<QueueProducerOptions>(queueProducerSchema, options, "queue producer");
  const path = resolvePath(o.path);
  const delayMs = o.delayMs ?? 0;
  let store: QueueStore | undefined;
  // The runtime layer calls connect before anything else and nothing after close.
  const open = (): QueueStore => store!;

  return {
    capabilities: { batching: true },
    async connect() {
      store = acquireStore(path);
    },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      const s = open();
      if (records.length === 0) return [];
      const now = Date.now();
      const rows: NewRow[] = records.map((r) => ({
        queue: r.topic ?? o.queue,
        body: r.value,
        key: r.key ?? null,
        headers: r.headers ? JSON.stringify(r.headers) : null,
        visibleAt: now + delayMs,
      }));
      const ids = s.insert(rows, now);
      // Wake consumers of these queues waiting in this process; other processes find them by polling.
      for (const q of new Set(rows.map((r) => r.queue))) s.notify(q);
      return ids.map((id) => ({ ok: true, id: String(id) }));
    },
    async ensureTopic() {
      // Queues exist implicitly: a queue is the set of rows carrying its name.
      open();
    },
    async close() {
      if (store) releaseStore(store);
      store = undefined;
    },
  };
}

/**
 * A queue producer wrapped in core's runtime layer (connect once, refuse calls after close, close once), for
 * use without a config. The backend definition hands the runtime the raw object instead.
 */
export function queueProducer(options: QueueProducerOptions): ManagedProducer {
  return guardProducer(createQueueProducer(options), { name: `queue producer "${options.queue}"`, backend: "queue" });
}
