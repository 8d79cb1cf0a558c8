import { GeoWatchError } from "@geowatch/core";
import { z } from "zod";

/** Options of the AMQP 0-9-1 (RabbitMQ) backend; the consumer and the producer read the fields they need. */
export interface AmqpOptions {
  /**
   * Broker URL, `amqp://user:pass@host:port/vhost` (or `amqps://`).
   * Default: env `GEOWATCH_AMQP_URL`, else `amqp://guest:guest@127.0.0.1:5672`.
   */
  url?: string;
  /** Password that replaces the one in `url`, so the URL can live in config without it. Env: `GEOWATCH_AMQP_PASSWORD`. */
  password?: string;
  /** Consumer: the queue to read. Required for a consumer. */
  queue?: string;
  /**
   * Exchange. Consumer: the queue is bound to it with `bindings`. Producer: where records are published.
   * Default `""` (the default exchange, which routes by queue name).
   */
  exchange?: string;
  /** Type of `exchange` when it is declared. Default `topic`. */
  exchangeType?: "topic" | "direct" | "fanout" | "headers";
  /**
   * Consumer: routing-key patterns binding `queue` to `exchange` (`layer.uploaded`, `layer.*`, `#`).
   * Default `["#"]` when `exchange` is set, none otherwise.
   */
  bindings?: string[];
  /**
   * Producer: routing key, a template over `record.metadata` (`{actiontype}.{targettype}`); a record's
   * `topic` overrides it. Default: `queue` when set, else `{actiontype}.{targettype}`.
   */
  routingKey?: string;
  /** Declare the queue, exchange and bindings (durable unless `durable: false`); when false they are only checked. Default true. */
  declare?: boolean;
  /** Consumer: most unacknowledged deliveries at once; also bounds the client-side buffer. Default 100. */
  prefetch?: number;
  /** Declared queues and exchanges survive a broker restart. Default true. */
  durable?: boolean;
  /** Consumer: `x-dead-letter-exchange` of the declared queue; nacked records without requeue go there. No default. */
  deadLetterExchange?: string;
  /** Consumer: `x-dead-letter-routing-key` of the declared queue. Default: the record's own routing key. */
  deadLetterRoutingKey?: string;
  /**
   * Consumer: when false, `nack(records, { requeue: true })` dead-letters (or drops) instead of requeueing,
   * so a poison message cannot loop. Default true.
   */
  requeueOnNack?: boolean;
  /** Producer: messages are persistent (delivery mode 2). Default true. */
  persistent?: boolean;
  /** Producer: publish as mandatory, so a record no queue receives fails instead of vanishing. Default false. */
  mandatory?: boolean;
  /** Heartbeat interval in seconds; 0 disables it. Default 30. */
  heartbeat?: number;
  /** Connect timeout in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Longest backoff between reconnect attempts after the connection drops, in ms. Default 5000. */
  reconnectMaxMs?: number;
}

const name = z.string().max(255);

export const amqpOptionsSchema = z.strictObject({
  url: z
    .string()
    .refine((u) => /^amqps?:\/\//.test(u) && URL.canParse(u), { message: "must be an amqp:// or amqps:// URL" })
    .optional(),
  password: z.string().optional(),
  queue: name.min(1).optional(),
  exchange: name.optional(),
  exchangeType: z.enum(["topic", "direct", "fanout", "headers"]).optional(),
  bindings: z.array(name).optional(),
  routingKey: name.optional(),
  declare: z.boolean().optional(),
  prefetch: z.number().int().min(1).max(65535).optional(),
  durable: z.boolean().optional(),
  deadLetterExchange: name.optional(),
  deadLetterRoutingKey: name.optional(),
  requeueOnNack: z.boolean().optional(),
  persistent: z.boolean().optional(),
  mandatory: z.boolean().optional(),
  heartbeat: z.number().int().min(0).max(65535).optional(),
  connectTimeoutMs: z.number().int().positive().optional(),
  reconnectMaxMs: z.number().int().positive().optional(),
});

/** Option descriptions for `geowatch backends` and docs. */
export const amqpOptionDocs = {
  url: { type: "string", description: "Broker URL amqp://user:pass@host:port/vhost", default: "amqp://guest:guest@127.0.0.1:5672", env: "GEOWATCH_AMQP_URL" },
  password: { type: "string", description: "Password replacing the one in url", env: "GEOWATCH_AMQP_PASSWORD" },
  queue: { type: "string", description: "Queue to consume (consumer)" },
  exchange: { type: "string", description: "Exchange to bind to (consumer) or publish to (producer)", default: "" },
  exchangeType: { type: "string", description: "topic | direct | fanout | headers", default: "topic" },
  bindings: { type: "string[]", description: "Routing-key patterns binding the queue to the exchange", default: ["#"] },
  routingKey: { type: "string", description: "Producer routing key, templated from metadata ({actiontype}.{targettype})" },
  declare: { type: "boolean", description: "Declare queue, exchange and bindings (else only check)", default: true },
  prefetch: { type: "number", description: "Most unacknowledged deliveries at once", default: 100 },
  durable: { type: "boolean", description: "Declared queues and exchanges are durable", default: true },
  deadLetterExchange: { type: "string", description: "x-dead-letter-exchange of the declared queue" },
  deadLetterRoutingKey: { type: "string", description: "x-dead-letter-routing-key of the declared queue" },
  requeueOnNack: { type: "boolean", description: "When false, nack never requeues", default: true },
  persistent: { type: "boolean", description: "Publish persistent messages", default: true },
  mandatory: { type: "boolean", description: "Fail records that no queue receives", default: false },
  heartbeat: { type: "number", description: "Heartbeat in seconds (0 disables)", default: 30 },
  connectTimeoutMs: { type: "number", description: "Connect timeout in ms", default: 10000 },
  reconnectMaxMs: { type: "number", description: "Longest reconnect backoff in ms", default: 5000 },
} as const;

/** Every problem with the options, each with its path. */
export function validateAmqpOptions(options: Record<string, unknown>): Array<{ path: string; message: string }> {
  const parsed = amqpOptionsSchema.safeParse(options);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join(".") || "(options)", message: issue.message }));
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
export function resolveAmqpOptions(input: AmqpOptions | Record<string, unknown>, secret: SecretLookup = envLookup): ResolvedAmqpOptions {
  const problems = validateAmqpOptions(input as Record<string, unknown>);
  if (problems.length > 0) {
    throw new GeoWatchError("CONFIG", `invalid options: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, {
      backend: "amqp",
      path: problems[0]?.path,
    });
  }
  const o = input as AmqpOptions;
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
    routingKey: o.routingKey ?? o.queue ?? "{actiontype}.{targettype}",
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
