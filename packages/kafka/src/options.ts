import { GeoWatchError } from "@geowatch/core";
import type { BackendDefinition, OptionProblem } from "@geowatch/core";
import { z } from "zod";
import { optionProblems } from "@geowatch/core";

/** SASL credentials. */
export interface KafkaSaslOptions {
  /** `plain`, `scram-sha-256` or `scram-sha-512`. Required. Env: none. */
  mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  /** User name. Default: env `GEOWATCH_KAFKA_USERNAME`. */
  username?: string;
  /** Password; prefer the env fallback so it stays out of config files. Default: env `GEOWATCH_KAFKA_PASSWORD`. */
  password?: string;
}

/** TLS settings when `ssl` is an object (Node `tls.connect` options, PEM text). */
export interface KafkaTlsOptions {
  /** Verify the broker certificate. Default `true`. Env: none. */
  rejectUnauthorized?: boolean;
  /** CA certificate(s), PEM. Default: Node's CA store. Env: none. */
  ca?: string;
  /** Client certificate for mutual TLS, PEM. Default: none. Env: none. */
  cert?: string;
  /** Client key for mutual TLS, PEM. Default: none. Env: none. */
  key?: string;
}

/** Options of `kafkaConsumer` and `kafkaProducer` (one shape for both roles; each reads what it needs). */
export interface KafkaOptions {
  /** Bootstrap brokers, `host:port` (an array or a comma-separated string). Default: env `GEOWATCH_KAFKA_BROKERS`. Required from one of the two. */
  brokers?: string[] | string;
  /** Client id the broker sees in logs and quotas. Default `"geowatch"`. Env: none. */
  clientId?: string;
  /** Consumer: consumer group; its committed offsets are where a restart resumes. Required for consumers. Env: none. */
  groupId?: string;
  /** Consumer: topics to read (before `topicPrefix`). Set this (or `topic` for one) or `topicPattern`. Env: none. */
  topics?: string[];
  /**
   * Consumer: a regular expression (JavaScript syntax) matched against topic names without `topicPrefix`;
   * resolved against the broker's topics when the consumer connects. Set this or `topics`. Env: none.
   */
  topicPattern?: string;
  /** Producer: destination topic (before `topicPrefix`) for records that carry no `topic`; a consumer reads it when `topics` is unset. Default: none. Env: none. */
  topic?: string;
  /** Prepended to every topic name by consumer and producer alike (`dev.` + `alerts` = `dev.alerts`). Default `""`. Env: none. */
  topicPrefix?: string;
  /** Consumer: where a group without committed offsets starts: `true` earliest, `false` latest. Default `false`. Env: none. */
  fromBeginning?: boolean;
  /** SASL authentication. Default: none. */
  sasl?: KafkaSaslOptions;
  /** TLS: `true` for Node's defaults, or settings. Default `false`. Env: none. */
  ssl?: boolean | KafkaTlsOptions;
  /** Producer: compression of record batches, `gzip` or `none`. Default `"none"`. Env: none. */
  compression?: "gzip" | "none";
  /** Milliseconds to wait for a TCP connection to a broker. Default `3000`. Env: none. */
  connectionTimeout?: number;
  /** Producer: partitions of a topic that `topic_check` creates. Default `1`. Env: none. */
  partitions?: number;
  /**
   * Consumer: records fetched ahead of `receive`; at it the consumer pauses the partitions that delivered. A
   * fetched batch is taken whole, so the buffer may exceed this by one batch per partition. Default `1000`. Env: none.
   */
  maxBufferedRecords?: number;
}

const nonEmpty = z.string().min(1, "must be a non-empty string");

const brokerList = z.union([z.array(nonEmpty).min(1, "must list at least one broker"), nonEmpty]);

const tls = z.strictObject({
  rejectUnauthorized: z.boolean().optional(),
  ca: nonEmpty.optional(),
  cert: nonEmpty.optional(),
  key: nonEmpty.optional(),
});

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

/** The options schema; every problem is reported with its path. */
export const kafkaOptionsSchema = z.strictObject({
  brokers: brokerList.optional(),
  clientId: nonEmpty.optional(),
  groupId: nonEmpty.optional(),
  topics: z.array(nonEmpty).min(1, "must list at least one topic").optional(),
  topicPattern: pattern.optional(),
  topic: nonEmpty.optional(),
  topicPrefix: z.string().optional(),
  fromBeginning: z.boolean().optional(),
  sasl: z
    .strictObject({
      mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]),
      username: nonEmpty.optional(),
      password: nonEmpty.optional(),
    })
    .optional(),
  ssl: z.union([z.boolean(), tls]).optional(),
  compression: z.enum(["gzip", "none"]).optional(),
  connectionTimeout: z.number().int().positive().optional(),
  partitions: z.number().int().positive().optional(),
  maxBufferedRecords: z.number().int().positive().optional(),
});

/** Consumer-only rules, checked on top of the schema so every problem is reported at once. */
export function consumerProblems(options: unknown): OptionProblem[] {
  const o = (options ?? {}) as Record<string, unknown>;
  const out: OptionProblem[] = [];
  if (o.groupId === undefined) out.push({ path: "groupId", message: "required for a consumer" });
  // A consumer may name its one topic with `topic` too (the config's node-level key).
  if (((o.topics ?? o.topic) === undefined) === (o.topicPattern === undefined)) {
    out.push({ path: "topics", message: "set exactly one of `topics` (or `topic`) and `topicPattern`" });
  }
  return out;
}

export type { OptionProblem } from "@geowatch/core";

/** Every problem of `options` against `schema`, each with its dotted path. */
export const problemsOf = optionProblems;

/** Parses options (for a role) or throws one CONFIG error listing every problem with its path. */
export function parseOptions(options: unknown, role: "consumer" | "producer"): KafkaOptions {
  const problems = problemsOf(kafkaOptionsSchema, options ?? {});
  if (role === "consumer") problems.push(...consumerProblems(options));
  if (problems.length > 0) {
    const list = problems.map((p) => `${p.path}: ${p.message}`).join("; ");
    throw new GeoWatchError("CONFIG", `invalid ${role} options: ${list}`, { backend: "kafka", path: problems[0]?.path });
  }
  return (options ?? {}) as KafkaOptions;
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

type OptionDocs = NonNullable<BackendDefinition["options"]>;

/** Option descriptions for `geowatch backends` and the README. */
export const kafkaOptionDocs: OptionDocs = {
  brokers: { type: "string[] | string", env: "GEOWATCH_KAFKA_BROKERS", required: true, description: "bootstrap brokers, host:port" },
  clientId: { type: "string", default: "geowatch", description: "client id the broker sees" },
  groupId: { type: "string", description: "consumer: consumer group (required for consumers)" },
  topics: { type: "string[]", description: "consumer: topics to read (set this or topicPattern)" },
  topicPattern: { type: "string (regex)", description: "consumer: regex over topic names without the prefix, resolved at connect" },
  topic: { type: "string", description: "producer: destination for records without their own topic" },
  topicPrefix: { type: "string", default: "", description: "prepended to every topic name by consumer and producer" },
  fromBeginning: { type: "boolean", default: false, description: "consumer: start at the earliest offset when the group has none committed" },
  sasl: { type: "{ mechanism, username?, password? }", env: "GEOWATCH_KAFKA_USERNAME, GEOWATCH_KAFKA_PASSWORD", description: "SASL plain / scram-sha-256 / scram-sha-512" },
  ssl: { type: "boolean | { rejectUnauthorized?, ca?, cert?, key? }", default: false, description: "TLS to the brokers" },
  compression: { type: "gzip | none", default: "none", description: "producer: batch compression" },
  connectionTimeout: { type: "integer (ms)", default: 3000, description: "TCP connect timeout per broker" },
  partitions: { type: "integer", default: 1, description: "producer: partitions of a topic that topic_check creates" },
  maxBufferedRecords: { type: "integer", default: 1000, description: "consumer: records fetched ahead; above it partitions pause" },
};
