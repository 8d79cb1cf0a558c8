/** Options of the AMQP backend: one zod schema gives validation (per role), types, docs and JSON Schema. */
import { GeoWatchError, optionProblems } from "@geowatch/core";
import type { NodeUse, OptionProblem } from "@geowatch/core";
import { z } from "zod";

const name = z.string().max(255, "must be at most 255 characters");

/** The producer's routing key when neither `routingKey` nor `queue` is set. */
export const DEFAULT_ROUTING_KEY = "{actiontype}.{targettype}";

/** A `{field}` of a routing-key template (a dotted name reads nested metadata). */
export const PLACEHOLDER = /\{([^{}]+)\}/g;

/** Every option of both roles, all optional: for programmatic use; the role schemas below derive from it. */
export const amqpOptionsSchema = z.strictObject({
  url: z
    .string()
    .refine((u) => /^amqps?:\/\//.test(u) && URL.canParse(u), { message: "must be an amqp:// or amqps:// URL" })
    .optional()
    .meta({ env: "GEOWATCH_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672" })
    .describe("Broker URL, `amqp://user:pass@host:port/vhost` (`amqps://` for TLS)."),
  password: z
    .string()
    .optional()
    .meta({ env: "GEOWATCH_AMQP_PASSWORD", secret: true })
    .describe("Password that replaces the one in `url`, so the URL can live in config without it."),
  queue: name
    .min(1, "must be a non-empty string")
    .optional()
    .describe("Consumer: the queue to read (required). Producer: the default routing key when `routing_key` is unset (with the default exchange, the queue it lands in)."),
  exchange: name
    .optional()
    .meta({ default: "" })
    .describe("Consumer: the exchange the queue is bound to with `bindings`. Producer: where records are published. `\"\"` is the default exchange, which routes by queue name."),
  exchangeType: z.enum(["topic", "direct", "fanout", "headers"]).optional().meta({ default: "topic" }).describe("Type of `exchange` when it is declared."),
  bindings: z
    .array(name)
    .optional()
    .describe("Consumer: routing-key patterns binding `queue` to `exchange` (`layer.uploaded`, `layer.*`, `#`). Default `[\"#\"]` when `exchange` is set, none otherwise."),
  routingKey: name
    .optional()
    .describe("Producer: routing key, a template over the record's metadata (`{actiontype}.{targettype}`, a dotted name reads nested fields); a record's `topic` overrides it. Default: `queue` when set, else `{actiontype}.{targettype}`."),
  declare: z
    .boolean()
    .optional()
    .meta({ default: true })
    .describe("Consumer: declare the queue, exchange and bindings (durable unless `durable: false`); when false they are only checked."),
  prefetch: z.number().int().min(1).max(65535).optional().meta({ default: 100 }).describe("Consumer: most unacknowledged deliveries at once; also bounds the client-side buffer."),
  durable: z.boolean().optional().meta({ default: true }).describe("Declared queues and exchanges survive a broker restart."),
  deadLetterExchange: name.optional().describe("Consumer: `x-dead-letter-exchange` of the declared queue; records nacked without requeue go there."),
  deadLetterRoutingKey: name.optional().describe("Consumer: `x-dead-letter-routing-key` of the declared queue. Default: the record's own routing key."),
  requeueOnNack: z
    .boolean()
    .optional()
    .meta({ default: true })
    .describe("Consumer: when false, a nack that asks to requeue dead-letters (or drops) instead, so a poison message cannot loop."),
  persistent: z.boolean().optional().meta({ default: true }).describe("Producer: messages are persistent (delivery mode 2)."),
  mandatory: z.boolean().optional().meta({ default: false }).describe("Producer: publish as mandatory, so a record no queue receives fails instead of vanishing."),
  heartbeat: z.number().int().min(0).max(65535).optional().meta({ default: 30 }).describe("Heartbeat interval in seconds; 0 disables it."),
  connectTimeoutMs: z.number().int().positive().optional().meta({ default: 10000 }).describe("Connect timeout in ms."),
  reconnectMaxMs: z.number().int().positive().optional().meta({ default: 5000 }).describe("Consumer: longest backoff between reconnect attempts after the connection drops, in ms."),
});

/** Options of `amqpConsumer` and `amqpProducer` (one shape for both roles; each reads what it needs). */
export type AmqpOptions = z.input<typeof amqpOptionsSchema>;

/** A consumer: `queue` is required; no producer-only options. */
export const amqpConsumerSchema = amqpOptionsSchema.omit({ routingKey: true, persistent: true, mandatory: true }).extend({
  queue: z
    .string({ error: (iss) => (iss.input === undefined ? "required for a consumer" : "must be a string") })
    .min(1, "must be a non-empty string")
    .max(255, "must be at most 255 characters")
    .describe("The queue to read."),
  exchange: amqpOptionsSchema.shape.exchange.describe("Exchange the queue is bound to with `bindings`; `\"\"` (the default exchange) binds nothing."),
});

/** A producer: no consumer-only options. */
export const amqpProducerSchema = amqpOptionsSchema.omit({
  bindings: true,
  declare: true,
  prefetch: true,
  deadLetterExchange: true,
  deadLetterRoutingKey: true,
  requeueOnNack: true,
  reconnectMaxMs: true,
}).extend({
  queue: amqpOptionsSchema.shape.queue.describe("The routing key when `routing_key` is unset: with the default exchange, the queue records land in."),
  exchange: amqpOptionsSchema.shape.exchange.describe("Where records are published; `\"\"` is the default exchange, which routes by queue name."),
});

/** The metadata fields a routing-key template reads. */
export function templateFields(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/**
 * Producer rules the schema cannot say. A dead-letter sink's records are dead letters: JSON with the
 * headers `x-geowatch-reason`, `x-geowatch-source` and the source's headers, and no metadata, so a routing
 * key that reads metadata can never be filled and every dead letter would be refused.
 */
export function checkProducer(o: AmqpOptions, use: Pick<NodeUse, "deadLetter">): OptionProblem[] {
  if (!use.deadLetter) return [];
  const template = o.routingKey ?? o.queue ?? DEFAULT_ROUTING_KEY;
  const fields = templateFields(template);
  if (fields.length === 0) return [];
  const which = o.routingKey !== undefined ? `routing key "${template}"` : `the default routing key "${template}" (no routing_key or queue set)`;
  return [
    {
      path: "routingKey",
      message:
        `${which} reads ${fields.map((f) => `{${f}}`).join(", ")} from the record's metadata, which dead letters never carry: a dead letter is a JSON record ` +
        "with the headers x-geowatch-reason, x-geowatch-source and its source's headers, and no metadata, so every one would be refused; " +
        'give the dead-letter sink a fixed routing_key (such as "geowatch.dead")',
    },
  ];
}

/** Options with defaults applied and the URL split into what amqplib and error messages need. */
export interface ResolvedAmqpOptions {
  /** URL with the password, for amqplib only; never log it. */
  connectUrl: string;
  /** URL without the password, for messages. */
  where: string;
  queue: string | undefined;
  exchange: string;
  exchangeType: "topic" | "direct" | "fanout" | "headers";
  bindings: string[];
  routingKey: string;
  declare: boolean;
  prefetch: number;
  durable: boolean;
  deadLetterExchange: string | undefined;
  deadLetterRoutingKey: string | undefined;
  requeueOnNack: boolean;
  persistent: boolean;
  mandatory: boolean;
  heartbeat: number;
  connectTimeoutMs: number;
  reconnectMaxMs: number;
}

export type SecretLookup = (ref: string) => string | undefined;

const envLookup: SecretLookup = (ref) => process.env[ref];

/** Validates (throwing a CONFIG error that lists every problem) and applies defaults and env fallbacks. */
export function resolveAmqpOptions(input: AmqpOptions, secret: SecretLookup = envLookup): ResolvedAmqpOptions {
  const problems = optionProblems(amqpOptionsSchema, input);
  if (problems.length > 0) {
    throw new GeoWatchError("CONFIG", `invalid options: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, {
      backend: "amqp",
      path: problems[0]?.path,
    });
  }
  const o = input;
  const raw = o.url ?? secret("GEOWATCH_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
  if (!/^amqps?:\/\//.test(raw) || !URL.canParse(raw)) {
    throw new GeoWatchError("CONFIG", `GEOWATCH_AMQP_URL must be an amqp:// or amqps:// URL`, { backend: "amqp", path: "url" });
  }
  const url = new URL(raw);
  const password = o.password ?? secret("GEOWATCH_AMQP_PASSWORD");
  if (password !== undefined) url.password = encodeURIComponent(password);
  const shown = new URL(url.href);
  shown.password = "";
  const exchange = o.exchange ?? "";
  return {
    connectUrl: url.href,
    where: shown.href.replace(/\/$/, ""),
    queue: o.queue,
    exchange,
    exchangeType: o.exchangeType ?? "topic",
    bindings: o.bindings ?? (exchange ? ["#"] : []),
    routingKey: o.routingKey ?? o.queue ?? DEFAULT_ROUTING_KEY,
    declare: o.declare ?? true,
    prefetch: o.prefetch ?? 100,
    durable: o.durable ?? true,
    deadLetterExchange: o.deadLetterExchange,
    deadLetterRoutingKey: o.deadLetterRoutingKey,
    requeueOnNack: o.requeueOnNack ?? true,
    persistent: o.persistent ?? true,
    mandatory: o.mandatory ?? false,
    heartbeat: o.heartbeat ?? 30,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    reconnectMaxMs: o.reconnectMaxMs ?? 5_000,
  };
}
