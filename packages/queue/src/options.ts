/** Options of the queue backend's roles: one zod schema per role gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

/** Default database path when neither the option nor `GEOWATCH_QUEUE_PATH` is set. */
export const DEFAULT_QUEUE_PATH = "./geowatch.db";

/** The database path for `options.path`, falling back to the env, then the default. */
export function resolvePath(path: string | undefined): string {
  return path ?? (process.env.GEOWATCH_QUEUE_PATH || DEFAULT_QUEUE_PATH);
}

const nonEmpty = z.string().min(1, "must be a non-empty string");
const ms = z.number().int("must be an integer").min(0, "must be >= 0");
const positiveMs = z.number().int("must be an integer").positive("must be > 0");
const dbPath = nonEmpty
  .optional()
  .meta({ path: true, default: DEFAULT_QUEUE_PATH, env: "GEOWATCH_QUEUE_PATH" })
  .describe("SQLite database file, shared by every process using the queue (relative to the config file).");

export const queueProducerSchema = z.strictObject({
  path: dbPath,
  queue: nonEmpty.describe("Queue the records go to; a record's `topic` overrides it."),
  delayMs: ms.optional().meta({ default: 0 }).describe("Messages become visible this many ms after they are sent."),
});

export const queueConsumerSchema = z.strictObject({
  path: dbPath,
  queue: nonEmpty.describe("Queue to consume."),
  visibilityTimeoutMs: positiveMs.optional().meta({ default: 30000 }).describe("How long a received message stays leased before it is redelivered, in ms."),
  pollIntervalMs: positiveMs.optional().meta({ default: 50 }).describe("How often `receive` polls the database while it waits, in ms."),
  maxReceives: positiveMs
    .optional()
    .describe("After this many deliveries a message that expires or is nacked with requeue moves to `<queue>.dead`. Default: unlimited."),
  retryDelayMs: ms.optional().meta({ default: 0 }).describe("A message nacked with requeue becomes visible again after this many ms."),
  extendLeases: z
    .boolean()
    .optional()
    .meta({ default: true })
    .describe("Extend the leases of received messages not yet acked or nacked every third of visibility_timeout_ms while this process lives; a killed process stops, and its messages come back after the timeout."),
  maxLeaseMs: positiveMs
    .optional()
    .meta({ default: 3600000 })
    .describe("Stop extending a message's lease this many ms after it was received, so a stuck process does not hold it for ever."),
  maxLeased: positiveMs.optional().meta({ default: 1000 }).describe("Most messages this consumer holds leased; receive returns fewer, or waits, rather than lease more than can be finished."),
});

/** Options of `queueProducer`. */
export type QueueProducerOptions = z.input<typeof queueProducerSchema>;
/** Options of `queueConsumer`. */
export type QueueConsumerOptions = z.input<typeof queueConsumerSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "queue");
}
