/**
 * The job channel and the index buffer on any GeoWatch backend (`jobs.backend`: queue, kafka, amqp, or a
 * third-party backend by package name). The backend comes from its definition, found the way `geowatch`
 * configs find it (`backend: kafka` loads `@geowatch/kafka`); its options are validated in one pass with
 * the registry's `jobs.*` paths; core's managed wrapper owns connect, retry and close.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { GeoWatchError, Runtime, guardConsumer, guardProducer, reasonOf } from "@geowatch/core";
import type { BackendDefinition, InRecord, Logger, ManagedConsumer, ManagedProducer, OptionProblem, Position } from "@geowatch/core";
import { DEAD_REASON_HEADER, queueBackend } from "@geowatch/queue";
import type { RegistryConfig } from "./config.js";

/** Header carrying the reason of a dead-lettered record (the queue backend's own header, so every dead letter reads alike). */
export const REASON_HEADER = DEAD_REASON_HEADER;

/** The names the registry's `jobs` section gives the backend; everything else there is the backend's own. */
export const JOB_KEYS = ["backend", "path", "queue", "buffer", "workers", "maxReceives", "groupId", "partitions"] as const;

/** A consumer as the registry uses it: receive, then settle every record of a batch (ack or commit). */
export interface ChannelConsumer {
  receive(max: number, opts: { waitMs: number; signal?: AbortSignal }): Promise<InRecord[]>;
  /** Acknowledges records whose work is done (every record of the batch, on ordered sources such as Kafka). */
  done(records: InRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** The channels of one registry: producers to the job, buffer and dead destinations, consumers on demand. */
export interface JobChannel {
  readonly backend: string;
  /** Destination names: jobs, buffer, and their dead-letter destinations. */
  readonly names: { jobs: string; buffer: string; jobsDead: string; bufferDead: string };
  send(destination: string, records: { value: string; key?: string; headers?: Record<string, string> }[]): Promise<void>;
  consumer(which: "jobs" | "buffer"): ChannelConsumer;
  close(): Promise<void>;
}

export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

const importer: Importer = (s) => import(s) as Promise<Record<string, unknown>>;

const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

interface Plan {
  def: BackendDefinition;
  consumer: (queue: string, group: string) => Record<string, unknown>;
  producer: Record<string, unknown>;
}

/** The key naming the channel in a role's options: `topic` (Kafka) or `queue` (queue, AMQP, SQS-like). */
function channelKey(shape: Record<string, unknown>): "topic" | "queue" | undefined {
  if ("queue" in shape) return "queue";
  if ("topic" in shape) return "topic";
  return undefined;
}

/** Finds the backend and validates the `jobs` section against both its roles; throws one CONFIG error listing every problem. */
async function plan(config: RegistryConfig, load: Importer): Promise<Plan> {
  const j = config.jobs;
  let def: BackendDefinition;
  try {
    def = await new Runtime({ backends: [queueBackend], importer: load }).resolveBackend(j.backend);
  } catch (err) {
    const pkg = j.backend.startsWith("@") || j.backend.includes("/") ? j.backend : `@geowatch/${j.backend}`;
    const why = reasonOf(err).replace(/^(\[[^\]]*\] )*/, "");
    throw new GeoWatchError("CONFIG", `jobs.backend: ${why}. Install the backend package beside the registry (npm install ${pkg})`, { backend: "registry", path: "jobs.backend" });
  }
  const problems: OptionProblem[] = [];
  if (!def.consumer || !def.producer) {
    throw new GeoWatchError("CONFIG", `jobs.backend: backend "${def.name}" cannot carry jobs: it needs both a consumer and a producer`, { backend: "registry", path: "jobs.backend" });
  }
  const cShape = def.consumer.schema.shape as Record<string, unknown>;
  const pShape = def.producer.schema.shape as Record<string, unknown>;
  const cKey = channelKey(cShape);
  const pKey = channelKey(pShape);
  if (!cKey || !pKey) throw new GeoWatchError("CONFIG", `jobs.backend: backend "${def.name}" names no queue or topic option; the registry cannot address its channels`, { backend: "registry", path: "jobs.backend" });
  // The backend's own options, split by role: a key neither role knows is an unknown option.
  const own = j.options;
  const known = (shape: Record<string, unknown>, k: string) => k in shape;
  const cRaw: Record<string, unknown> = {};
  const pRaw: Record<string, unknown> = {};
  for (const [written, v] of Object.entries(own)) {
    const k = camel(written);
    if (!known(cShape, k) && !known(pShape, k)) {
      const all = [...new Set([...Object.keys(cShape), ...Object.keys(pShape), ...JOB_KEYS])].filter((x) => x !== cKey && x !== pKey).map(snake).sort();
      problems.push({ path: `jobs.${snake(k)}`, message: `unknown option of backend ${def.name} (known: ${all.join(", ")})` });
      continue;
    }
    if (k === cKey || k === pKey) {
      problems.push({ path: `jobs.${snake(k)}`, message: `set by the registry (jobs.queue and jobs.buffer name the channels)` });
      continue;
    }
    if (known(cShape, k)) cRaw[k] = v;
    if (known(pShape, k)) pRaw[k] = v;
  }
  const consumerOpts = (queue: string, group: string): Record<string, unknown> => {
    const o: Record<string, unknown> = { ...cRaw, [cKey]: queue };
    // The queue backend: its file, and a killed worker's job leased again (counted against max_receives) after 2 min unless set.
    if (def.name === "queue") Object.assign(o, { path: j.path, maxReceives: j.maxReceives, visibilityTimeoutMs: cRaw.visibilityTimeoutMs ?? 120_000 });
    if ("groupId" in cShape && o.groupId === undefined) o.groupId = group;
    // A group without committed offsets must start at the beginning, or jobs sent before the first worker joined are skipped.
    if ("fromBeginning" in cShape && o.fromBeginning === undefined) o.fromBeginning = true;
    return o;
  };
  const producerOpts: Record<string, unknown> = { ...pRaw, [pKey]: j.queue };
  if (def.name === "queue") producerOpts.path = j.path;
  if ("partitions" in pShape && producerOpts.partitions === undefined) producerOpts.partitions = j.partitions;
  const check = (raw: Record<string, unknown>, role: "consumer" | "producer") => {
    const r = def[role]!.parse(raw, { role }, { baseDir: j.baseDir });
    if (!r.ok) for (const p of r.problems) problems.push({ path: `jobs.${p.path}`, message: p.message });
  };
  check(consumerOpts(j.queue, j.groupId), "consumer");
  check(producerOpts, "producer");
  if (problems.length) {
    const seen = new Set<string>();
    const unique = problems.filter((p) => !seen.has(`${p.path}${p.message}`) && seen.add(`${p.path}${p.message}`));
    throw new GeoWatchError("CONFIG", `invalid registry config: ${unique.map((p) => `${p.path}: ${p.message}`).join("; ")}`, { backend: "registry", path: unique[0]!.path });
  }
  return { def, consumer: consumerOpts, producer: producerOpts };
}

/** Validates the `jobs` section (finding its backend) without connecting; throws one CONFIG error with every problem. */
export async function checkJobChannel(config: RegistryConfig, load: Importer = importer): Promise<void> {
  await plan(config, load);
}

/**
 * Opens the job channel: creates the job, buffer and dead-letter destinations where the backend can
 * (a Kafka topic with `jobs.partitions` partitions, an AMQP queue; the queue backend needs none).
 */
export async function openJobChannel(config: RegistryConfig, logger: Logger, load: Importer = importer): Promise<JobChannel> {
  const p = await plan(config, load);
  const j = config.jobs;
  // Secrets as the runtime reads them: `file:PATH` (relative to the config file's folder) or an env variable.
  const secret = (ref: string) => (ref.startsWith("file:") ? readFileSync(resolve(j.baseDir, ref.slice(5)), "utf8").trim() : process.env[ref]);
  const ctx = (name: string) => ({ name, logger, baseDir: j.baseDir, secret });
  const parsed = (raw: Record<string, unknown>, role: "consumer" | "producer") => {
    const r = p.def[role]!.parse(raw, { role }, { baseDir: j.baseDir });
    if (!r.ok) throw new GeoWatchError("CONFIG", r.problems.map((x) => `jobs.${x.path}: ${x.message}`).join("; "), { backend: "registry" });
    return r.options;
  };
  const producer: ManagedProducer = guardProducer(p.def.producer!.create(parsed(p.producer, "producer"), ctx("registry.jobs")), { name: "registry.jobs", backend: p.def.name, logger });
  const names = { jobs: j.queue, buffer: j.buffer, jobsDead: `${j.queue}.dead`, bufferDead: `${j.buffer}.dead` };
  const ensure = producer.ensureTopic?.bind(producer);
  if (ensure) {
    try {
      for (const t of Object.values(names)) await ensure(t, { create: true, partitions: j.partitions });
    } catch (err) {
      await producer.close();
      throw err;
    }
  }
  const consumers = new Set<ManagedConsumer>();
  return {
    backend: p.def.name,
    names,
    async send(destination, records) {
      if (!records.length) return;
      const res = await producer.send(records.map((r) => ({ value: r.value, ...(r.key ? { key: r.key } : {}), ...(r.headers ? { headers: r.headers } : {}), topic: destination })));
      const failed = res.find((r) => !r.ok);
      if (failed && !failed.ok) throw failed.error;
    },
    consumer(which) {
      const queue = which === "jobs" ? j.queue : j.buffer;
      const group = which === "jobs" ? j.groupId : `${j.groupId}.index`;
      const c: ManagedConsumer = guardConsumer(p.def.consumer!.create(parsed(p.consumer(queue, group), "consumer"), ctx(`registry.${which}`)), { name: `registry.${which}`, backend: p.def.name, logger });
      consumers.add(c);
      return {
        receive: (max, o) => c.receive(max, o),
        async done(records) {
          if (!records.length) return;
          if (c.commit && records.some((r) => r.position)) {
            // Ordered source: the caller settles whole batches, so the highest `next` per stream is safe to commit.
            const last = new Map<string, Position>();
            for (const r of records) if (r.position) last.set(r.position.stream, r.position);
            await c.commit([...last.values()]);
            return;
          }
          await c.ack?.(records);
        },
        async close() {
          consumers.delete(c);
          await c.close();
        },
      };
    },
    async close() {
      for (const c of consumers) await c.close().catch(() => undefined);
      await producer.close();
    },
  };
}
