// Small reference implementations the suites are proven on, and switches that break them one way each.
import { GeoWatchError } from "@geowatch/core";
import type { Codec, Consumer, InRecord, OutRecord, Payload, Position, Producer, ReceiveOptions, SendResult, Store } from "@geowatch/core";
import type { ChannelHarness } from "../src/index.js";

/** Ways to break a channel, each aimed at one check. */
export interface Faults {
  /** The producer reports ok for every 3rd record but never stores it. */
  dropEvery3rd?: boolean;
  /** ack/commit do nothing. */
  ackIgnored?: boolean;
  /** Records leave in reverse order. */
  reverse?: boolean;
  /** receive returns at once instead of waiting. */
  noWait?: boolean;
  /** receive ignores the AbortSignal. */
  ignoreAbort?: boolean;
  /** The second close throws. */
  closeTwiceThrows?: boolean;
  /** Text goes through Latin-1 on the way (mangles everything beyond U+00FF). */
  latin1?: boolean;
  /** Closing a consumer forgets its unacknowledged records instead of returning them. */
  loseUnacked?: boolean;
  /** nack with requeue drops the records. */
  nackDrops?: boolean;
  /** The producer accepts records of any size. */
  noSizeLimit?: boolean;
  /** Records are cut to this many characters (a frame limit hit silently). */
  truncateAt?: number;
  /** The consumer declares no ordering although it is a stream. */
  undeclared?: boolean;
  /** Keys and headers are not stored. */
  dropMeta?: boolean;
}

type Waiter = () => void;

/** A harness whose instances are synchronous, so tests can build on them. */
export type RefHarness = Omit<ChannelHarness, "producer" | "consumer"> & { producer: () => Producer; consumer: () => Consumer };

/** Resolves when woken, after waitMs, or on abort (unless the fault says to ignore it). */
function wait(waiters: Set<Waiter>, o: ReceiveOptions, f: Faults): Promise<void> {
  if (f.noWait || o.waitMs <= 0 || (!f.ignoreAbort && o.signal?.aborted)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", done);
      waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, o.waitMs);
    if (!f.ignoreAbort) o.signal?.addEventListener("abort", done, { once: true });
    waiters.add(done);
  });
}

function mangle(p: Payload, f: Faults): Payload {
  if (!f.latin1) return p;
  const text = typeof p === "string" ? p : new TextDecoder().decode(p);
  return Buffer.from(text, "latin1").toString("latin1");
}

function closer(f: Faults, onClose: () => void): () => Promise<void> {
  let closed = false;
  return async () => {
    if (closed) {
      if (f.closeTwiceThrows) throw new Error("already closed");
      return;
    }
    closed = true;
    onClose();
  };
}

const MAX_RECORD_BYTES = 300 * 1024;

function sizeOf(r: OutRecord): number {
  return typeof r.value === "string" ? Buffer.byteLength(r.value) : r.value.byteLength;
}

interface Stored {
  id: number;
  record: OutRecord;
  deliveries: number;
}

/** An in-memory queue with per-record acks; a closed consumer's unacknowledged records go back to the front. */
export function queueHarness(f: Faults = {}): RefHarness {
  let queue: Stored[] = [];
  const inFlight = new Map<number, Stored>();
  const waiters = new Set<Waiter>();
  let nextId = 1;
  let sent = 0;
  const wake = () => [...waiters].forEach((w) => w());
  const giveBack = (items: Stored[]) => {
    queue = [...items.sort((a, b) => a.id - b.id), ...queue];
    wake();
  };

  const producer = (): Producer => ({
    capabilities: { batching: true, maxRecordBytes: MAX_RECORD_BYTES },
    async send(records) {
      const out: SendResult[] = records.map((r) => {
        if (!f.noSizeLimit && sizeOf(r) > MAX_RECORD_BYTES) {
          return { ok: false, error: new GeoWatchError("SEND", `record is over ${MAX_RECORD_BYTES} bytes`, { backend: "ref-queue" }) };
        }
        if (f.dropEvery3rd && ++sent % 3 === 0) return { ok: true };
        const record: OutRecord = f.dropMeta ? { value: r.value } : { ...r };
        record.value = mangle(r.value, f);
        if (f.truncateAt !== undefined && typeof record.value === "string") record.value = record.value.slice(0, f.truncateAt);
        queue.push({ id: nextId++, record, deliveries: 0 });
        return { ok: true };
      });
      wake();
      return out;
    },
    close: closer(f, () => {}),
  });

  const consumer = (): Consumer => {
    const mine = new Set<number>();
    const take = (max: number): InRecord[] => {
      const items = f.reverse ? queue.splice(Math.max(0, queue.length - max), max).reverse() : queue.splice(0, max);
      return items.map((e) => {
        e.deliveries++;
        inFlight.set(e.id, e);
        mine.add(e.id);
        const rec: InRecord = { value: e.record.value, handle: e.id, redeliveries: e.deliveries - 1 };
        if (e.record.key !== undefined) rec.key = e.record.key;
        if (e.record.headers !== undefined) rec.headers = e.record.headers;
        return rec;
      });
    };
    const release = (ids: Iterable<number>): Stored[] => {
      const out: Stored[] = [];
      for (const id of ids) {
        const e = inFlight.get(id);
        inFlight.delete(id);
        mine.delete(id);
        if (e) out.push(e);
      }
      return out;
    };
    return {
      capabilities: { acks: true, batching: true, ordering: "total" },
      async receive(max, o) {
        if (queue.length === 0) await wait(waiters, o, f);
        return take(max);
      },
      async ack(records) {
        if (!f.ackIgnored) release(records.map((r) => r.handle as number));
      },
      async nack(records, { requeue }) {
        const back = release(records.map((r) => r.handle as number));
        if (requeue && !f.nackDrops) giveBack(back);
      },
      close: closer(f, () => {
        const back = release([...mine]);
        if (!f.loseUnacked) giveBack(back);
      }),
    };
  };

  return { producer, consumer, inject: async (payloads) => void (await producer().send(payloads.map((value) => ({ value })))) };
}

/** An in-memory log with two streams (partitioned by key) and committed positions, like a Kafka group. */
export function streamHarness(f: Faults = {}): RefHarness {
  const streams: Record<string, OutRecord[]> = { s0: [], s1: [] };
  const committed: Record<string, number> = { s0: 0, s1: 0 };
  const waiters = new Set<Waiter>();
  let sent = 0;
  let rr = 0;
  const streamFor = (key: string | undefined) => {
    if (key === undefined) return rr++ % 2 === 0 ? "s0" : "s1";
    let h = 0;
    for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) | 0;
    return Math.abs(h) % 2 === 0 ? "s0" : "s1";
  };

  const producer = (): Producer => ({
    async send(records) {
      const out: SendResult[] = records.map((r) => {
        if (f.dropEvery3rd && ++sent % 3 === 0) return { ok: true };
        streams[streamFor(r.key)]!.push({ ...r, value: mangle(r.value, f) });
        return { ok: true };
      });
      [...waiters].forEach((w) => w());
      return out;
    },
    close: closer(f, () => {}),
  });

  const consumer = (): Consumer => {
    // A new member starts from the group's committed positions; what it read but did not commit is read again.
    const cursor: Record<string, number> = { ...committed };
    const take = (max: number): InRecord[] => {
      const out: InRecord[] = [];
      for (const [stream, log] of Object.entries(streams)) {
        const from = cursor[stream]!;
        const upto = Math.min(log.length, from + (max - out.length));
        const batch: InRecord[] = [];
        for (let i = from; i < upto; i++) {
          const position: Position = { stream, offset: i, next: i + 1 };
          const rec: InRecord = { value: log[i]!.value, position };
          if (log[i]!.key !== undefined) rec.key = log[i]!.key;
          batch.push(rec);
        }
        cursor[stream] = upto;
        out.push(...(f.reverse ? batch.reverse() : batch));
      }
      return out;
    };
    const available = () => Object.entries(streams).some(([s, log]) => log.length > cursor[s]!);
    return {
      capabilities: f.undeclared ? { batching: true } : { ordering: "stream", batching: true },
      async receive(max, o) {
        if (!available()) await wait(waiters, o, f);
        return take(max);
      },
      async commit(positions) {
        if (f.ackIgnored) return;
        for (const p of positions) committed[p.stream] = Math.max(committed[p.stream] ?? 0, Number(p.next));
      },
      close: closer(f, () => {}),
    };
  };

  return { producer, consumer };
}

/** An in-memory store; `append` adds bytes to the existing value. */
export function refStore(data: Map<string, string>, f: { appendAlways?: boolean; noAppend?: boolean; closeTwiceThrows?: boolean; latin1?: boolean } = {}): () => Store {
  return () => ({
    capabilities: { append: !f.noAppend, read: true },
    async write(op) {
      const text = typeof op.body === "string" ? op.body : new TextDecoder().decode(op.body);
      const body = f.latin1 ? Buffer.from(text, "latin1").toString("latin1") : text;
      const append = (op.append && !f.noAppend) || f.appendAlways;
      data.set(op.key, append ? (data.get(op.key) ?? "") + body : body);
    },
    async read(key) {
      return data.get(key);
    },
    close: closer({ closeTwiceThrows: f.closeTwiceThrows }, () => {}),
  });
}

/** A JSON codec that follows the contract; `plainErrors` makes it throw bare Errors instead of DECODE. */
export function refJsonCodec(f: { plainErrors?: boolean; lossy?: boolean } = {}): Codec {
  return {
    name: "ref-json",
    contentType: "application/json",
    appendable: true,
    encode: (v) => JSON.stringify(f.lossy && typeof v === "object" && v !== null ? { ...v, extra: 1 } : v),
    decode(p) {
      const text = typeof p === "string" ? p : new TextDecoder().decode(p);
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        if (f.plainErrors) throw err;
        throw new GeoWatchError("DECODE", `not JSON: ${(err as Error).message}`, { backend: "ref-json", cause: err });
      }
    },
    pack: (values) => values.map((v) => JSON.stringify(v) + "\n").join(""),
    unpack: (p) =>
      (typeof p === "string" ? p : new TextDecoder().decode(p))
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as unknown),
  };
}
