import type { BackendDefinition } from "@geowatch/core";
import { z } from "zod";
import { optionProblems, parseOptions as parseWith } from "@geowatch/core";

/** Options of `queueProducer`. */
export interface QueueProducerOptions {
  /** SQLite database file, shared by every process using the queue. Default `./geowatch.db`. Env: `GEOWATCH_QUEUE_PATH`. */
  path?: string;
  /** Queue the records go to; a record's `topic` overrides it. Required. Env: none. */
  queue: string;
  /** Messages become visible this many ms after they are sent. Default `0`. Env: none. */
  delayMs?: number;
}

/** Options of `queueConsumer`. */
export interface QueueConsumerOptions {
  /** SQLite database file, shared by every process using the queue. Default `./geowatch.db`. Env: `GEOWATCH_QUEUE_PATH`. */
  path?: string;
  /** Queue to consume. Required. Env: none. */
  queue: string;
  /** How long a received message stays leased before it is redelivered, in ms. Default `30000`. Env: none. */
  visibilityTimeoutMs?: number;
  /** How often `receive` polls the database while it waits, in ms. Default `50`. Env: none. */
  pollIntervalMs?: number;
  /**
   * After this many deliveries a message that expires or is nacked with `requeue` moves to
   * `<queue>.dead` instead of being redelivered. Default: unlimited. Env: none.
   */
  maxReceives?: number;
  /** A message nacked with `requeue` becomes visible again after this many ms. Default `0`. Env: none. */
  retryDelayMs?: number;
  /**
   * Keep extending the leases of received messages not yet acked or nacked, every third of
   * `visibilityTimeoutMs` (one SQL statement for all of them), so a slow batch is not redelivered while
   * this process lives; a killed process stops extending and its messages come back after the timeout.
   * `false`: a lease ends after `visibilityTimeoutMs` unless `extend` is called. Default `true`. Env: none.
   */
  extendLeases?: boolean;
  /**
   * Stop extending a message's lease this many ms after it was received, so a process stuck on a message
   * does not hold it for ever (it is redelivered one `visibilityTimeoutMs` later). Default `3600000`. Env: none.
   */
  maxLeaseMs?: number;
  /**
   * Most messages this consumer holds leased (received, not yet acked or nacked); `receive` returns fewer,
   * or waits, rather than lease more than can be finished. Default `1000`. Env: none.
   */
  maxLeased?: number;
}

/** Default database path when neither the option nor `GEOWATCH_QUEUE_PATH` is set. */
export const DEFAULT_QUEUE_PATH = "./geowatch.db";

/** The database path for `options.path`, falling back to the env, then the default. */
export function resolvePath(path: string | undefined): string {
  return path ?? (process.env.GEOWATCH_QUEUE_PATH || DEFAULT_QUEUE_PATH);
}

const nonEmpty = z.string().min(1, "must be a non-empty string");
const ms = z.number().int("must be an integer").min(0, "must be >= 0");
const positiveMs = z.number().int("must be an integer").positive("must be > 0");

export const queueProducerSchema = z.strictObject({
  path: nonEmpty.optional(),
  queue: nonEmpty,
  delayMs: ms.optional(),
});

export const queueConsumerSchema = z.strictObject({
  path: nonEmpty.optional(),
  queue: nonEmpty,
  visibilityTimeoutMs: positiveMs.optional(),
  pollIntervalMs: positiveMs.optional(),
  maxReceives: positiveMs.optional(),
  retryDelayMs: ms.optional(),
  extendLeases: z.boolean().optional(),
  maxLeaseMs: positiveMs.optional(),
  maxLeased: positiveMs.optional(),
});

/** Either role's options: the backend validates before it knows which role a node takes. */
export const queueAnySchema = z.strictObject({ ...queueProducerSchema.shape, ...queueConsumerSchema.shape });

export type { OptionProblem } from "@geowatch/core";

/** Every problem of `options` against `schema`, each with its dotted path. */
export const problemsOf = optionProblems;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  parseWith(schema, options, what, "queue");
  return options as T;
}

type OptionDocs = NonNullable<BackendDefinition["options"]>;

/** Option descriptions for `geowatch backends` and the README. */
export const queueOptionDocs: OptionDocs = {
  path: { type: "string", default: DEFAULT_QUEUE_PATH, env: "GEOWATCH_QUEUE_PATH", description: "SQLite database file shared by all processes" },
  queue: { type: "string", required: true, description: "queue name (producer: default destination, a record's topic overrides it)" },
  delayMs: { type: "integer", default: 0, description: "producer: delay before a sent message becomes visible, in ms" },
  visibilityTimeoutMs: { type: "integer", default: 30000, description: "consumer: lease length before an unacked message is redelivered" },
  pollIntervalMs: { type: "integer", default: 50, description: "consumer: polling interval while receive waits" },
  maxReceives: { type: "integer", description: "consumer: deliveries before a message moves to `<queue>.dead` (default unlimited)" },
  retryDelayMs: { type: "integer", default: 0, description: "consumer: delay before a message nacked with requeue is visible again" },
  extendLeases: { type: "boolean", default: true, description: "consumer: extend the leases of messages not yet acked or nacked every visibilityTimeoutMs/3 while the process lives" },
  maxLeaseMs: { type: "integer", default: 3600000, description: "consumer: stop extending a message's lease this long after it was received" },
  maxLeased: { type: "integer", default: 1000, description: "consumer: most messages held leased at once; receive leases no more" },
};
