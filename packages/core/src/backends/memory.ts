import { GeoWatchError } from "../errors.js";
import { waitForWake } from "../util.js";
import { z } from "zod";
import { defineBackend, type BackendDefinition } from "../define.js";
import type { Consumer, InRecord, OutRecord, Producer, ReceiveOptions, SendResult } from "../types.js";

export interface MemoryChannelOptions {
  /** Largest number of queued records; `send` reports a retryable failure above it. Default: unbounded. */
  capacity?: number;
}

export interface MemoryChannel {
  producer(): Producer;
  consumer(): Consumer;
  /** Records waiting to be received. */
  readonly size: number;
  /** Records received but not yet acknowledged. */
  readonly inFlight: number;
}

interface Entry {
  id: number;
  record: OutRecord;
  deliveries: number;
}

/**
 * An in-process queue with acks: received records stay in flight until acked; nack with requeue and
 * closing a consumer put its unacknowledged records back at the front.
 */
export function memoryChannel(opts: MemoryChannelOptions = {}): MemoryChannel {
  const capacity = opts.capacity ?? Infinity;
  let queue: Entry[] = [];
  let head = 0;
  let nextId = 1;
  const waiters = new Set<() => void>();
  const inFlight = new Map<number, Entry>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const requeueFront = (entries: Entry[]) => {
    if (entries.length === 0) return;
    queue = entries.concat(queue.slice(head));
    head = 0;
    wake();
  };

  const producer = (): Producer => ({
    capabilities: { batching: true },
    async send(records) {
      const out: SendResult[] = new Array(records.length);
      for (let i = 0; i < records.length; i++) {
        if (queue.length - head >= capacity) {
          out[i] = { ok: false, retryable: true, error: new GeoWatchError("SEND", `channel is full (${capacity})`, { backend: "memory", retryable: true }) };
          continue;
        }
        queue.push({ id: nextId++, record: records[i]!, deliveries: 0 });
        out[i] = { ok: true };
      }
      wake();
      return out;
    },
  });

  const consumer = (): Consumer => {
    const mine = new Set<number>();
    const take = (max: number): InRecord[] => {
      const n = Math.min(max, queue.length - head);
      const out: InRecord[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const e = queue[head + i]!;
        e.deliveries++;
        inFlight.set(e.id, e);
        mine.add(e.id);
        const r = e.record;
        const rec: InRecord = { value: r.value, handle: e.id, redeliveries: e.deliveries - 1 };
        if (r.key !== undefined) rec.key = r.key;
        if (r.headers !== undefined) rec.headers = r.headers;
        out[i] = rec;
      }
      head += n;
      // Compact now and then so a long run does not keep consumed entries alive.
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
      return out;
    };
    return {
      capabilities: { acks: true, batching: true, ordering: "total" },
      async receive(max: number, o: ReceiveOptions) {
        if (queue.length - head > 0) return take(max);
        if (o.waitMs <= 0 || o.signal?.aborted) return [];
        await waitForWake(o.waitMs, o.signal, waiters);
        return take(max);
      },
      async ack(records) {
        for (const r of records) {
          inFlight.delete(r.handle as number);
          mine.delete(r.handle as number);
        }
      },
      async nack(records, { requeue }) {
        const back: Entry[] = [];
        for (const r of records) {
          const e = inFlight.get(r.handle as number);
          inFlight.delete(r.handle as number);
          mine.delete(r.handle as number);
          if (e && requeue) back.push(e);
        }
        requeueFront(back);
      },
      async close() {
        const back: Entry[] = [];
        for (const id of mine) {
          const e = inFlight.get(id);
          inFlight.delete(id);
          if (e) back.push(e);
        }
        mine.clear();
        requeueFront(back.sort((a, b) => a.id - b.id));
      },
    };
  };

  return {
    producer,
    consumer,
    get size() {
      return queue.length - head;
    },
    get inFlight() {
      return inFlight.size;
    },
  };
}

const channels = new Map<string, MemoryChannel>();

/** The named in-process channels used when config says `backend: memory` with `topic: name`. */
export function namedMemoryChannel(name: string): MemoryChannel {
  let ch = channels.get(name);
  if (!ch) channels.set(name, (ch = memoryChannel()));
  return ch;
}

const memoryOptions = z.strictObject({
  topic: z.string().min(1).default("default").describe("Channel name shared within the process."),
});

/** `backend: memory`: in-process channels shared by topic name within one process. */
export const memoryBackend: BackendDefinition = defineBackend({
  name: "memory",
  description: "in-process channels shared by topic name (tests, wiring brokers in one process)",
  consumer: { options: memoryOptions, create: (o) => namedMemoryChannel(o.topic).consumer() },
  producer: { options: memoryOptions, create: (o) => namedMemoryChannel(o.topic).producer() },
});
