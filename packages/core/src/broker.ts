import { AckTracker, CommitCoalescer } from "./ack-tracker.js";
import { GeoWatchError, reasonOf } from "./errors.js";
import { silentLogger } from "./logger.js";
import { passthrough, ProducerSink, type ProducerNode } from "./producer-sink.js";
import { StoreSink, type StoreOutNode } from "./store-sink.js";
import { readStoreIn, type StoreInNode } from "./store-source.js";
import type { Codec, Consumer, InRecord, Logger, Mapping, Message, Metadata, OutRecord, Stage, StageOutput } from "./types.js";
import { backoffMs, describeUnencodable, safeJson, sleep, stableStringify, withTimeout } from "./util.js";

export interface ConsumerNode {
  name: string;
  consumer: Consumer;
  /** Decodes records; default passes text through. */
  codec?: Codec;
  /** Records per receive for this consumer (overrides the broker's `count`). */
  count?: number;
  backend?: string;
}

export type { ProducerNode } from "./producer-sink.js";

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
  /** The dead-letter sink refused or failed `n` dead letters (they are retried; nothing is acknowledged meanwhile). */
  deadLetterFailed?(n: number, reason: string): void;
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
  /** Attempts in which the dead-letter sink refused or failed dead letters. */
  deadLetterFailures: number;
  inFlight: number;
}

export interface RunOptions {
  /** Stop after this many cycles (the original's `run(max_cycle)`). */
  maxCycles?: number;
  /**
   * Stop once caught up: a cycle received nothing, nothing is in flight, and every consumer that can tell
   * (`caughtUp`) has no lag left.
   */
  untilIdle?: boolean;
}

/** A message that could not be processed, with the record it came from when there was one. */
interface Dead {
  reason: string;
  message?: Message;
  record?: InRecord;
  source: string;
}

/** One batch's stateful-stage commits, run in processing order once the batch is delivered. */
interface CommitTicket {
  /** Resolves with whether the batch was delivered. */
  settle(delivered: boolean): void;
  /** Resolves true once the commits ran, false when they may not (this or an earlier batch undelivered). */
  done: Promise<boolean>;
}

/**
 * Moves messages from consumers and input stores through filters and stages to producers and output
 * stores. At-least-once: a source record is acknowledged only after every sink accepted what it produced
 * (or the dead-letter sink accepted it with a reason), and after the stateful stages persisted the state
 * the batch produced.
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
    deadLetterFailures: 0,
    inFlight: 0,
  };
  private readonly o: BrokerOptions;
  private readonly log: Logger;
  private readonly sinks: ProducerSink[];
  private readonly storeSinks: StoreSink[];
  private readonly dlq: ProducerNode | undefined;
  private readonly trackers = new Map<string, AckTracker>();
  private readonly committers = new Map<string, CommitCoalescer>();
  private readonly pending = new Set<Promise<void>>();
  private readonly dedupSeen = new Set<string>();
  private readonly abort = new AbortController();
  private readonly storeInReadAt = new Map<string, number>();
  private running: Promise<BrokerStats> | undefined;
  private stopping = false;
  /** Stage work of the batch before, while a stage is asynchronous: batches enter the stages in order. */
  private stageLane: Promise<unknown> | undefined;
  /** The last batch's stage commits. */
  private commitTail: Promise<boolean> = Promise.resolve(true);
  /** Set while the dead-letter sink keeps refusing: why, and since when. */
  private dlqProblem: { reason: string; since: number } | undefined;
  private sinkNames: Set<string> | undefined;

  constructor(opts: BrokerOptions) {
    this.o = opts;
    this.name = opts.name;
    this.log = opts.logger ?? silentLogger;
    const observer = opts.observer;
    this.sinks = (opts.producers ?? []).map(
      (node) =>
        new ProducerSink(node, {
          broker: this.name,
          logger: this.log,
          maxTries: opts.maxTries ?? 5,
          timeoutMs: opts.timeoutMs ?? 30_000,
          retryBaseMs: opts.retryBaseMs ?? 100,
          retryMaxMs: opts.retryMaxMs ?? 10_000,
          signal: this.abort.signal,
          stopping: () => this.stopping,
          onSent: (n, ms) => {
            this.stats.sent += n;
            observer?.sent?.(node.name, n, ms);
          },
          onFailed: (n, reason) => observer?.failed?.(node.name, n, reason),
          onRetry: (n) => {
            this.stats.retries += n;
            observer?.retried?.(node.name, n);
          },
        }),
    );
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
            this.observe("retried", () => observer?.retried?.(node.name, n));
          },
        }),
    );
    this.dlq = opts.deadLetter;
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

  /** While the dead-letter sink keeps refusing or failing: why. Shown by `/ready`. */
  deadLetterProblem(): string | undefined {
    return this.dlqProblem?.reason;
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
          if (opts.untilIdle && this.pending.size === 0 && this.storeSinks.every((s) => s.buffered === 0) && this.sinks.every((s) => s.idle)) {
            if (await this.caughtUp(consumers)) break;
            continue;
          }
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

  /** Whether every consumer that can tell has no lag left; one that cannot counts as caught up. */
  private async caughtUp(consumers: ConsumerNode[]): Promise<boolean> {
    const answers = await Promise.all(
      consumers.map(async (c) => {
        if (!c.consumer.caughtUp) return true;
        try {
          return await c.consumer.caughtUp();
        } catch (err) {
          this.log.warn("caught-up check failed", { broker: this.name, node: c.name, error: reasonOf(err) });
          return false;
        }
      }),
    );
    return answers.every(Boolean);
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
    this.observe("received", () => this.o.observer?.received?.(node.name, records.length));
    this.track(this.handleBatch(node, records));
    return records.length;
  }

  private observe(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.warn(`${what} callback failed`, { broker: this.name, error: reasonOf(err) });
    }
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
      // Decoded and handed to `process` by a plain function: no decoded value stays in this async frame (a loop
      // variable would keep the batch's last one) while the batch waits for its sinks. `process` lets go of the
      // decoded input once the stages ran (see there).
      const done = this.decodeAndProcess(node, records);
      if (!(await done)) throw notDelivered(this.name);
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

  /** Decodes a batch (what fails to decode becomes a dead letter with its record) and starts processing it. */
  private decodeAndProcess(node: ConsumerNode, records: InRecord[]): Promise<boolean> {
    const codec = node.codec ?? passthrough;
    const messages: Message[] = [];
    /** The record each decoded message came from (same index), so a dead letter carries the original bytes. */
    const fromRecords: InRecord[] = [];
    const dead: Dead[] = [];
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      let value: unknown;
      let meta: Metadata | undefined;
      try {
        value = codec.decode(r.value);
        meta = codec.metadataOf ? codec.metadataOf(value) : envelopeMetadata(value);
      } catch (err) {
        dead.push({ reason: decodeReason(err, r), record: r, source: node.name });
        continue;
      }
      const m: Message = new DecodedMessage(value, node.name);
      if (meta) m.metadata = meta;
      if (r.key !== undefined) m.key = r.key;
      if (r.topic !== undefined) m.topic = r.topic;
      if (r.headers !== undefined) m.headers = r.headers;
      if (r.position !== undefined) m.position = r.position;
      if (r.timestamp !== undefined) m.timestamp = r.timestamp;
      messages.push(m);
      fromRecords.push(r);
    }
    return this.process(messages, dead, node.name, fromRecords);
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
    this.observe("acked", () => this.o.observer?.acked?.(node.name, records.length));
  }

  /**
   * Filters, stages, delivery, dead letters, stage commits. Returns false only when something could not be
   * delivered at shutdown or the dead-letter sink refused at shutdown. Never throws: whatever a message
   * holds, it ends delivered or dead-lettered.
   */
  private async process(batch: Message[], dead: Dead[], source: string, batchRecords?: InRecord[]): Promise<boolean> {
    // The decoded input is let go once the stages ran: a batch then waits for its sinks (a disk sync, a network
    // round trip) while later batches are processed, and a stage that turns 1,000 points into a few events must
    // not keep the 1,000 decoded values alive meanwhile (they would survive young-generation GCs and be copied
    // to the old generation). Only the input messages among those delivered keep their record, for the dead
    // letter of a sink that refuses them.
    let input: Message[] | undefined = batch;
    let fromRecords: InRecord[] | undefined = batchRecords;
    // Parameters stay in an async function's frame until it ends: they are let go here and below.
    batch = [];
    batchRecords = undefined;
    let messages = this.filter(input, dead, source);
    if (this.o.hooks?.middle) {
      try {
        const replaced = await this.o.hooks.middle(messages);
        if (replaced) messages = replaced;
      } catch (err) {
        // A hook that throws takes its batch to the dead-letter sink rather than the process down.
        const reason = `middle hook failed: ${reasonOf(err)}`;
        for (const m of messages) dead.push({ reason, message: m, source });
        messages = [];
      }
    }
    const stageless = (this.o.stages?.length ?? 0) === 0;
    const staged = this.runStagesInOrder(messages, dead, source);
    messages = [];
    const { pass: routed, commits } = staged instanceof Promise ? await staged : staged;
    const pass = this.routable(routed, dead, source);
    const ticket = commits.length > 0 ? this.commitTicket(commits) : undefined;
    // Gives dead letters of input messages their record (the original bytes).
    let attach: ((dead: Dead[]) => void) | undefined;
    if (fromRecords && stageless) {
      // No stage: what is delivered is the input itself, kept alive by the delivery anyway.
      const from = fromRecords, all = input;
      attach = (d) => attachRecords(d, all, from);
    } else if (fromRecords) {
      if (dead.length > 0) attachRecords(dead, input, fromRecords);
      const origins = originsOf(pass, input, fromRecords);
      if (origins) attach = (d) => giveRecords(d, origins);
    }
    input = undefined;
    fromRecords = undefined;
    let delivered = true;
    if (pass.length > 0) {
      const results = await Promise.all([...this.sinks.map((s) => s.add(pass)), ...this.storeSinks.map((s) => s.add(pass))]);
      for (const failed of results) {
        for (const f of failed) {
          if (f.undelivered) delivered = false;
          else dead.push({ reason: f.reason, message: f.message, source });
        }
      }
    }
    // A sink was down at shutdown: nothing of this batch may be acknowledged; it is delivered again later.
    if (delivered && dead.length > 0) {
      attach?.(dead);
      delivered = await this.deadLetter(dead);
    }
    if (!ticket) return delivered;
    ticket.settle(delivered);
    return ticket.done;
  }

  /** Messages whose `routes` name only sinks this broker lacks would be acknowledged and delivered to nobody: dead-letter them. */
  private routable(messages: Message[], dead: Dead[], source: string): Message[] {
    if (!messages.some((m) => m.routes !== undefined)) return messages;
    const names = this.sinkNames ??= new Set([...this.sinks.map((s) => s.name), ...(this.o.storesOut ?? []).map((s) => s.name)]);
    return messages.filter((m) => {
      // `routes: []` is a deliberate drop; routes that all name missing sinks are a mistake worth a dead letter.
      if (m.routes === undefined || m.routes.length === 0 || m.routes.some((r) => names.has(r))) return true;
      dead.push({ reason: `routed to ${m.routes.map((r) => JSON.stringify(r)).join(", ")}, which this broker does not have (its sinks: ${[...names].join(", ") || "none"})`, message: m, source });
      return false;
    });
  }

  /**
   * Runs the stages over a batch. Batches enter the stages in the order they were received: while a stage
   * is asynchronous, the next batch waits for the one before (a stateful stage must see earlier batches
   * first). No await when every stage is synchronous.
   */
  private runStagesInOrder(messages: Message[], dead: Dead[], source: string): Staged | Promise<Staged> {
    const stages = this.o.stages ?? [];
    if (stages.length === 0) return { pass: messages, commits: [] };
    const first = stages[0]!;
    if (first.prepare && messages.length > 0) {
      try {
        first.prepare(messages);
      } catch (err) {
        this.log.warn("stage prepare failed; the batch is processed without it", { broker: this.name, stage: first.name, error: reasonOf(err) });
      }
    }
    const run = () => this.runStages(stages, messages, dead, source);
    if (this.stageLane) {
      const next = this.stageLane.then(run);
      this.stageLane = next;
      void next.then(() => {
        if (this.stageLane === next) this.stageLane = undefined;
      });
      return next;
    }
    const result = run();
    if (result instanceof Promise) {
      this.stageLane = result;
      void result.then(() => {
        if (this.stageLane === result) this.stageLane = undefined;
      });
    }
    return result;
  }

  private runStages(stages: Stage[], input: Message[], dead: Dead[], source: string): Staged | Promise<Staged> {
    let messages = input;
    const commits: Array<() => void | Promise<void>> = [];
    for (let i = 0; i < stages.length; i++) {
      const stage = stages[i]!;
      let out: StageOutput | Promise<StageOutput>;
      try {
        out = stage.process(messages);
      } catch (err) {
        out = this.isolate(stage, messages, err);
      }
      if (out instanceof Promise) {
        // Finish this stage asynchronously, then the rest.
        return out
          .catch((err: unknown) => this.isolate(stage, messages, err))
          .then(async (o) => {
            const rest = this.takeStageOutput(stage, o, dead, source, commits);
            const tail = this.runStages(stages.slice(i + 1), rest, dead, source);
            const t = tail instanceof Promise ? await tail : tail;
            return { pass: t.pass, commits: [...commits, ...t.commits] };
          });
      }
      messages = this.takeStageOutput(stage, out, dead, source, commits);
    }
    return { pass: messages, commits };
  }

  private takeStageOutput(stage: Stage, out: StageOutput, dead: Dead[], source: string, commits: Array<() => void | Promise<void>>): Message[] {
    if (out.dead) for (const d of out.dead) dead.push({ reason: `[${stage.name}] ${d.reason}`, message: d.message, source });
    if (out.commit) commits.push(out.commit);
    return out.pass;
  }

  /**
   * A stage threw on a batch: run it on each message alone, so only the messages it cannot take are
   * dead-lettered (with the stage's reason) and the rest flows.
   */
  private isolate(stage: Stage, messages: Message[], err: unknown): StageOutput | Promise<StageOutput> {
    this.log.warn("stage failed on a batch; retrying message by message", { broker: this.name, stage: stage.name, error: reasonOf(err) });
    if (messages.length === 1) return { pass: [], dead: [{ message: messages[0]!, reason: `processing failed: ${describeUnencodable(messages[0]!.value, err)}` }] };
    const out: Required<Pick<StageOutput, "pass" | "dead">> & { commits: Array<() => void | Promise<void>> } = { pass: [], dead: [], commits: [] };
    const take = (r: StageOutput) => {
      out.pass.push(...r.pass);
      if (r.dead) out.dead.push(...r.dead);
      if (r.commit) out.commits.push(r.commit);
    };
    const fail = (m: Message, e: unknown) => out.dead.push({ message: m, reason: `processing failed: ${describeUnencodable(m.value, e)}` });
    const finish = (): StageOutput => {
      const commits = out.commits;
      return commits.length === 0 ? { pass: out.pass, dead: out.dead } : { pass: out.pass, dead: out.dead, commit: async () => { for (const c of commits) await c(); } };
    };
    const step = (k: number): StageOutput | Promise<StageOutput> => {
      for (; k < messages.length; k++) {
        const m = messages[k]!;
        let r: StageOutput | Promise<StageOutput>;
        try {
          r = stage.process([m]);
        } catch (e) {
          fail(m, e);
          continue;
        }
        if (r instanceof Promise) {
          const next = k + 1;
          return r.then(
            (v) => (take(v), step(next)),
            (e: unknown) => (fail(m, e), step(next)),
          );
        }
        take(r);
      }
      return finish();
    };
    return step(0);
  }

  /**
   * Queues a batch's stage commits behind the previous batch's. They run once this batch is delivered and
   * every earlier batch's commits ran; after a batch that was not delivered, no later commit runs (its
   * state was computed on top of state that is not persisted), so those batches stay unacknowledged too.
   */
  private commitTicket(commits: Array<() => void | Promise<void>>): CommitTicket {
    let settle!: (delivered: boolean) => void;
    const delivered = new Promise<boolean>((r) => (settle = r));
    const done = this.commitTail.then(async (before) => {
      const ok = (await delivered) && before;
      if (!ok) return false;
      for (let attempt = 1; ; attempt++) {
        try {
          for (const c of commits) await c();
          return true;
        } catch (err) {
          // The state store is down: like a down sink, retried for the whole outage, then left unacknowledged at shutdown.
          this.stats.errors++;
          this.log.error("stage state not persisted; retrying", { broker: this.name, attempt, error: reasonOf(err) });
          if (this.stopping && attempt >= (this.o.maxTries ?? 5)) return false;
          await sleep(backoffMs(attempt, this.o.retryBaseMs ?? 100, this.o.retryMaxMs ?? 10_000));
        }
      }
    });
    this.commitTail = done;
    return { settle, done };
  }

  private filter(input: Message[], dead: Dead[], source: string): Message[] {
    let out = input;
    const fm = this.o.filterMetadata;
    if (fm) {
      const entries = Object.entries(fm);
      out = out.filter((m) => {
        const meta = m.metadata;
        return entries.every(([field, allowed]) => meta !== undefined && Object.hasOwn(meta, field) && allowed.includes(meta[field]));
      });
    }
    if (this.o.deduplicate) {
      out = out.filter((m) => {
        try {
          return this.firstSeen(m);
        } catch (err) {
          dead.push({ reason: `deduplicate failed: ${describeUnencodable(m.value, err)}`, message: m, source });
          return false;
        }
      });
    }
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

  private flushAllSinks(): void {
    for (const s of this.storeSinks) s.flushAll();
    for (const s of this.sinks) s.flush();
  }

  /** Builds one dead-letter record; whatever the message holds, this does not throw. */
  private deadRecord(d: Dead): OutRecord {
    const fields = {
      reason: d.reason,
      broker: this.name,
      source: d.source,
      at: new Date().toISOString(),
      key: d.record?.key ?? d.message?.key,
      topic: d.record?.topic ?? d.message?.topic,
      position: d.record?.position ?? d.message?.position,
      metadata: d.message?.metadata,
      payload: deadPayload(d),
    };
    const first = safeJson(fields);
    // The decoded value cannot be written: keep what can be, and say why the rest is missing.
    const json = first.problem === undefined ? first.json : safeJson({ ...fields, metadata: undefined, payload: { unencodable: first.problem } }).json;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.record?.headers ?? d.message?.headers ?? {})) if (typeof v === "string") headers[k] = v;
    headers["x-geowatch-reason"] = d.reason.slice(0, 512);
    headers["x-geowatch-source"] = d.source;
    const rec: OutRecord = { value: json, contentType: "application/json", headers };
    if (this.dlq?.topic !== undefined) rec.topic = this.dlq.topic;
    return rec;
  }

  /**
   * Sends dead letters, retrying until accepted (each refusal logged at error level and counted); during
   * shutdown it gives up after maxTries and returns false so the source records stay unacknowledged.
   * Without a dead-letter sink, the reason and payload are logged at error level and the records are
   * acknowledged.
   */
  private async deadLetter(dead: Dead[]): Promise<boolean> {
    this.stats.deadLettered += dead.length;
    const byReason = new Map<string, number>();
    for (const d of dead) byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) this.observe("deadLettered", () => this.o.observer?.deadLettered?.(n, reason));
    if (!this.dlq) {
      for (const d of dead) {
        this.log.error("dead letter (no dead-letter sink configured)", { broker: this.name, source: d.source, reason: d.reason, payload: safeJson(deadPayload(d)).json.slice(0, 4096) });
      }
      return true;
    }
    const node = this.dlq;
    let pendingRecs = dead.map((d) => this.deadRecord(d));
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      try {
        const results = await withTimeout(node.producer.send(pendingRecs), node.timeoutMs ?? this.o.timeoutMs ?? 30_000, "dead-letter send", node.backend);
        const refused = results.length === pendingRecs.length ? results.map((r) => (r.ok ? undefined : reasonOf(r.error))) : pendingRecs.map(() => `returned ${results.length} results for ${pendingRecs.length} records`);
        pendingRecs = pendingRecs.filter((_, i) => refused[i] !== undefined);
        if (pendingRecs.length === 0) {
          if (this.dlqProblem) this.log.info("dead-letter sink accepts again", { broker: this.name, sink: node.name });
          this.dlqProblem = undefined;
          return true;
        }
        reason = `refused ${pendingRecs.length} dead letter(s): ${refused.find((r) => r !== undefined)}`;
      } catch (err) {
        reason = reasonOf(err);
      }
      this.stats.deadLetterFailures++;
      this.dlqProblem ??= { reason, since: Date.now() };
      this.dlqProblem.reason = reason;
      this.observe("deadLetterFailed", () => this.o.observer?.deadLetterFailed?.(pendingRecs.length, reason));
      this.log.error("dead-letter sink failed; retrying (the source is not acknowledged meanwhile)", { broker: this.name, sink: node.name, attempt, records: pendingRecs.length, error: reason });
      if (this.stopping && attempt >= (node.maxTries ?? this.o.maxTries ?? 5)) return false;
      await sleep(backoffMs(attempt, this.o.retryBaseMs ?? 100, this.o.retryMaxMs ?? 10_000), this.stopping ? undefined : this.abort.signal);
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
        this.observe("received", () => this.o.observer?.received?.(node.name, values.length));
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

/** What the stages made of a batch: messages to deliver and the state commits to run after delivery. */
interface Staged {
  pass: Message[];
  commits: Array<() => void | Promise<void>>;
}

/**
 * A decoded input message, made by a constructor, not an object literal. V8 may decide from the first batches (a
 * small young generation, batches alive across several collections) that the objects of a literal live long and
 * allocate them in the old generation from then on. Messages are short-lived but point at their decoded value:
 * dead ones in the old generation keep their values alive through every young collection until the next full one.
 * Measured in the geofence-e2e bench (2M points): the message literal was tenured in about half of the runs, which
 * then took 20 MB of copying per young collection, ~1 s more CPU and 400 instead of 270 MB peak RSS. Objects made
 * by `new` have no allocation site. Own enumerable properties only, as a literal's: spreads and stages see no
 * difference.
 */
class DecodedMessage implements Message {
  declare metadata?: Metadata;
  declare key?: string;
  declare topic?: string;
  declare headers?: Record<string, string>;
  declare position?: Message["position"];
  declare timestamp?: number;
  constructor(
    public value: unknown,
    public source: string,
  ) {}
}

/**
 * The record of each of `wanted` that is an input message (same object), or undefined when none is. Of a stage's
 * output: one that passes its input on keeps them all, one that emits new messages (events) keeps none.
 */
function originsOf(wanted: Message[], messages: Message[], records: InRecord[]): Map<Message, InRecord> | undefined {
  if (wanted.length === 0) return undefined;
  const want = new Set(wanted);
  let out: Map<Message, InRecord> | undefined;
  for (let i = 0; i < messages.length; i++) if (want.has(messages[i]!)) (out ??= new Map()).set(messages[i]!, records[i]!);
  return out;
}

/** Gives each dead letter of a decoded message the record it came from (looked up only when there are dead letters). */
function attachRecords(dead: Dead[], messages: Message[], records: InRecord[]): void {
  const wanted: Message[] = [];
  for (const d of dead) if (!d.record && d.message) wanted.push(d.message);
  giveRecords(dead, originsOf(wanted, messages, records));
}

/** Sets the record of each dead letter without one whose message `origins` knows. */
function giveRecords(dead: Dead[], origins: Map<Message, InRecord> | undefined): void {
  if (!origins) return;
  for (const d of dead) {
    if (d.record || !d.message) continue;
    const r = origins.get(d.message);
    if (r) d.record = r;
  }
}

/** A decode failure's reason, naming where the record sits when the source says. */
function decodeReason(err: unknown, r: InRecord): string {
  const where = r.position ? ` (${r.position.stream} at ${r.position.offset})` : "";
  return `${reasonOf(err)}${where}`;
}

function notDelivered(broker: string): GeoWatchError {
  return new GeoWatchError("SEND", "not delivered (a sink was down at shutdown, or the dead-letter sink refused); left unacknowledged", {
    backend: broker,
  });
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

/** The original payload: text when it is text (valid UTF-8), else `{ base64 }`; the decoded value when there is no record. */
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
