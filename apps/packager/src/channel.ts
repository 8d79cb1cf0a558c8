/**
 * The job channels: the fast and the slow queue are GeoWatch channel nodes (`jobs.fast`, `jobs.slow`), spelled
 * as a broker config spells a node (`{ backend: kafka, topic: packager.slow, group_id: packager-workers }`),
 * resolved and wrapped by core's Runtime.channel. The default is @geowatch/queue on node:sqlite in the data
 * directory; Kafka, RabbitMQ (amqp) or SQS carry jobs between machines once their package is installed.
 *
 * One node serves both ends: the keys only one role knows (a Kafka `group_id`, a producer's `max_batch`) are
 * left out of the other end, so a key neither role knows still fails validation with its path.
 */
import { GeoWatchError, Runtime, reasonOf } from "@geowatch/core";
import type { BackendDefinition, Codec, Consumer, InRecord, Logger, Payload, Producer } from "@geowatch/core";
import { queueBackend } from "@geowatch/queue";
import type { PackagerConfig } from "./config.js";

export const QUEUES = { fast: "packager.fast", slow: "packager.slow" } as const;
export type QueueName = keyof typeof QUEUES;

const toCamel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Node keys the runtime reads itself, per role (the rest are the backend's options). */
const COMMON_KEYS = ["enabled", "name", "backend", "codec", "topic", "topics", "topic_prefix", "max_tries", "timeout", "options"];
const CONSUMER_KEYS = ["count"];
const PRODUCER_KEYS = ["topic_check", "max_batch", "max_batch_bytes", "linger_ms"];

/** The node of a queue: the configured one, or @geowatch/queue in the data directory. */
export function jobNode(config: PackagerConfig, queue: QueueName): Record<string, unknown> {
  const given = config.jobs[queue];
  if (given) return given;
  return {
    backend: "queue",
    path: config.queuePath,
    queue: QUEUES[queue],
    visibility_timeout_ms: config.visibilityTimeoutMs,
    // One delivery more than the app's own limit: the app sees the delivery past max_attempts and marks the job
    // failed with its reason, instead of the queue dead-lettering it while /job_status still says `running`.
    max_receives: config.maxAttempts + 1,
    max_leased: 1,
    poll_interval_ms: 200,
    retry_delay_ms: 2000,
  };
}

/** The backend named by a node, or a CONFIG error at `jobs.<queue>.backend` that says what to install. */
async function backendOf(runtime: Runtime, node: Record<string, unknown>, path: string): Promise<BackendDefinition | undefined> {
  if (typeof node.backend !== "string") return undefined; // the runtime reports it with its path
  try {
    return await runtime.resolveBackend(node.backend);
  } catch (err) {
    const pkg = node.backend.startsWith("@") || node.backend.includes("/") ? node.backend : `@geowatch/${node.backend}`;
    throw new GeoWatchError("CONFIG", `${path}.backend: ${reasonOf(err)}. Install it beside the packager: npm install ${pkg}`, {
      backend: "packager",
      path: `${path}.backend`,
      cause: err,
    });
  }
}

/** The node for one role: keys only the other role knows are left out. */
function forRole(def: BackendDefinition | undefined, node: Record<string, unknown>, role: "consumer" | "producer"): Record<string, unknown> {
  if (!def) return node;
  const other = role === "consumer" ? def.producer : def.consumer;
  const mine = role === "consumer" ? def.consumer : def.producer;
  const known = (r: typeof mine, k: string) => !!r && toCamel(k) in (r.schema.shape as Record<string, unknown>);
  const otherOnly = role === "consumer" ? PRODUCER_KEYS : CONSUMER_KEYS;
  const strip = (o: Record<string, unknown>, top: boolean) =>
    Object.fromEntries(
      Object.entries(o).filter(([k]) => {
        if (top && COMMON_KEYS.includes(k)) return true;
        if (top && otherOnly.includes(k)) return false;
        return known(mine, k) || !known(other, k);
      }),
    );
  const out = strip(node, true);
  if (out.options && typeof out.options === "object" && !Array.isArray(out.options)) out.options = strip(out.options as Record<string, unknown>, false);
  return out;
}

export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

function runtimeFor(logger: Logger | undefined, importer: Importer | undefined): Runtime {
  return new Runtime({
    backends: [queueBackend],
    importer: importer ?? ((s: string) => import(s) as Promise<Record<string, unknown>>),
    ...(logger ? { logger } : {}),
  });
}

export interface JobSender {
  backend: string;
  send(value: unknown, key: string): Promise<void>;
  close(): Promise<void>;
}

export interface JobReceiver {
  backend: string;
  consumer: Consumer;
  decode(record: InRecord): unknown;
  /** Acknowledges a record: `ack` on queues, a committed position on streams (Kafka). */
  settle(record: InRecord): Promise<void>;
  close(): Promise<void>;
}

function encoder(codec: Codec | undefined): (v: unknown) => Payload {
  return codec ? (v) => codec.encode(v) : (v) => JSON.stringify(v);
}

export function decodeWith(codec: Codec | undefined, record: InRecord): unknown {
  if (codec) return codec.decode(record.value);
  const v = record.value;
  return JSON.parse(typeof v === "string" ? v : Buffer.from(v as Uint8Array).toString("utf8"));
}

/** Checks both nodes completely (backends found, every option against its schema) without connecting. */
export async function checkJobChannels(config: PackagerConfig, opts: { logger?: Logger; importer?: Importer } = {}): Promise<void> {
  for (const q of ["fast", "slow"] as const) {
    const s = await openSender(config, q, opts);
    await s.close();
  }
}

/** The producer end of a queue; creates its destination where the backend can (a Kafka topic, an AMQP queue). */
export async function openSender(config: PackagerConfig, queue: QueueName, opts: { logger?: Logger; importer?: Importer } = {}): Promise<JobSender> {
  const runtime = runtimeFor(opts.logger, opts.importer);
  const path = `jobs.${queue}`;
  const node = jobNode(config, queue);
  const def = await backendOf(runtime, node, path);
  const { producer, codec, backend } = await runtime.channel(forRole(def, node, "producer"), "producer", path);
  const enc = encoder(codec);
  let ensured: Promise<void> | undefined;
  const ensure = (p: Producer) => (ensured ??= ensureDestination(p, node, config));
  return {
    backend,
    async send(value, key) {
      await ensure(producer);
      const [res] = await producer.send([{ value: enc(value), key }]);
      if (!res?.ok) throw new GeoWatchError("SEND", `could not queue the job on ${path}: ${res && !res.ok ? res.error.message : "no result"}`, { backend: "packager" });
    },
    close: async () => producer.close?.(),
  };
}

async function ensureDestination(p: Producer, node: Record<string, unknown>, config: PackagerConfig): Promise<void> {
  if (!p.ensureTopic) return;
  const opts = (node.options && typeof node.options === "object" ? node.options : node) as Record<string, unknown>;
  const name = (node.topic ?? opts.queue ?? opts.topic) as string | undefined;
  if (typeof name !== "string" || node.backend === "queue" || config.jobs.create === false) return;
  await p.ensureTopic(name, { create: true });
}

/** The consumer end of a queue. */
export function openReceiver(config: PackagerConfig, queue: QueueName, opts: { logger?: Logger; importer?: Importer } = {}): Promise<JobReceiver> {
  return receiverOf(jobNode(config, queue), `jobs.${queue}`, opts);
}

/** A receiver on `node` (checked with `path`): decodes with the node's codec, settles by ack or committed position. */
async function receiverOf(node: Record<string, unknown>, path: string, opts: { logger?: Logger; importer?: Importer }): Promise<JobReceiver> {
  const runtime = runtimeFor(opts.logger, opts.importer);
  const def = await backendOf(runtime, node, path);
  const { consumer, codec, backend } = await runtime.channel(forRole(def, node, "consumer"), "consumer", path);
  return {
    backend,
    consumer,
    decode: (r) => decodeWith(codec, r),
    async settle(r) {
      if (consumer.ack) await consumer.ack([r]);
      if (r.position && consumer.commit) await consumer.commit([r.position]);
    },
    close: async () => consumer.close?.(),
  };
}

/**
 * The dead-letter destinations `serve` watches: the configured `jobs.dead_letters`, or `<queue>.dead` of each
 * @geowatch/queue node (where that backend moves a job after `max_receives` deliveries, leases that expired included).
 */
export function deadLetterNodes(config: PackagerConfig): Record<string, unknown>[] {
  if (config.jobs.deadLetters) return config.jobs.deadLetters;
  const out: Record<string, unknown>[] = [];
  for (const q of ["fast", "slow"] as const) {
    const node = jobNode(config, q);
    const opts = (node.options && typeof node.options === "object" ? node.options : node) as Record<string, unknown>;
    if (node.backend !== "queue" || typeof opts.queue !== "string") continue;
    out.push({ backend: "queue", path: opts.path ?? config.queuePath, queue: `${opts.queue}.dead`, poll_interval_ms: 500, max_leased: 10 });
  }
  return out;
}

/** Why a dead-lettered record died, from the header its backend puts it in (`x-geowatch-dead-reason`, RabbitMQ's `x-first-death-reason`, ...). */
export function deadReason(record: InRecord): string {
  const h = record.headers ?? {};
  const key = Object.keys(h).find((k) => /dead.?reason|death.?reason|geowatch-reason/i.test(k));
  return key ? String(h[key]) : "dead-lettered by the job channel";
}

/** A consumer of one dead-letter node (`jobs.dead_letters[i]`). */
export function openDeadLetters(node: Record<string, unknown>, index: number, opts: { logger?: Logger; importer?: Importer } = {}): Promise<JobReceiver> {
  return receiverOf(node, `jobs.dead_letters[${index}]`, opts);
}
