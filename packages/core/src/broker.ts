import { AckTracker, CommitCoalescer } from "./ack-tracker.js";
import { GeoWatchError, isGeoWatchError, reasonOf } from "./errors.js";
import { silentLogger } from "./logger.js";
import { StoreSink, type StoreOutNode } from "./store-sink.js";
import { readStoreIn, type StoreInNode } from "./store-source.js";
import type { Codec, Consumer, InRecord, Logger, Mapping, Message, Metadata, OutRecord, Producer, Stage } from "./types.js";
import { backoffMs, payloadSize, payloadText, sleep, stableStringify, withTimeout } from "./util.js";

export interface ConsumerNode {
  name: string;
  consumer: Consumer;
  /** Decodes records; default passes text through. */
  codec?: Codec;
  /** Records per receive for this consumer (overrides the broker's `count`). */
  count?: number;
  backend?: string;
}

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

export interface BrokerHooks {
  /** Runs at the start of each cycle. */
  before?(cycle: number): void | Promise<void>;
  /** Sees each decoded, filtered batch before the stages; may return a replacement batch. */
  middle?(messages: Message[]): Message[] | void | Promise<Message[] | void>;
  /** Runs at the end of each cycle. */
  after?(cycle: number, stats: Readonly<BrokerStats>): void | Promise<void>;
}

/** Callbacks for metrics; every member optional. */
export interface BrokerObserver {
  received?(node: string, n: number): void;
  sent?(sink: string, n: number, latencyMs: number): void;
  failed?(sink: string, n: number, reason: string): void;
  retried?(sink: string, n: number): void;
  deadLettered?(n: number, reason: string): void;
  acked?(node: string, n: number): void;
}

export interface BrokerOptions {
  name: string;
  consumers?: ConsumerNode[];
  producers?: ProducerNode[];
  /** Batch stores read into the stream. */
  storesIn?: StoreInNode[];
  storesOut?: StoreOutNode[];
  /** Where messages that cannot be decoded, processed or delivered go, with the reason. */
  deadLetter?: ProducerNode;
  stages?: Stage[];
  /** Records per receive, per consumer. Default 100. */
  count?: number;
  /** Sleep when a cycle received nothing, in ms. Default 1000. */
  sleepPeriodMs?: number;
  /** How long a receive waits for its first record, in ms. Default min(sleepPeriodMs, 500). */
  receiveWaitMs?: number;
  /** Per-send timeout in ms (0 = none). Default 30000. */
  timeoutMs?: number;
  /** Send attempts per sink before a message is dead-lettered. Default 5. */
  maxTries?: number;
  /** First retry backoff in ms. Default 100. */
  retryBaseMs?: number;
  /** Longest retry backoff in ms. Default 10000. */
  retryMaxMs?: number;
  /** Most messages received but not yet acknowledged. Default 10000. */
  maxInFlight?: number;
  /** Drop repeated messages: by key when present, else by content (`true`), or only one way. */
  deduplicate?: boolean | "key" | "content";
  /** How many recent keys/contents deduplication remembers. Default 10000. */
  dedupWindow?: number;
  /** Keep only messages whose metadata field is one of the listed values. */
  filterMetadata?: Record<string, unknown[]>;
  /** Keep only the last message of each received batch. */
  filterLastOne?: boolean;
  hooks?: BrokerHooks;
  logger?: Logger;
  observer?: BrokerObserver;
}

export interface BrokerStats {
  cycles: number;
  received: number;
  /** Messages accepted by a sink, counted once per sink. */
  sent: number;
  acked: number;
  filtered: number;
  duplicates: number;
  deadLettered: number;
  retries: number;
  errors: number;
  inFlight: number;
}

export interface RunOptions {
  /** Stop after this many cycles (the original's `run(max_cycle)`). */
  maxCycles?: number;
  /** Stop after the first cycle that received nothing and left nothing in flight. */
  untilIdle?: boolean;
}

/** A message that could not be processed, with the record it came from when there was one. */
interface Dead {
  reason: string;
  /** Not delivered because the sink was down at shutdown: leave the source unacknowledged. */
  undelivered?: boolean;
  message?: Message;
  record?: InRecord;
  source: string;
}

/** The value passed through when a node has no codec. */
const passthrough: Codec = {
  name: "passthrough",
  contentType: "application/octet-stream",
  encode: (v) => (typeof v === "string" || v instanceof Uint8Array ? v : JSON.stringify(v)),
  decode: (p) => payloadText(p),
};

type Failure = Omit<Dead, "source">;

interface Lingering {
  messages: Message[];
  waiters: Array<{ mine: Set<Message>; resolve: (failed: Failure[]) => void }>;
  timer: NodeJS.Timeout | undefined;
}

interface SinkState {
  node: ProducerNode;
  codec: Codec;
  tail: Promise<unknown>;
  lingering?: Lingering | undefined;
  /** Sends queued or running on this sink. */
  busy: number;
}

/**
 * Moves messages from consumers and input stores through filters and stages to producers and output
 * stores. At-least-once: a source record is acknowledged only after every sink accepted what it produced
 * (or the dead-letter sink accepted it with a reason).
 */
export class Broker {
  readonly name: string;
  readonly stats: BrokerStats = {
    cycles: 0,
    received: 0,
    sent: 0,
    acked: 0,
    filtered: 0,
    duplicates: 0,
    deadLettered: 0,
    retries: 0,
    errors: 0,
    inFlight: 0,
  };
  private readonly o: BrokerOptions;
  private readonly log: Logger;
  private readonly sinks: SinkState[];
  private readonly storeSinks: StoreSink[];
  private readonly dlq: SinkState | undefined;
  private readonly trackers = new Map<string, AckTracker>();
  private readonly committers = new Map<string, CommitCoalescer>();
  private readonly pending = new Set<Promise<void>>();
  private readonly dedupSeen = new Set<string>();
  private readonly abort = new AbortController();
  private readonly storeInReadAt = new Map<string, number>();
  private running: Promise<BrokerStats> | undefined;
  private stopping = false;

  constructor(opts: BrokerOptions) {
    this.o = opts;
    this.name = opts.name;
    this.log = opts.logger ?? silentLogger;
    this.sinks = (opts.producers ?? []).map((node) => ({ node, codec: node.codec ?? passthrough, tail: Promise.resolve(), busy: 0 }));
    this.storeSinks = (opts.storesOut ?? []).map(
      (node) =>
        new StoreSink(node, {
          logger: this.log,
          maxTries: opts.maxTries ?? 5,
          retryBaseMs: opts.retryBaseMs ?? 100,
          retryMaxMs: opts.retryMaxMs ?? 10_000,
          signal: this.abort.signal,
          onRetry: (n) => {
            this.stats.retries += n;
            opts.observer?.retried?.(node.name, n);
          },
        }),
    );
    this.dlq = opts.deadLetter ? { node: opts.deadLetter, codec: passthrough, tail: Promise.resolve(), busy: 0 } : undefined;
    for (const c of opts.consumers ?? []) {
      if (c.consumer.capabilities?.ordering === "stream") {
        this.trackers.set(c.name, new AckTracker());
        const consumer = c.consumer;
        if (consumer.commit) this.committers.set(c.name, new CommitCoalescer((ps) => consumer.commit!(ps)));
      }
    }
  }

  /** Runs cycles until stopped (or `maxCycles`/`untilIdle`), then drains and flushes. */
  run(opts: RunOptions = {}): Promise<BrokerStats> {
    if (this.running) throw new GeoWatchError("CONFIG", `broker "${this.name}" is already running`);
    this.running = this.loop(opts).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops consuming, waits for in-flight messages to be delivered and acknowledged, flushes stores. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    if (this.running) await this.running;
    else await this.drain();
  }

  /**
   * The push entry point: application code hands values (or messages) straight to the output side.
   * Resolves once every sink accepted them or they were dead-lettered.
   */
  async push(values: Array<unknown>, source = "push"): Promise<void> {
    const messages = values.map((v) => (isMessage(v) ? { ...v, source: v.source ?? source } : this.toMessage(v, source)));
    this.stats.received += messages.length;
    if (!(await this.process(messages, [], source))) throw notDelivered(this.name);
  }

  /** The push entry point for application objects: a Mapping turns each into a message first. */
  async pushMapped<A>(objects: A[], mapping: Mapping<A>, source = mapping.name): Promise<void> {
    const messages: Message[] = [];
    const dead: Dead[] = [];
    for (const obj of objects) {
      try {
        messages.push({ source, ...mapping.toMessage(obj) });
      } catch (err) {
        dead.push({ reason: `[${mapping.name}] mapping failed: ${reasonOf(err)}`, message: { value: obj as unknown, source }, source });
      }
    }
    this.stats.received += objects.length;
    if (!(await this.process(messages, dead, source))) throw notDelivered(this.name);
  }

  private toMessage(value: unknown, source: string): Message {
    const m: Message = { value, source };
    const meta = envelopeMetadata(value);
    if (meta) m.metadata = meta;
    return m;
  }

  private async loop(opts: RunOptions): Promise<BrokerStats> {
    const consumers = this.o.consumers ?? [];
    const sleepMs = this.o.sleepPeriodMs ?? 1000;
    const waitMs = this.o.receiveWaitMs ?? Math.min(sleepMs, 500);
    const maxInFlight = this.o.maxInFlight ?? 10_000;
    this.log.info("broker started", { broker: this.name, consumers: consumers.map((c) => c.name) });
    try {
      while (!this.stopping && (opts.maxCycles === undefined || this.stats.cycles < opts.maxCycles)) {
        const cycle = ++this.stats.cycles;
        await this.hook("before", () => this.o.hooks?.before?.(cycle));
        while (this.stats.inFlight >= maxInFlight && this.pending.size > 0) {
          this.flushAllSinks();
          await Promise.race(this.pending);
        }
        const counts = await Promise.all(consumers.map((c) => this.pump(c, waitMs)));
        let got = counts.reduce((a, b) => a + b, 0);
        got += await this.pollStoresIn();
        await this.hook("after", () => this.o.hooks?.after?.(cycle, this.stats));
        if (got === 0) {
          if (opts.untilIdle && this.pending.size === 0 && this.storeSinks.every((s) => s.buffered === 0) && this.sinks.every((s) => !s.lingering)) break;
          if (opts.untilIdle) {
            this.flushAllSinks();
            if (this.pending.size > 0) await Promise.race(this.pending);
          } else if (consumers.length === 0 || waitMs < sleepMs) {
            await sleep(consumers.length === 0 ? sleepMs : sleepMs - waitMs, this.abort.signal);
          }
        }
      }
    } finally {
      await this.drain();
      this.log.info("broker stopped", { broker: this.name, ...this.stats });
    }
    return { ...this.stats };
  }

  /** Runs a cycle hook; one that throws is logged and counted, never the end of the loop. */
  private async hook(which: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.stats.errors++;
      this.log.error(`${which} hook failed`, { broker: this.name, error: reasonOf(err) });
    }
  }

  private async drain(): Promise<void> {
    this.flushAllSinks();
    while (this.pending.size > 0) {
      await Promise.race([Promise.allSettled([...this.pending]), sleep(50)]);
      this.flushAllSinks();
    }
  }

  /** One receive from one consumer; processing continues in the background (bounded by maxInFlight). */
  private async pump(node: ConsumerNode, waitMs: number): Promise<number> {
    let records: InRecord[];
    try {
      records = await node.consumer.receive(node.count ?? this.o.count ?? 100, { waitMs, signal: this.abort.signal });
    } catch (err) {
      if (this.stopping) return 0;
      this.stats.errors++;
      this.log.error("receive failed", { broker: this.name, node: node.name, error: reasonOf(err) });
      await sleep(Math.min(this.o.sleepPeriodMs ?? 1000, 5000), this.abort.signal);
      return 0;
    }
    if (records.length === 0) return 0;
    this.stats.received += records.length;
    this.o.observer?.received?.(node.name, records.length);
    this.track(this.handleBatch(node, records));
    return records.length;
  }

  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p.finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private async handleBatch(node: ConsumerNode, records: InRecord[]): Promise<void> {
    const n = records.length;
    this.stats.inFlight += n;
    const tracker = this.trackers.get(node.name);
    const segments = tracker?.track(records);
    try {
      const codec = node.codec ?? passthrough;
      const messages: Message[] = [];
      const dead: Dead[] = [];
      for (let i = 0; i < n; i++) {
        const r = records[i]!;
        let value: unknown;
        try {
          value = codec.decode(r.value);
        } catch (err) {
          dead.push({ reason: reasonOf(err), record: r, source: node.name });
          continue;
        }
        const m: Message = { value, source: node.name };
        const meta = codec.metadataOf ? codec.metadataOf(value) : envelopeMetadata(value);
        if (meta) m.metadata = meta;
        if (r.key !== undefined) m.key = r.key;
        if (r.topic !== undefined) m.topic = r.topic;
        if (r.headers !== undefined) m.headers = r.headers;
        if (r.position !== undefined) m.position = r.position;
        if (r.timestamp !== undefined) m.timestamp = r.timestamp;
        messages.push(m);
      }
      const delivered = await this.process(messages, dead, node.name);
      if (!delivered) throw notDelivered(this.name);
      await this.acknowledge(node, records, segments);
    } catch (err) {
      // Nothing may be lost: give the records back where the source can take them.
      this.stats.errors++;
      this.log.error("batch not acknowledged", { broker: this.name, node: node.name, records: n, error: reasonOf(err) });
      if (node.consumer.nack) {
        await node.consumer.nack(records, { requeue: true, reason: reasonOf(err) }).catch((e: unknown) => {
          this.log.error("nack failed", { broker: this.name, node: node.name, error: reasonOf(e) });
        });
      }
    } finally {
      this.stats.inFlight -= n;
    }
  }

  private async acknowledge(node: ConsumerNode, records: InRecord[], segments: ReturnType<AckTracker["track"]> | undefined) {
    const c = node.consumer;
    if (segments) {
      const positions = this.trackers.get(node.name)!.done(segments);
      const committer = this.committers.get(node.name);
      if (positions.length > 0 && committer) await committer.add(positions);
    } else if (c.ack) {
      await c.ack(records);
    }
    this.stats.acked += records.length;
    this.o.observer?.acked?.(node.name, records.length);
  }

  /** Filters, stages, delivery, dead letters. Returns false only when the dead-letter sink refused. */
  private async process(input: Message[], dead: Dead[], source: string): Promise<boolean> {
    let messages = this.filter(input);
    try {
      // No await unless a hook or stage is async: each await is a turn of the event loop per batch.
      if (this.o.hooks?.middle) {
        const replaced = await this.o.hooks.middle(messages);
        if (replaced) messages = replaced;
      }
      for (const stage of this.o.stages ?? []) {
        const result = stage.process(messages);
        const out = result instanceof Promise ? await result : result;
        messages = out.pass;
        if (out.dead) for (const d of out.dead) dead.push({ reason: `[${stage.name}] ${d.reason}`, message: d.message, source });
      }
    } catch (err) {
      // A stage or hook that throws takes its batch to the dead-letter sink rather than the process down.
      const reason = `processing failed: ${reasonOf(err)}`;
      for (const m of messages) dead.push({ reason, message: m, source });
      messages = [];
    }
    if (messages.length > 0) {
      const results = await Promise.all([
        ...this.sinks.map((s) => this.deliverSerial(s, messages)),
        ...this.storeSinks.map((s) => s.add(messages)),
      ]);
      let undelivered = false;
      for (const failed of results) {
        for (const f of failed) {
          if (f.undelivered) undelivered = true;
          else dead.push({ ...f, source });
        }
      }
      // A sink was down at shutdown: nothing of this batch may be acknowledged; it is delivered again later.
      if (undelivered) return false;
    }
    if (dead.length === 0) return true;
    return this.deadLetter(dead);
  }

  private filter(input: Message[]): Message[] {
    let out = input;
    const fm = this.o.filterMetadata;
    if (fm) {
      const entries = Object.entries(fm);
      out = out.filter((m) => {
        const meta = m.metadata;
        return entries.every(([field, allowed]) => meta !== undefined && allowed.includes(meta[field]));
      });
    }
    if (this.o.deduplicate) out = out.filter((m) => this.firstSeen(m));
    if (this.o.filterLastOne && out.length > 1) out = [out[out.length - 1]!];
    this.stats.filtered += input.length - out.length;
    return out;
  }

  private firstSeen(m: Message): boolean {
    const mode = this.o.deduplicate;
    const id = m.key !== undefined && mode !== "content" ? `k:${m.key}` : mode === "key" ? undefined : `c:${stableStringify(m.value)}`;
    if (id === undefined) return true;
    if (this.dedupSeen.has(id)) {
      this.stats.duplicates++;
      return false;
    }
    this.dedupSeen.add(id);
    if (this.dedupSeen.size > (this.o.dedupWindow ?? 10_000)) {
      const oldest = this.dedupSeen.values().next().value;
      if (oldest !== undefined) this.dedupSeen.delete(oldest);
    }
    return true;
  }

  /** Sends to one sink after the previous batch for it, so a sink sees batches in order. */
  private deliverSerial(sink: SinkState, messages: Message[]): Promise<Failure[]> {
    const linger = sink.node.lingerMs ?? 0;
    if (linger <= 0 && sink.busy === 0) return this.chain(sink, messages);
    // Lingering, or a send is in flight: collect. Without linger, what arrives while the sink is busy goes
    // out as one send when it is free (group commit), instead of one send per received batch, each waiting
    // for the one before: small batches (a queue hands out what it has) otherwise cap the rate at one
    // batch per send round trip.
    return new Promise<Failure[]>((resolve) => {
      const acc = (sink.lingering ??= { messages: [], waiters: [], timer: undefined });
      for (const m of messages) acc.messages.push(m);
      acc.waiters.push({ mine: new Set(messages), resolve });
      if (acc.messages.length >= (sink.node.maxBatch ?? 500)) this.flushLingering(sink);
      else if (linger > 0) acc.timer ??= setTimeout(() => this.flushLingering(sink), linger);
    });
  }

  /** Sends after the previous send on this sink; when the sink falls idle, sends what collected meanwhile. */
  private chain(sink: SinkState, messages: Message[]): Promise<Failure[]> {
    sink.busy++;
    const run = sink.tail.then(() => this.deliver(sink, messages));
    sink.tail = run;
    void run.then(() => {
      if (--sink.busy === 0 && (sink.node.lingerMs ?? 0) <= 0) this.flushLingering(sink);
    });
    return run;
  }

  /** Sends what a lingering sink collected; each waiter gets the failures of its own messages. */
  private flushLingering(sink: SinkState): void {
    const acc = sink.lingering;
    if (!acc) return;
    sink.lingering = undefined;
    clearTimeout(acc.timer);
    void this.chain(sink, acc.messages).then((failed) => {
      for (const w of acc.waiters) w.resolve(failed.filter((f) => f.message !== undefined && w.mine.has(f.message)));
    });
  }

  private flushAllSinks(): void {
    for (const s of this.storeSinks) s.flushAll();
    for (const s of this.sinks) this.flushLingering(s);
  }

  /** Encodes and sends with retries; returns what could not be delivered. Never throws. */
  private async deliver(sink: SinkState, messages: Message[]): Promise<Failure[]> {
    const { node, codec } = sink;
    const failed: Failure[] = [];
    let records: OutRecord[] = [];
    let owners: Message[] = [];
    for (const m of messages) {
      if (m.routes && !m.routes.includes(node.name)) continue;
      let value;
      try {
        value = codec.encode(m.value);
      } catch (err) {
        failed.push({ reason: `[${node.name}] encode failed: ${reasonOf(err)}`, message: m });
        continue;
      }
      const rec: OutRecord = { value, contentType: codec.contentType };
      if (m.key !== undefined) rec.key = m.key;
      if (m.headers !== undefined) rec.headers = m.headers;
      if (m.metadata !== undefined) rec.metadata = m.metadata;
      if (node.topic !== undefined) rec.topic = node.topic;
      records.push(rec);
      owners.push(m);
    }
    const maxTries = node.maxTries ?? this.o.maxTries ?? 5;
    const timeoutMs = node.timeoutMs ?? this.o.timeoutMs ?? 30_000;
    const maxBatch = Math.min(node.producer.capabilities?.maxBatch ?? Infinity, node.maxBatch ?? Infinity);
    const maxBytes = Math.min(node.producer.capabilities?.maxBatchBytes ?? Infinity, node.maxBatchBytes ?? Infinity);
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
        to = chunkEnd(records, from, maxBatch, maxBytes);
        const chunk = from === 0 && to === records.length ? records : records.slice(from, to);
        let results;
        try {
          results = await withTimeout(node.producer.send(chunk), timeoutMs, `send to "${node.name}"`, node.backend);
          if (results.length !== chunk.length) {
            throw new GeoWatchError("SEND", `"${node.name}" returned ${results.length} results for ${chunk.length} records`, { backend: node.backend });
          }
        } catch (err) {
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
        if (ok > 0) {
          this.stats.sent += ok;
          this.o.observer?.sent?.(node.name, ok, performance.now() - started);
        }
      }
      if (retryRecords.length === 0) break;
      this.o.observer?.failed?.(node.name, retryRecords.length, lastReason);
      // Down: nothing got through, and the send threw, or every failure is a connection-class error, or the
      // backend's own health says its connection is lost.
      const down =
        retryRecords.length === attempted &&
        rejected === 0 &&
        (threw || connectionErrors === retryRecords.length || node.producer.health?.().ok === false);
      if (down) {
        downStreak++;
        if (this.stopping && ++triesSinceStop >= maxTries) {
          this.log.warn("sink down at shutdown: leaving messages unacknowledged", { broker: this.name, sink: node.name, records: retryRecords.length, error: lastReason });
          for (const m of retryOwners) failed.push({ reason: `[${node.name}] sink down at shutdown: ${lastReason}`, message: m, undelivered: true });
          break;
        }
      } else {
        downStreak = 0;
        if (++tries >= maxTries) {
          this.log.warn("giving up on records", { broker: this.name, sink: node.name, records: retryRecords.length, attempts: tries, error: lastReason });
          for (const m of retryOwners) failed.push({ reason: `[${node.name}] not delivered after ${tries} attempts: ${lastReason}`, message: m });
          break;
        }
      }
      this.stats.retries += retryRecords.length;
      this.o.observer?.retried?.(node.name, retryRecords.length);
      this.log.warn(down ? "sink down, retrying" : "retrying sink", { broker: this.name, sink: node.name, records: retryRecords.length, attempt, error: lastReason });
      await sleep(backoffMs(down ? downStreak : tries, this.o.retryBaseMs ?? 100, this.o.retryMaxMs ?? 10_000), this.stopping ? undefined : this.abort.signal);
      records = retryRecords;
      owners = retryOwners;
    }
    return failed;
  }

  /**
   * Sends dead letters, retrying until accepted; during shutdown it gives up after maxTries and returns
   * false so the source records stay unacknowledged. Without a dead-letter sink, the reason and payload
   * are logged at error level and the records are acknowledged.
   */
  private async deadLetter(dead: Dead[]): Promise<boolean> {
    this.stats.deadLettered += dead.length;
    const byReason = new Map<string, number>();
    for (const d of dead) byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) this.o.observer?.deadLettered?.(n, reason);
    if (!this.dlq) {
      for (const d of dead) {
        this.log.error("dead letter (no dead-letter sink configured)", { broker: this.name, source: d.source, reason: d.reason, payload: deadPayload(d) });
      }
      return true;
    }
    const records: OutRecord[] = dead.map((d) => ({
      value: JSON.stringify({
        reason: d.reason,
        broker: this.name,
        source: d.source,
        at: new Date().toISOString(),
        key: d.record?.key ?? d.message?.key,
        topic: d.record?.topic ?? d.message?.topic,
        position: d.record?.position ?? d.message?.position,
        metadata: d.message?.metadata,
        payload: deadPayload(d),
      }),
      contentType: "application/json",
      headers: { ...(d.record?.headers ?? d.message?.headers), "x-geowatch-reason": d.reason.slice(0, 512), "x-geowatch-source": d.source },
      ...(this.dlq!.node.topic !== undefined ? { topic: this.dlq!.node.topic } : {}),
    }));
    const node = this.dlq.node;
    let pendingRecs = records;
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await withTimeout(node.producer.send(pendingRecs), node.timeoutMs ?? this.o.timeoutMs ?? 30_000, "dead-letter send", node.backend);
        pendingRecs = pendingRecs.filter((_, i) => !results[i]?.ok);
        if (pendingRecs.length === 0) return true;
      } catch (err) {
        this.log.error("dead-letter sink failed", { broker: this.name, sink: node.name, attempt, error: reasonOf(err) });
      }
      if (this.stopping && attempt >= (node.maxTries ?? this.o.maxTries ?? 5)) return false;
      await sleep(backoffMs(attempt, this.o.retryBaseMs ?? 100, this.o.retryMaxMs ?? 10_000));
    }
  }

  private async pollStoresIn(): Promise<number> {
    let total = 0;
    const now = Date.now();
    for (const node of this.o.storesIn ?? []) {
      const last = this.storeInReadAt.get(node.name);
      if (last !== undefined && (node.pollMs === undefined || now - last < node.pollMs)) continue;
      this.storeInReadAt.set(node.name, now);
      try {
        const values = await readStoreIn(node);
        if (values.length === 0) continue;
        total += values.length;
        this.stats.received += values.length;
        this.o.observer?.received?.(node.name, values.length);
        const messages = values.map((v) => this.toMessage(v, node.name));
        this.track(
          (async () => {
            this.stats.inFlight += messages.length;
            try {
              await this.process(messages, [], node.name);
            } finally {
              this.stats.inFlight -= messages.length;
            }
          })(),
        );
      } catch (err) {
        this.stats.errors++;
        this.log.error("store read failed", { broker: this.name, node: node.name, error: reasonOf(err) });
      }
    }
    return total;
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

function notDelivered(broker: string): GeoWatchError {
  return new GeoWatchError("SEND", "not delivered (a sink was down at shutdown, or the dead-letter sink refused); left unacknowledged", {
    backend: broker,
  });
}

/** Errors that say the sink cannot be reached, as opposed to a problem with the record. */
function isConnectionError(err: unknown): boolean {
  return isGeoWatchError(err) && (err.code === "CONNECT" || err.code === "TIMEOUT" || err.code === "CLOSED");
}

function isMessage(v: unknown): v is Message {
  return v !== null && typeof v === "object" && "value" in v && ("source" in v || "metadata" in v || "key" in v) && Object.keys(v).every((k) => MESSAGE_KEYS.has(k));
}
const MESSAGE_KEYS = new Set(["value", "metadata", "key", "topic", "headers", "source", "position", "timestamp", "routes"]);

/** The metadata of a `{metadata, data}` envelope, if the value is one. */
export function envelopeMetadata(value: unknown): Metadata | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const meta = (value as { metadata?: unknown }).metadata;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta) || !("data" in value)) return undefined;
  return meta as Metadata;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The original payload: text when it is text (valid UTF-8), else `{ base64 }`. */
function deadPayload(d: Dead): unknown {
  if (!d.record) return d.message?.value;
  const v = d.record.value;
  if (typeof v === "string") return v;
  try {
    return strictUtf8.decode(v);
  } catch {
    return { base64: Buffer.from(v).toString("base64") };
  }
}

