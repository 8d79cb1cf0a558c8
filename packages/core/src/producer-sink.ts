import { GeoWatchError, isGeoWatchError, isPermanent, reasonOf } from "./errors.js";
import type { Codec, Logger, Message, OutRecord, Producer } from "./types.js";
import { backoffMs, describeUnencodable, payloadSize, sleep, withTimeout } from "./util.js";

export interface ProducerNode {
  name: string;
  producer: Producer;
  codec?: Codec;
  /** Destination topic put on every record. */
  topic?: string;
  /** Overrides the broker's `maxTries` for this sink. */
  maxTries?: number;
  /** Overrides the broker's `timeoutMs` for this sink. */
  timeoutMs?: number;
  /** Most records per send (the producer's own limit applies too). */
  maxBatch?: number;
  /** Most bytes per send (the producer's own limit applies too). */
  maxBatchBytes?: number;
  /**
   * Collect messages for this sink for up to this many ms (or until `maxBatch`, default 500) and send
   * them together. Default 0: each received batch is sent as it is.
   */
  lingerMs?: number;
  backend?: string;
}

/** A message a sink could not deliver, with why. */
export interface SinkFailure {
  reason: string;
  message: Message;
  /** The sink was down at shutdown: leave the source unacknowledged. */
  undelivered?: boolean;
}

/** What a producer sink needs from its broker; callbacks that throw are logged, never fatal. */
export interface ProducerSinkOptions {
  broker: string;
  logger: Logger;
  /** Broker-wide defaults; the node's own values win. */
  maxTries: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Aborted when the broker stops: backoff sleeps end early. */
  signal: AbortSignal;
  /** True once the broker is stopping: a down sink then gives up after maxTries. */
  stopping(): boolean;
  onSent?(n: number, latencyMs: number): void;
  onFailed?(n: number, reason: string): void;
  onRetry?(n: number): void;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The value passed through when a node has no codec: text in (bytes that are not UTF-8 are a DECODE error), text or JSON out. */
export const passthrough: Codec = {
  name: "passthrough",
  contentType: "application/octet-stream",
  encode: (v) => (typeof v === "string" || v instanceof Uint8Array ? v : JSON.stringify(v)),
  decode: (p) => {
    if (typeof p === "string") return p;
    try {
      return strictUtf8.decode(p);
    } catch {
      throw new GeoWatchError("DECODE", `invalid UTF-8 at byte ${firstInvalidUtf8(p)} (no codec on this node reads bytes)`, { backend: "passthrough" });
    }
  },
};

/** Index of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    for (let k = 1; k < n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    if (n > 1) {
      try {
        strictUtf8.decode(b.subarray(i, i + n));
      } catch {
        return i;
      }
    }
    i += n;
  }
  return b.length;
}

interface Lingering {
  messages: Message[];
  waiters: Array<{ mine: Message[]; resolve: (failed: SinkFailure[]) => void }>;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One producer as the broker's sink: encodes, sends in order, splits by count and bytes, retries
 * failed records with backoff, retries a down sink for the whole outage, and groups what arrives
 * while a send is running into the next send. `add` never rejects.
 */
export class ProducerSink {
  readonly name: string;
  readonly node: ProducerNode;
  private readonly codec: Codec;
  private readonly maxTries: number;
  private readonly timeoutMs: number;
  private readonly maxBatch: number;
  private readonly maxBytes: number;
  private readonly lingerMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private lingering: Lingering | undefined;
  /** Sends queued or running. */
  private busy = 0;

  constructor(
    node: ProducerNode,
    private readonly o: ProducerSinkOptions,
  ) {
    this.node = node;
    this.name = node.name;
    this.codec = node.codec ?? passthrough;
    this.maxTries = node.maxTries ?? o.maxTries;
    this.timeoutMs = node.timeoutMs ?? o.timeoutMs;
    this.maxBatch = Math.min(node.producer.capabilities?.maxBatch ?? Infinity, node.maxBatch ?? Infinity);
    this.maxBytes = Math.min(node.producer.capabilities?.maxBatchBytes ?? Infinity, node.maxBatchBytes ?? Infinity);
    this.lingerMs = node.lingerMs ?? 0;
  }

  /** True while messages wait for a lingering send. */
  get idle(): boolean {
    return this.lingering === undefined;
  }

  /** Delivers after the previous batch for this sink; resolves with what could not be delivered. */
  add(messages: Message[]): Promise<SinkFailure[]> {
    if (this.lingerMs <= 0 && this.busy === 0) return this.chain(messages);
    // Lingering, or a send is in flight: collect. Without linger, what arrives while the sink is busy goes
    // out as one send when it is free (group commit): small batches otherwise cap the rate at one batch per
    // send round trip.
    return new Promise<SinkFailure[]>((resolve) => {
      const acc = (this.lingering ??= { messages: [], waiters: [], timer: undefined });
      for (const m of messages) acc.messages.push(m);
      acc.waiters.push({ mine: messages, resolve });
      if (acc.messages.length >= (Number.isFinite(this.maxBatch) ? this.maxBatch : 500)) this.flush();
      else if (this.lingerMs > 0) acc.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  /** Sends what collected now. */
  flush(): void {
    const acc = this.lingering;
    if (!acc) return;
    this.lingering = undefined;
    clearTimeout(acc.timer);
    void this.chain(acc.messages).then((failed) => {
      // Each waiter gets the failures of its own messages; a Set per waiter only when something failed (a
      // Set of every message of every batch was 1.5% of a Kafka relay's CPU).
      for (const w of acc.waiters) {
        if (failed.length === 0) {
          w.resolve([]);
          continue;
        }
        const mine = new Set(w.mine);
        w.resolve(failed.filter((f) => mine.has(f.message)));
      }
    });
  }

  private chain(messages: Message[]): Promise<SinkFailure[]> {
    this.busy++;
    // `deliver` never rejects; the guard keeps one unexpected throw from blocking every later send.
    const run = this.tail.then(() => this.deliver(messages)).catch((err: unknown) => this.failAll(messages, err));
    this.tail = run;
    void run.then(() => {
      if (--this.busy === 0 && this.lingerMs <= 0) this.flush();
    });
    return run;
  }

  private failAll(messages: Message[], err: unknown): SinkFailure[] {
    this.o.logger.error("sink failed unexpectedly", { broker: this.o.broker, sink: this.name, error: reasonOf(err) });
    return messages.filter((m) => !m.routes || m.routes.includes(this.name)).map((message) => ({ reason: `[${this.name}] ${reasonOf(err)}`, message }));
  }

  private call(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.logger.warn(`${what} callback failed`, { broker: this.o.broker, sink: this.name, error: reasonOf(err) });
    }
  }

  /** Encodes and sends with retries; returns what could not be delivered. */
  private async deliver(messages: Message[]): Promise<SinkFailure[]> {
    const { node, codec, o } = this;
    const failed: SinkFailure[] = [];
    let records: OutRecord[] = [];
    let owners: Message[] = [];
    for (const m of messages) {
      if (m.routes && !m.routes.includes(node.name)) continue;
      let value;
      try {
        value = codec.encode(m.value);
      } catch (err) {
        failed.push({ reason: `[${node.name}] encode failed: ${describeUnencodable(m.value, err)}`, message: m });
        continue;
      }
      const rec: OutRecord = { value, contentType: codec.contentType };
      if (codec.jsonText === true) rec.jsonText = true;
      if (m.key !== undefined) rec.key = m.key;
      if (m.headers !== undefined) rec.headers = m.headers;
      if (m.metadata !== undefined) rec.metadata = m.metadata;
      if (node.topic !== undefined) rec.topic = node.topic;
      records.push(rec);
      owners.push(m);
    }
    // `tries` counts attempts in which the sink answered but failed some records (a message problem: after
    // maxTries they are dead-lettered). An attempt in which nothing got through (the send threw or every
    // record failed retryably) means the sink is down: that is retried with capped backoff for as long as it
    // takes, since dead-lettering or acknowledging would lose messages in any outage longer than the retries.
    // During shutdown a down sink gets maxTries more attempts, then the records stay unacknowledged.
    let tries = 0;
    let downStreak = 0;
    let triesSinceStop = 0;
    for (let attempt = 1; records.length > 0; attempt++) {
      const attempted = records.length;
      let rejected = 0;
      let threw = false;
      let connectionErrors = 0;
      const retryRecords: OutRecord[] = [];
      const retryOwners: Message[] = [];
      let lastReason = "";
      const started = performance.now();
      for (let from = 0, to = 0; from < records.length; from = to) {
        to = chunkEnd(records, from, this.maxBatch, this.maxBytes);
        const chunk = from === 0 && to === records.length ? records : records.slice(from, to);
        let results;
        try {
          results = await withTimeout(node.producer.send(chunk), this.timeoutMs, `send to "${node.name}"`, node.backend);
          if (results.length !== chunk.length) {
            throw new GeoWatchError("SEND", `"${node.name}" returned ${results.length} results for ${chunk.length} records`, { backend: node.backend });
          }
        } catch (err) {
          if (isPermanent(err)) {
            // The sink refused the chunk for good (bad data or config, unsupported): the same send fails again.
            rejected += chunk.length;
            const reason = `[${node.name}] rejected (not retried: ${(err as GeoWatchError).code}): ${reasonOf(err)}`;
            for (let i = 0; i < chunk.length; i++) failed.push({ reason, message: owners[from + i]! });
            continue;
          }
          threw = true;
          lastReason = reasonOf(err);
          for (let i = 0; i < chunk.length; i++) {
            retryRecords.push(chunk[i]!);
            retryOwners.push(owners[from + i]!);
          }
          continue;
        }
        let ok = 0;
        for (let i = 0; i < results.length; i++) {
          const r = results[i]!;
          if (r.ok) {
            ok++;
          } else if (r.retryable === false) {
            rejected++;
            failed.push({ reason: `[${node.name}] rejected: ${reasonOf(r.error)}`, message: owners[from + i]! });
          } else {
            lastReason = reasonOf(r.error);
            if (isConnectionError(r.error)) connectionErrors++;
            retryRecords.push(chunk[i]!);
            retryOwners.push(owners[from + i]!);
          }
        }
        if (ok > 0 && o.onSent) this.call("sent", () => o.onSent!(ok, performance.now() - started));
      }
      if (retryRecords.length === 0) break;
      if (o.onFailed) this.call("failed", () => o.onFailed!(retryRecords.length, lastReason));
      // Down: nothing got through, and the send threw, or every failure is a connection-class error, or the
      // backend's own health says its connection is lost.
      const down =
        retryRecords.length === attempted &&
        rejected === 0 &&
        (threw || connectionErrors === retryRecords.length || node.producer.health?.().ok === false);
      if (down) {
        downStreak++;
        if (o.stopping() && ++triesSinceStop >= this.maxTries) {
          o.logger.warn("sink down at shutdown: leaving messages unacknowledged", { broker: o.broker, sink: node.name, records: retryRecords.length, error: lastReason });
          for (const m of retryOwners) failed.push({ reason: `[${node.name}] sink down at shutdown: ${lastReason}`, message: m, undelivered: true });
          break;
        }
      } else {
        downStreak = 0;
        if (++tries >= this.maxTries) {
          o.logger.warn("giving up on records", { broker: o.broker, sink: node.name, records: retryRecords.length, attempts: tries, error: lastReason });
          for (const m of retryOwners) failed.push({ reason: `[${node.name}] not delivered after ${tries} attempts: ${lastReason}`, message: m });
          break;
        }
      }
      if (o.onRetry) this.call("retried", () => o.onRetry!(retryRecords.length));
      o.logger.warn(down ? "sink down, retrying" : "retrying sink", { broker: o.broker, sink: node.name, records: retryRecords.length, attempt, error: lastReason });
      await sleep(backoffMs(down ? downStreak : tries, o.retryBaseMs, o.retryMaxMs), o.stopping() ? undefined : o.signal);
      records = retryRecords;
      owners = retryOwners;
    }
    return failed;
  }
}

/** End (exclusive) of the chunk starting at `from` that stays within the count and byte limits. */
function chunkEnd(records: OutRecord[], from: number, maxBatch: number, maxBytes: number): number {
  const countEnd = Math.min(records.length, from + maxBatch);
  if (maxBytes === Infinity) return countEnd;
  let bytes = 0;
  for (let i = from; i < countEnd; i++) {
    bytes += payloadSize(records[i]!.value);
    // A record bigger than the limit still goes alone, so the producer can reject just that one.
    if (bytes > maxBytes && i > from) return i;
  }
  return countEnd;
}

/** Errors that say the sink cannot be reached, as opposed to a problem with the record. */
function isConnectionError(err: unknown): boolean {
  return isGeoWatchError(err) && (err.code === "CONNECT" || err.code === "TIMEOUT" || err.code === "CLOSED");
}
