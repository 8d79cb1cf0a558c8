/**
 * The GeoWatch contracts. A backend implements the few required members of a role; everything
 * else is an optional capability that the core falls back around.
 */

/** Bytes or text as a channel carries them. */
export type Payload = Uint8Array | string;

/** The original GeoWatch envelope's metadata. */
export interface Metadata {
  actiontype?: string;
  targettype?: string;
  featuretype?: string;
  /** ISO 8601 date of the event. */
  date?: string;
  [key: string]: unknown;
}

/** The `{ metadata, data }` envelope many GeoWatch messages use. */
export interface Envelope<T = unknown> {
  metadata: Metadata;
  data: T;
}

/**
 * Where a record sits in its source. `stream` names an ordered sequence (a Kafka partition, a file);
 * `next` is what the source commits once this record and everything before it in the stream is
 * acknowledged (Kafka: offset + 1; a file: the byte after the line).
 */
export interface Position {
  stream: string;
  offset: string | number;
  next: string | number;
}

/** A record as a consumer receives it, before decoding. */
export interface InRecord {
  value: Payload;
  key?: string;
  /** The topic/queue it came from, when the consumer reads more than one. */
  topic?: string;
  headers?: Record<string, string>;
  /** Set by ordered sources: acknowledgement commits up to the lowest unacknowledged position. */
  position?: Position;
  /** Backend-private handle (a receipt handle, a delivery tag, a row id) used by ack/nack. */
  handle?: unknown;
  /** Times this record was delivered before, when the source knows. */
  redeliveries?: number;
  /** Milliseconds since the epoch, when the source knows. */
  timestamp?: number;
}

/** A record as a producer sends it, after encoding. */
export interface OutRecord {
  value: Payload;
  key?: string;
  headers?: Record<string, string>;
  /** Destination topic/queue/key when the sink addresses more than one. */
  topic?: string;
  contentType?: string;
  /** Decoded envelope metadata, for sinks that template on it (Slack, SNS, email). */
  metadata?: Metadata;
  /** The value is JSON text on one line, as the codec that encoded it vouches (`Codec.jsonText`). */
  jsonText?: boolean;
}

/** The outcome of sending one record. */
export type SendResult = { ok: true; id?: string } | { ok: false; error: Error; retryable?: boolean };

/** What a decoded message looks like inside the broker. */
export interface Message<T = unknown> {
  /** The decoded value (for envelope codecs, the whole envelope). */
  value: T;
  /** Envelope metadata, when the value is an envelope. */
  metadata?: Metadata;
  key?: string;
  headers?: Record<string, string>;
  /** Which source this came from (node name). */
  source?: string;
  /** The topic/queue it came from, when the source says. */
  topic?: string;
  position?: Position;
  timestamp?: number;
  /** When set, only the sinks with these names receive the message. */
  routes?: string[];
}

/** Optional behaviour a consumer declares. */
export interface ConsumerCapabilities {
  /** Records carry per-record ack/nack (queues). */
  acks?: boolean;
  /**
   * `stream`: records are ordered within `position.stream` and acknowledged by committing a position.
   * `total`: one FIFO sequence, acknowledged per record.
   */
  ordering?: "none" | "stream" | "total";
  /** Receives many records per call. */
  batching?: boolean;
}

export interface ReceiveOptions {
  /** Longest time to wait for the first record; resolve with [] after it. */
  waitMs: number;
  signal?: AbortSignal;
}

/**
 * What a connected backend reports about its connection. `ok: false` means the connection dropped and
 * the backend is re-establishing it itself (a client that reconnects, a consumer group rejoining).
 */
export interface BackendHealth {
  ok: boolean;
  /** Why not, when `ok` is false. */
  error?: string;
}

/** Pulls records from a channel. Only `receive` is required. */
export interface Consumer {
  readonly capabilities?: ConsumerCapabilities;
  connect?(): Promise<void>;
  /** Returns up to `max` records, waiting at most `opts.waitMs` for the first one. */
  receive(max: number, opts: ReceiveOptions): Promise<InRecord[]>;
  /** Acknowledge records (queues: delete; streams may ignore and use commit). */
  ack?(records: InRecord[]): Promise<void>;
  /** Give records back: `requeue` redelivers them, otherwise the source drops or dead-letters them. */
  nack?(records: InRecord[], opts: { requeue: boolean; reason?: string }): Promise<void>;
  /** Persist positions for ordered sources; the core calls it with the highest safe `next` per stream. */
  commit?(positions: Position[]): Promise<void>;
  /**
   * True when nothing is left to read right now: no lag on any assigned stream (Kafka: every assigned
   * partition's consumed position has reached its high watermark). `run({ untilIdle })` stops only when
   * every consumer that has this says so; one that lacks it counts as caught up after an empty receive.
   */
  caughtUp?(): Promise<boolean>;
  /** Once connected: whether the connection still works (the runtime reports `reconnecting` and not ready when not). Cheap, synchronous. */
  health?(): BackendHealth;
  close?(): Promise<void>;
}

/** Optional behaviour a producer declares. */
export interface ProducerCapabilities {
  batching?: boolean;
  /** Largest batch `send` accepts; the core splits above it. */
  maxBatch?: number;
  /** Largest total bytes of one `send`; the core splits above it. */
  maxBatchBytes?: number;
  /** Largest single record in bytes, when the channel has a limit. */
  maxRecordBytes?: number;
}

/** Sends records to a channel. Only `send` is required. */
export interface Producer {
  readonly capabilities?: ProducerCapabilities;
  connect?(): Promise<void>;
  /** Sends a batch; returns one result per record, in order. Throwing fails the whole batch. */
  send(records: OutRecord[]): Promise<SendResult[]>;
  /** `topic_check`: make sure the destination exists, creating it where the backend can. */
  ensureTopic?(topic: string, opts: { create: boolean; partitions?: number }): Promise<void>;
  /** Once connected: whether the connection still works (the runtime reports `reconnecting` and not ready when not). Cheap, synchronous. */
  health?(): BackendHealth;
  close?(): Promise<void>;
}

/** Optional behaviour a store declares. */
export interface StoreCapabilities {
  /** `write` with `append: true` adds to what is there instead of replacing it. */
  append?: boolean;
  read?: boolean;
}

export interface StoreWrite {
  key: string;
  body: Payload;
  contentType: string;
  /** Add to the existing value instead of replacing it (only when the store declares `append`). */
  append: boolean;
}

/** A batch GIS store (memcached, WFS-T, S3, files). Only `write` is required. */
export interface Store {
  readonly capabilities?: StoreCapabilities;
  connect?(): Promise<void>;
  write(op: StoreWrite): Promise<void>;
  /** Read a key's value; undefined when absent. */
  read?(key: string): Promise<Payload | undefined>;
  /** Once connected: whether the connection still works (the runtime reports `reconnecting` and not ready when not). Cheap, synchronous. */
  health?(): BackendHealth;
  close?(): Promise<void>;
}

/** Turns values into bytes and back. */
export interface Codec<T = unknown> {
  readonly name: string;
  readonly contentType: string;
  encode(value: T): Payload;
  /** Throws a GeoWatchError with code `DECODE` naming what is wrong. */
  decode(payload: Payload): T;
  /** Packs many values into one store body. Default: encoded values joined by newlines. */
  pack?(values: T[]): Payload;
  /** Unpacks a store body into values. Default: split on newlines and decode each. */
  unpack?(payload: Payload): T[];
  /** True when pack(a) + pack(b) equals pack(a concat b), so stores may append bytes. */
  readonly appendable?: boolean;
  /** When the codec's values are `{metadata, data}` envelopes, where to read the metadata. */
  metadataOf?(value: T): Metadata | undefined;
  /**
   * True when `encode` returns JSON text on one line, as `JSON.stringify` writes it (no line break, no lone
   * surrogate). The broker then marks the records (`OutRecord.jsonText`) and writers need not parse them again.
   */
  readonly jsonText?: boolean;
}

/** Turns application objects into messages and back (the original's mappings). */
export interface Mapping<A = unknown, T = unknown> {
  readonly name: string;
  toMessage(obj: A): Message<T>;
  fromMessage?(msg: Message<T>): A;
}

/** Backend roles. */
export type Role = "consumer" | "producer" | "store" | "codec";

/** A structured logger; the core logs JSON lines through it. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** What a factory gets besides its own options. */
export interface BackendContext {
  logger: Logger;
  /** Node name from config, for messages and metrics. */
  name: string;
  /** Reads a secret from env or file; never log what it returns. */
  secret(ref: string): string | undefined;
  /** The config file's folder: relative paths resolve against it (options marked `path` already are). */
  baseDir: string;
}

/** A message a stage could not process, with why. */
export interface DeadLetter {
  message: Message;
  reason: string;
}

/** What a stage hands on: messages to pass (each may name `routes`) and messages to dead-letter. */
export interface StageOutput {
  pass: Message[];
  dead?: DeadLetter[];
  /**
   * Stateful stages: persists the state this batch produced. The broker calls it after every sink (or the
   * dead-letter sink) accepted what the batch produced and before it acknowledges the batch's source
   * records, one batch at a time in the order the stage processed them; never for a batch that was not
   * delivered (and then for no later batch either). Until then the stage keeps the change in memory for
   * the batches after it. A crash between this call and the source's acknowledgement replays input the
   * state already covers: a stage that persists here stores the input position it covers
   * (`Message.position`) and skips replayed messages at or before it, so results equal those of an
   * uninterrupted run, apart from duplicates.
   */
  commit?: () => void | Promise<void>;
}

/**
 * A step in the broker chain (filter, transform, geofence). It sees a batch and returns 0..n messages
 * per input; inputs are acknowledged once everything the batch produced is delivered or dead-lettered.
 * A message with `routes` set goes only to the sinks named there.
 */
export interface Stage {
  readonly name: string;
  open?(): Promise<void>;
  process(batch: Message[]): StageOutput | Promise<StageOutput>;
  /**
   * Called with a batch as soon as the broker has it, before the batches received earlier have left `process`
   * (which takes batches in order, one at a time): for work that does not depend on them, started early (the
   * geofence stage sends the batch's points to its worker threads). `process` is later called with the same array.
   * Only the first stage's is called. An error it throws is logged and otherwise ignored.
   */
  prepare?(batch: Message[]): void;
  close?(): Promise<void>;
}
