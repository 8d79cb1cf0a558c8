/** Options of the Kafka backend: one zod schema gives validation (per role), types, docs and JSON Schema. */
import { GeoWatchError, optionProblems } from "@geowatch/core";
import type { NodeUse, OptionProblem } from "@geowatch/core";
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");

const pattern = nonEmpty.refine(
  (s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: "must be a valid regular expression" },
);

const saslSchema = z
  .strictObject({
    mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]).describe("SASL mechanism."),
    username: nonEmpty.optional().meta({ env: "GEOWATCH_KAFKA_USERNAME" }).describe("User name."),
    password: nonEmpty
      .optional()
      .meta({ env: "GEOWATCH_KAFKA_PASSWORD", secret: true })
      .describe("Password; prefer the env fallback so it stays out of config files."),
  })
  .describe("SASL credentials.");

const tlsSchema = z
  .strictObject({
    rejectUnauthorized: z.boolean().optional().meta({ default: true }).describe("Verify the broker certificate."),
    ca: nonEmpty.optional().describe("CA certificate(s), PEM. Default: Node's CA store."),
    cert: nonEmpty.optional().describe("Client certificate for mutual TLS, PEM."),
    key: nonEmpty.optional().meta({ secret: true }).describe("Client key for mutual TLS, PEM."),
  })
  .describe("TLS settings (Node `tls.connect` options, PEM text).");

/** Every option of both roles, all optional: for programmatic use; the role schemas below derive from it. */
export const kafkaOptionsSchema = z.strictObject({
  brokers: z
    .union([z.array(nonEmpty).min(1, "must list at least one broker"), nonEmpty])
    .optional()
    .meta({ env: "GEOWATCH_KAFKA_BROKERS" })
    .describe("Bootstrap brokers, `host:port` (a list or a comma-separated string). Required here or from the env fallback."),
  clientId: nonEmpty.optional().meta({ default: "geowatch" }).describe("Client id the broker sees in logs and quotas."),
  groupId: nonEmpty.optional().describe("Consumer: consumer group; its committed offsets are where a restart resumes. Required for consumers."),
  topics: z
    .array(nonEmpty)
    .min(1, "must list at least one topic")
    .optional()
    .describe("Consumer: topics to read (before `topic_prefix`). Set this (or `topic` for one) or `topic_pattern`."),
  topicPattern: pattern
    .optional()
    .describe("Consumer: a regular expression (JavaScript syntax) matched against topic names without `topic_prefix`, resolved against the broker's topics at connect (a topic created later is picked up at the next reconnect). Set this or `topics`."),
  topic: nonEmpty
    .optional()
    .describe("Producer: destination topic (before `topic_prefix`) for records that carry no topic. Consumer: the one topic to read when `topics` is unset."),
  topicPrefix: z.string().optional().meta({ default: "" }).describe("Prepended to every topic name by consumer and producer alike, a record's own topic too (`dev.` + `alerts` = `dev.alerts`)."),
  fromBeginning: z
    .boolean()
    .optional()
    .meta({ default: false })
    .describe("Consumer: where a group without committed offsets starts: `true` the earliest offset, `false` the latest."),
  sasl: saslSchema
    .optional()
    .describe("SASL authentication (`mechanism`: plain, scram-sha-256 or scram-sha-512). `username` and `password` fall back to env GEOWATCH_KAFKA_USERNAME and GEOWATCH_KAFKA_PASSWORD."),
  ssl: z
    .union([z.boolean(), tlsSchema])
    .optional()
    .meta({ default: false })
    .describe("TLS to the brokers: `true` for Node's defaults, or `{ reject_unauthorized, ca, cert, key }` (PEM text)."),
  compression: z.enum(["gzip", "none"]).optional().meta({ default: "none" }).describe("Producer: compression of record batches."),
  connectionTimeout: z.number().int().positive().optional().meta({ default: 3000 }).describe("Milliseconds to wait for a TCP connection to a broker."),
  partitions: z.number().int().positive().optional().meta({ default: 1 }).describe("Producer: partitions of a topic that `topic_check` creates."),
  maxRequestRecords: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: 1000 })
    .describe("Producer: most records per produce request; a bigger send goes out as several requests, one after the other, in order (the idempotent producer has one request in flight)."),
  fetchMaxBytes: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: 52428800 })
    .describe("Consumer: most bytes one fetch request returns over all partitions (kafkajs `maxBytes`)."),
  fetchMaxBytesPerPartition: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: 4194304 })
    .describe("Consumer: most bytes one fetch returns per partition (kafkajs `maxBytesPerPartition`); larger fetches mean fewer round trips per record. A record bigger than this is still fetched, alone."),
  fetchMinBytes: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: 1 })
    .describe("Consumer: the broker holds a fetch until this many bytes are ready or `fetch_max_wait_ms` passed (kafkajs `minBytes`)."),
  fetchMaxWaitMs: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .meta({ default: 200 })
    .describe("Consumer: longest the broker holds a fetch that has less than `fetch_min_bytes` (kafkajs `maxWaitTimeInMs`). Closing waits for the running fetch and `--until-idle` for the first one, so it stays short; an idle consumer sends one fetch per this interval."),
  maxBufferedRecords: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: 10000 })
    .describe("Consumer: records fetched ahead of `receive`; at it the partitions that delivered pause until `receive` has drained half. A fetched batch is taken whole, so the buffer may exceed this by one batch per partition. Keep it several times the broker's `count`, or fetches stall the pipeline."),
});

/** Options of `kafkaConsumer` and `kafkaProducer` (one shape for both roles; each reads what it needs). */
export type KafkaOptions = z.input<typeof kafkaOptionsSchema>;
/** SASL credentials. */
export type KafkaSaslOptions = z.input<typeof saslSchema>;
/** TLS settings when `ssl` is an object. */
export type KafkaTlsOptions = z.input<typeof tlsSchema>;

/** A consumer: a group is required; no producer-only options. */
export const kafkaConsumerSchema = kafkaOptionsSchema.omit({ compression: true, partitions: true, maxRequestRecords: true }).extend({
  groupId: z
    .string({ error: (iss) => (iss.input === undefined ? "required for a consumer" : "must be a string") })
    .min(1, "must be a non-empty string")
    .describe("Consumer group; its committed offsets are where a restart resumes."),
  topic: kafkaOptionsSchema.shape.topic.describe("The one topic to read (before `topic_prefix`) when `topics` is unset."),
});

/** A producer: no consumer-only options. */
export const kafkaProducerSchema = kafkaOptionsSchema
  .omit({
    groupId: true,
    topics: true,
    topicPattern: true,
    fromBeginning: true,
    maxBufferedRecords: true,
    fetchMaxBytes: true,
    fetchMaxBytesPerPartition: true,
    fetchMinBytes: true,
    fetchMaxWaitMs: true,
  })
  .extend({
    topic: kafkaOptionsSchema.shape.topic.describe("Destination topic (before `topic_prefix`) for records that carry no topic; required for a dead-letter sink."),
  });

/** Consumer rules the schema cannot say. Paths are camelCase. */
export function checkConsumer(o: KafkaOptions): OptionProblem[] {
  // A consumer may name its one topic with `topic` too (the config's node-level key).
  if (((o.topics ?? o.topic) === undefined) === (o.topicPattern === undefined)) {
    return [{ path: "topics", message: "set exactly one of `topics` (or `topic`) and `topic_pattern`" }];
  }
  return [];
}

/** Producer rules the schema cannot say. */
export function checkProducer(o: KafkaOptions, use: Pick<NodeUse, "deadLetter">): OptionProblem[] {
  if (use.deadLetter && o.topic === undefined) {
    return [{ path: "topic", message: "required for a dead-letter sink: dead letters carry no topic of their own, so without it every one is refused" }];
  }
  return [];
}

/**
 * Parses programmatic options (the full schema: one options object may serve both roles) plus the role's
 * rules, or throws one CONFIG error listing every problem with its (camelCase) path.
 */
export function parseOptions(options: unknown, role: "consumer" | "producer"): KafkaOptions {
  const input = options ?? {};
  const res = kafkaOptionsSchema.safeParse(input);
  const problems = res.success ? [] : optionProblems(kafkaOptionsSchema, input);
  if (role === "consumer") {
    const o = input as KafkaOptions;
    if (o.groupId === undefined) problems.push({ path: "groupId", message: "required for a consumer" });
    problems.push(...checkConsumer(o));
  }
  if (!res.success || problems.length > 0) {
    throw new GeoWatchError("CONFIG", `invalid ${role} options: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, {
      backend: "kafka",
      path: problems[0]?.path,
    });
  }
  return res.data;
}

/** Brokers from options or `GEOWATCH_KAFKA_BROKERS`; a CONFIG error when neither is set. */
export function brokersOf(options: KafkaOptions): string[] {
  const raw = options.brokers ?? process.env.GEOWATCH_KAFKA_BROKERS;
  const list = (Array.isArray(raw) ? raw : (raw ?? "").split(",")).map((b) => b.trim()).filter(Boolean);
  if (list.length === 0) {
    throw new GeoWatchError("CONFIG", "no brokers: set `brokers` or env GEOWATCH_KAFKA_BROKERS", {
      backend: "kafka",
      path: "brokers",
    });
  }
  return list;
}

/** The full topic name: `topicPrefix` + `name`. */
export function topicName(options: KafkaOptions, name: string): string {
  return `${options.topicPrefix ?? ""}${name}`;
}
