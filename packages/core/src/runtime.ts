import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { Broker, type BrokerObserver, type BrokerStats, type ConsumerNode, type RunOptions } from "./broker.js";
import { codecRegistry, getCodec } from "./codecs/index.js";
import {
  brokerFieldsSchema,
  ConfigError,
  configJsonSchema,
  interpolate,
  NODE_KEYS,
  nodeSchema,
  stageSchema,
  STORE_KEYS,
  storeSchema,
  zodIssues,
  type ConfigIssue,
  type NodeConfig,
  type StoreConfig,
} from "./config.js";
import { toCamel, type BackendDefinition, type CodecDefinition, type NodeUse, type RoleDefinition, type StageDefinition } from "./define.js";
import { GeoWatchError, reasonOf } from "./errors.js";
import { memoryBackend } from "./backends/memory.js";
import { silentLogger } from "./logger.js";
import { guardConsumer, guardProducer, guardStore, type Lifecycle } from "./managed.js";
import type { ProducerNode } from "./producer-sink.js";
import { Resolver, type GeoWatchPackage, type Importer } from "./resolve.js";
import type { StoreOutNode } from "./store-sink.js";
import type { StoreInNode } from "./store-source.js";
import { checkKeyTemplate } from "./template.js";
import type { BackendContext, Codec, Consumer, Logger, Producer, Stage, Store } from "./types.js";

export interface RuntimeOptions {
  /** Backends available without importing a package. `memory` is always there. */
  backends?: BackendDefinition[];
  /** Stages available without importing a package. */
  stages?: StageDefinition[];
  /** Codecs (beyond the built-in ones) available without importing a package. */
  codecs?: CodecDefinition[];
  /** Imports a package by name from the user's project (so third-party backends resolve there). */
  importer?: Importer;
  /** Lists installed packages that declare backends or stages in their package.json `geowatch` field. */
  discover?: () => Promise<GeoWatchPackage[]>;
  logger?: Logger;
  /** Environment for `${VAR}` interpolation and secrets; default process.env. */
  env?: Record<string, string | undefined>;
  /** The config file's folder: relative paths in options and `${file:...}` resolve against it. Default: the working directory. */
  baseDir?: string;
  /** Allow brokers without consumers or stores_in (an app that only pushes). Default false: that is a config error. */
  pushOnly?: boolean;
  /** Metrics callbacks per broker. */
  observer?: (broker: string) => BrokerObserver | undefined;
}

export interface NodeHealth {
  broker: string;
  node: string;
  role: "consumer" | "producer" | "store" | "dead_letter";
  backend: string;
  /** `failing`: connected, but the dead-letter sink keeps refusing what it is sent. */
  state: Lifecycle["state"] | "failing";
  error?: string;
}

/** Everything a config provisioned. */
export interface Provisioned {
  readonly brokers: Broker[];
  /** Connects every node (with retries), opens the stages and runs `topic_check`. */
  connect(): Promise<void>;
  /** Connects, then runs every broker until stopped (or until `opts` says). */
  run(opts?: RunOptions): Promise<BrokerStats[]>;
  /** Stops consuming, drains, flushes, acknowledges, closes every node. */
  stop(): Promise<void>;
  health(): NodeHealth[];
  /** True when every node is connected and no dead-letter sink is failing. */
  ready(): boolean;
}

interface Part {
  broker: Broker;
  health: () => NodeHealth[];
  nodes: Lifecycle[];
  checks: Array<() => Promise<void>>;
}

type Make<T> = () => T;

const CONSUMER_ONLY = ["count"] as const;
const PRODUCER_ONLY = ["topic_check", "max_batch", "max_batch_bytes", "linger_ms", "timeout"] as const;

/** Provisions brokers from config objects. */
export class Runtime {
  private readonly resolver: Resolver;
  private readonly log: Logger;
  private readonly env: Record<string, string | undefined>;
  private readonly baseDir: string;

  constructor(private readonly opts: RuntimeOptions = {}) {
    this.log = opts.logger ?? silentLogger;
    this.env = opts.env ?? process.env;
    this.baseDir = opts.baseDir ?? process.cwd();
    this.resolver = new Resolver({
      backends: [memoryBackend, ...(opts.backends ?? [])],
      ...(opts.stages ? { stages: opts.stages } : {}),
      ...(opts.codecs ? { codecs: opts.codecs } : {}),
      ...(opts.importer ? { importer: opts.importer } : {}),
      ...(opts.discover ? { discover: opts.discover } : {}),
    });
  }

  register(def: BackendDefinition): this {
    this.resolver.register(def);
    return this;
  }

  /** Finds a backend by name: registered, `@geowatch/<name>`, a package that declares it, or a package name. */
  resolveBackend(name: string): Promise<BackendDefinition> {
    return this.resolver.backend(name);
  }

  resolveStage(name: string): Promise<StageDefinition> {
    return this.resolver.stage(name);
  }

  /** Every installed backend, stage and package codec, loaded; `errors` lists packages that failed to load. */
  async installed(): Promise<{ backends: BackendDefinition[]; stages: StageDefinition[]; codecs: CodecDefinition[]; errors: string[] }> {
    const { errors } = await this.resolver.loadAll();
    return { backends: this.resolver.loadedBackends(), stages: this.resolver.loadedStages(), codecs: this.resolver.loadedCodecs(), errors };
  }

  /** The config JSON Schema, with the options of every installed backend and stage. */
  async jsonSchema(): Promise<Record<string, unknown>> {
    const { backends, stages } = await this.installed();
    return configJsonSchema({ backends, stages });
  }

  /**
   * One channel end for an app (a job queue, a buffer): `node` is a node as a broker config spells it
   * (`{ backend: kafka, topic: jobs, group_id: workers, codec: json }`), checked like one (every problem with
   * its path under `path`, thrown as one ConfigError) and wrapped by the runtime layer (connect with retry,
   * refuse calls after close). Apps name their channel's backend in their own config this way, so a user
   * moves jobs from @geowatch/queue to Kafka, RabbitMQ or SQS by installing the package and changing the node.
   */
  async channel(node: unknown, role: "consumer", path?: string): Promise<{ consumer: Consumer; codec: Codec | undefined; backend: string }>;
  async channel(node: unknown, role: "producer", path?: string): Promise<{ producer: Producer; codec: Codec | undefined; backend: string }>;
  async channel(node: unknown, role: "consumer" | "producer", path = role): Promise<{ consumer?: Consumer; producer?: Producer; codec: Codec | undefined; backend: string }> {
    const issues: ConfigIssue[] = [];
    const n = this.parseNode(nodeSchema, node, path, issues);
    if (n) this.roleKeys(n, path, role, issues);
    const p = n ? await this.planRole(n, {}, path, { role }, NODE_KEYS, issues) : undefined;
    if (!n || !p || issues.length > 0) throw new ConfigError(issues.length > 0 ? issues : [{ path, message: "not a channel node" }], path);
    const name = n.name ?? `${n.backend}-${role}`;
    const guard = { name, backend: p.backend, logger: this.log, connectTries: n.max_tries ?? 5 };
    const made = p.def.create(p.options, this.context(name));
    return role === "consumer"
      ? { consumer: guardConsumer(made as Consumer, guard), codec: p.codec, backend: p.backend }
      : { producer: guardProducer(made as Producer, guard), codec: p.codec, backend: p.backend };
  }

  /** Checks a config completely (shape, roles, backends, options, codecs, stages) and returns every problem. No side effects. */
  async validate(raw: unknown): Promise<ConfigIssue[]> {
    try {
      const build = await this.plan(raw);
      await build.dispose();
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.issues;
      throw err;
    }
  }

  /** Validates and builds everything a config describes, without connecting. Throws ConfigError. */
  async load(raw: unknown, source = "config"): Promise<Provisioned> {
    const build = await this.plan(raw, source);
    return build();
  }

  private async plan(raw: unknown, source = "config"): Promise<Make<Provisioned> & { dispose(): Promise<void> }> {
    const issues: ConfigIssue[] = [];
    const built: Stage[] = [];
    const dispose = async () => {
      for (const s of built) await s.close?.();
    };
    const cfg = interpolate(raw, this.env, (p) => readFileSync(this.path(p), "utf8"), issues);
    const top = topSchema.safeParse(cfg);
    if (!top.success) issues.push(...zodIssues(top.error));
    const obj = isObject(cfg) ? cfg : {};
    const defaults = isObject(obj.defaults) ? (obj.defaults as Record<string, Record<string, unknown>>) : {};
    const brokers = Array.isArray(obj.brokers) ? (obj.brokers as unknown[]) : [];
    const names = new Set<string>();
    const parts: Array<Make<Part>> = [];
    for (const [bi, b] of brokers.entries()) {
      const at = `brokers[${bi}]`;
      if (!isObject(b)) {
        issues.push({ path: at, message: "must be a mapping with name, consumers, producers, ..." });
        continue;
      }
      if (b.enabled === false) continue;
      if (typeof b.name === "string") {
        if (names.has(b.name)) issues.push({ path: `${at}.name`, message: `duplicate broker name "${b.name}"` });
        names.add(b.name);
      }
      const make = await this.planBroker(b, defaults, at, issues, built);
      if (make) parts.push(make);
    }
    if (issues.length > 0) {
      await dispose();
      throw new ConfigError(issues, source);
    }
    return Object.assign(() => this.assemble(parts.map((f) => f()), dispose), { dispose });
  }

  /** Checks one broker's own fields and every node it has, even when some fail. */
  private async planBroker(raw: Record<string, unknown>, defaults: Record<string, Record<string, unknown>>, at: string, issues: ConfigIssue[], built: Stage[]): Promise<Make<Part> | undefined> {
    const before = issues.length;
    const fields = brokerFieldsSchema.safeParse(raw);
    if (!fields.success) issues.push(...zodIssues(fields.error, at));
    const b = fields.success ? fields.data : undefined;
    const maxTries = typeof raw.max_tries === "number" ? raw.max_tries : 5;
    const list = (key: string): unknown[] => {
      const v = raw[key];
      if (v === undefined) return [];
      return Array.isArray(v) ? v : [];
    };
    const nodeNames = new Map<string, string>();
    const named = (name: string, path: string) => {
      const seen = nodeNames.get(name);
      if (seen) issues.push({ path: `${path}.name`, message: `duplicate node name "${name}" (also ${seen}): sinks and routes are named by it` });
      else nodeNames.set(name, path);
    };

    const consumers: Array<Make<ConsumerNode & { life: Lifecycle }>> = [];
    for (const [i, rawNode] of list("consumers").entries()) {
      const path = `${at}.consumers[${i}]`;
      const n = this.parseNode(nodeSchema, rawNode, path, issues);
      if (!n || n.enabled === false) continue;
      this.roleKeys(n, path, "consumer", issues);
      const p = await this.planRole(n, defaults, path, { role: "consumer" }, NODE_KEYS, issues);
      if (!p) continue;
      const name = n.name ?? `${n.backend}-consumer-${i}`;
      named(name, path);
      const ctx = this.context(name);
      consumers.push(() => {
        const consumer = guardConsumer(p.def.create(p.options, ctx), { name, backend: p.backend, logger: this.log, connectTries: n.max_tries ?? maxTries });
        return { name, consumer, codec: p.codec, backend: p.backend, life: consumer, ...(n.count ? { count: n.count } : {}) } as ConsumerNode & { life: Lifecycle };
      });
    }

    const planProducer = async (rawNode: unknown, path: string, i: number, deadLetter: boolean) => {
      const n = this.parseNode(nodeSchema, rawNode, path, issues);
      if (!n || n.enabled === false) return undefined;
      this.roleKeys(n, path, "producer", issues);
      const p = await this.planRole(n, defaults, path, { role: "producer", deadLetter }, NODE_KEYS, issues);
      if (!p) return undefined;
      const name = n.name ?? (deadLetter ? "dead-letter" : `${n.backend}-producer-${i}`);
      named(name, path);
      const ctx = this.context(name);
      return (): ProducerNode & { life: Lifecycle; check?: () => Promise<void> } => {
        const producer = guardProducer(p.def.create(p.options, ctx), { name, backend: p.backend, logger: this.log, connectTries: n.max_tries ?? maxTries });
        const node: ProducerNode & { life: Lifecycle; check?: () => Promise<void> } = { name, producer, backend: p.backend, life: producer, maxTries: n.max_tries ?? maxTries };
        if (p.codec) node.codec = p.codec;
        if (n.timeout !== undefined) node.timeoutMs = n.timeout * 1000;
        if (n.max_batch !== undefined) node.maxBatch = n.max_batch;
        if (n.max_batch_bytes !== undefined) node.maxBatchBytes = n.max_batch_bytes;
        if (n.linger_ms !== undefined) node.lingerMs = n.linger_ms;
        const topic = n.topic;
        const tc = n.topic_check;
        if (tc && topic) {
          node.check = async () => {
            if (!producer.ensureTopic) throw new GeoWatchError("UNSUPPORTED", `"${name}": topic_check is not supported by this backend`, { backend: p.backend });
            await producer.ensureTopic(topic, { create: typeof tc === "object" ? (tc.create ?? false) : false, ...(typeof tc === "object" && tc.partitions ? { partitions: tc.partitions } : {}) });
          };
        }
        return node;
      };
    };
    const producers: Array<Make<ProducerNode & { life: Lifecycle; check?: () => Promise<void> }>> = [];
    for (const [i, rawNode] of list("producers").entries()) {
      const made = await planProducer(rawNode, `${at}.producers[${i}]`, i, false);
      if (made) producers.push(made);
    }
    const deadLetter = raw.dead_letter !== undefined ? await planProducer(raw.dead_letter, `${at}.dead_letter`, 0, true) : undefined;

    const planStore = async (rawNode: unknown, path: string, dir: "in" | "out", i: number) => {
      const s = this.parseNode(storeSchema, rawNode, path, issues);
      if (!s || s.enabled === false) return undefined;
      for (const problem of checkKeyTemplate(s.key)) issues.push({ path: `${path}.key`, message: problem });
      const p = await this.planRole(s, defaults, path, { role: "store" }, STORE_KEYS, issues);
      if (!p) return undefined;
      const name = s.name ?? `${s.backend}-store-${dir}-${i}`;
      named(name, path);
      const ctx = this.context(name);
      return { s, make: () => {
        const store = guardStore(p.def.create(p.options, ctx), { name, backend: p.backend, logger: this.log, connectTries: s.max_tries ?? maxTries });
        return { name, store, codec: p.codec, key: s.key, backend: p.backend, life: store, ...(s.which ? { which: s.which } : {}), ...(s.which_index !== undefined ? { whichIndex: s.which_index } : {}) };
      } };
    };
    const storesIn: Array<Make<StoreInNode & { life: Lifecycle }>> = [];
    for (const [i, rawNode] of list("stores_in").entries()) {
      const planned = await planStore(rawNode, `${at}.stores_in[${i}]`, "in", i);
      if (planned) storesIn.push(() => ({ ...planned.make(), ...(planned.s.poll_ms ? { pollMs: planned.s.poll_ms } : {}) }) as StoreInNode & { life: Lifecycle });
    }
    const storesOut: Array<Make<StoreOutNode & { life: Lifecycle }>> = [];
    for (const [i, rawNode] of list("stores_out").entries()) {
      const planned = await planStore(rawNode, `${at}.stores_out[${i}]`, "out", i);
      if (!planned) continue;
      const s = planned.s;
      storesOut.push(() => ({
        ...planned.make(),
        ...(s.mode ? { mode: s.mode } : {}),
        ...(s.flush_count ? { flushCount: s.flush_count } : {}),
        ...(s.flush_ms !== undefined ? { flushMs: s.flush_ms } : {}),
      }) as StoreOutNode & { life: Lifecycle });
    }

    const stages: Stage[] = [];
    for (const [i, rawStage] of list("stages").entries()) {
      const stage = await this.planStage(rawStage, `${at}.stages[${i}]`, issues);
      if (stage) {
        stages.push(stage);
        built.push(stage);
      }
    }
    if (!this.opts.pushOnly && list("consumers").length + list("stores_in").length === 0 && !issues.some((x) => x.path.startsWith(`${at}.consumers`))) {
      issues.push({ path: `${at}.consumers`, message: "a broker needs at least one consumer or stores_in: without one it never receives anything" });
    }
    if (issues.length > before || !b) return undefined;

    const opts = this.opts;
    const log = this.log;
    return () => {
      const cs = consumers.map((c) => c());
      const ps = producers.map((p) => p());
      const si = storesIn.map((s) => s());
      const so = storesOut.map((s) => s());
      const dl = deadLetter?.();
      const observer = opts.observer?.(b.name);
      const broker = new Broker({
        name: b.name,
        consumers: cs,
        producers: ps,
        storesIn: si,
        storesOut: so,
        ...(dl ? { deadLetter: dl } : {}),
        stages,
        logger: log,
        ...(observer ? { observer } : {}),
        ...(b.count ? { count: b.count } : {}),
        ...(b.sleep_period !== undefined ? { sleepPeriodMs: b.sleep_period * 1000 } : {}),
        ...(b.timeout !== undefined ? { timeoutMs: b.timeout * 1000 } : {}),
        maxTries,
        ...(b.max_in_flight ? { maxInFlight: b.max_in_flight } : {}),
        ...(b.deduplicate !== undefined ? { deduplicate: b.deduplicate } : {}),
        ...(b.dedup_window ? { dedupWindow: b.dedup_window } : {}),
        ...(b.filter_metadata ? { filterMetadata: b.filter_metadata } : {}),
        ...(b.filter_last_one ? { filterLastOne: true } : {}),
      });
      const entries: Array<{ role: NodeHealth["role"]; node: { name: string; backend?: string; life: Lifecycle } }> = [
        ...cs.map((node) => ({ role: "consumer" as const, node })),
        ...ps.map((node) => ({ role: "producer" as const, node })),
        ...[...si, ...so].map((node) => ({ role: "store" as const, node })),
        ...(dl ? [{ role: "dead_letter" as const, node: dl }] : []),
      ];
      const health = () =>
        entries.map(({ role, node }) => {
          const h: NodeHealth = { broker: b.name, node: node.name, role, backend: node.backend ?? "?", state: node.life.state };
          if (node.life.lastError) h.error = node.life.lastError.message;
          const refused = role === "dead_letter" ? broker.deadLetterProblem() : undefined;
          if (refused !== undefined && h.state === "ready") {
            h.state = "failing";
            h.error = refused;
          }
          return h;
        });
      const checks: Array<() => Promise<void>> = [
        async () => {
          for (const s of stages) await s.open?.();
        },
        ...ps.flatMap((p) => (p.check ? [p.check] : [])),
      ];
      return { broker, health, nodes: entries.map((e) => e.node.life), checks };
    };
  }

  private parseNode<T>(schema: z.ZodType<T>, raw: unknown, path: string, issues: ConfigIssue[]): T | undefined {
    const r = schema.safeParse(raw);
    if (r.success) return r.data;
    issues.push(...zodIssues(r.error, path));
    return undefined;
  }

  /** A node-level key that only the other role uses is a mistake worth naming. */
  private roleKeys(n: NodeConfig, path: string, role: "consumer" | "producer", issues: ConfigIssue[]): void {
    const wrong = role === "consumer" ? PRODUCER_ONLY : CONSUMER_ONLY;
    for (const k of wrong) if (n[k] !== undefined) issues.push({ path: `${path}.${k}`, message: `a ${role === "consumer" ? "producer" : "consumer"} setting; this node is a ${role}` });
  }

  /** Resolves the backend for a role, its codec, and parses its options (defaults as fallback). */
  private async planRole<R extends "consumer" | "producer" | "store">(
    n: NodeConfig | StoreConfig,
    defaults: Record<string, Record<string, unknown>>,
    path: string,
    use: NodeUse & { role: R },
    own: readonly string[],
    issues: ConfigIssue[],
  ) {
    const codec = await this.codecFor(n.codec, `${path}.codec`, issues);
    let backend: BackendDefinition;
    try {
      backend = await this.resolver.backend(n.backend);
    } catch (err) {
      issues.push({ path: `${path}.backend`, message: clean(err) });
      return undefined;
    }
    const def = backend[use.role] as RoleDefinition<unknown> | undefined;
    if (!def) {
      const roles = (["consumer", "producer", "store"] as const).filter((r) => backend[r]);
      const as = use.deadLetter ? "a dead-letter sink (a producer)" : `a ${use.role}`;
      issues.push({ path: `${path}.backend`, message: `backend "${n.backend}" cannot be ${as} (it offers: ${roles.join(", ") || "nothing"})` });
      return undefined;
    }
    const inline: Record<string, unknown> = {};
    for (const k of Object.keys(n)) if (!own.includes(k)) inline[k] = (n as Record<string, unknown>)[k];
    for (const k of ["topic", "topics", "topic_prefix"] as const) if ((n as NodeConfig)[k] !== undefined) inline[k] = (n as NodeConfig)[k];
    // Defaults are a per-backend fallback for every node: keys this role does not know are not its problem.
    const shape = def.schema.shape;
    const fallback: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(defaults[n.backend] ?? {})) if (k in shape || toCamel(k) in shape) fallback[k] = v;
    const merged = { ...fallback, ...inline, ...((n as NodeConfig).options ?? {}) };
    const parsed = def.parse(merged, use, { baseDir: this.baseDir });
    if (!parsed.ok) {
      for (const p of parsed.problems) issues.push({ path: p.path ? joinPath(path, p.path) : path, message: p.message });
      return undefined;
    }
    return { def: def as RoleDefinition<R extends "consumer" ? Consumer : R extends "producer" ? Producer : Store>, options: parsed.options, codec, backend: backend.name };
  }

  /**
   * Builds a stage at plan time, so a problem only building reveals (a fence file that does not parse) is
   * a config issue with its path, for `validate` and `run` alike. Stages open their state in `open()`.
   */
  private async planStage(raw: unknown, path: string, issues: ConfigIssue[]): Promise<Stage | undefined> {
    const r = stageSchema.safeParse(raw);
    if (!r.success) {
      issues.push(...zodIssues(r.error, path));
      return undefined;
    }
    const st = r.data;
    if (st.enabled === false) return undefined;
    let def: StageDefinition;
    try {
      def = await this.resolver.stage(st.stage);
    } catch (err) {
      issues.push({ path: `${path}.stage`, message: clean(err) });
      return undefined;
    }
    const { stage: _s, enabled: _e, name, ...rest } = st;
    const parsed = def.parse(rest, { baseDir: this.baseDir });
    if (!parsed.ok) {
      for (const p of parsed.problems) issues.push({ path: p.path ? joinPath(path, p.path) : path, message: p.message });
      return undefined;
    }
    try {
      return await def.create(parsed.options, this.context(name ?? def.name));
    } catch (err) {
      // The error's own path (if any) points inside what failed to build (a fence file), not the config.
      issues.push({ path, message: clean(err) });
      return undefined;
    }
  }

  /** A built-in codec, or one an installed package provides (its options validated with their paths). */
  private async codecFor(ref: NodeConfig["codec"], path: string, issues: ConfigIssue[]): Promise<Codec | undefined> {
    if (ref === undefined) return undefined;
    const [name, options] = typeof ref === "string" ? [ref, undefined] : [ref.name, ref.options];
    try {
      if (Object.hasOwn(codecRegistry, name)) return getCodec(name, options);
      const def = await this.resolver.codec(name, Object.keys(codecRegistry));
      const parsed = def.parse(options ?? {}, { baseDir: this.baseDir });
      if (!parsed.ok) {
        const at = typeof ref === "string" ? path : `${path}.options`;
        for (const p of parsed.problems) issues.push({ path: p.path ? joinPath(at, p.path) : at, message: p.message });
        return undefined;
      }
      return def.create(parsed.options);
    } catch (err) {
      issues.push({ path, message: clean(err) });
      return undefined;
    }
  }

  private path(p: string): string {
    return isAbsolute(p) ? p : resolve(this.baseDir, p);
  }

  private context(name: string): BackendContext {
    return {
      name,
      logger: this.log,
      baseDir: this.baseDir,
      secret: (ref) => {
        if (ref.startsWith("file:")) return readFileSync(this.path(ref.slice(5)), "utf8").trim();
        return Object.hasOwn(this.env, ref) ? this.env[ref] : undefined;
      },
    };
  }

  private assemble(parts: Part[], closeStages: () => Promise<void>): Provisioned {
    const log = this.log;
    let connected: Promise<void> | undefined;
    let stopped: Promise<void> | undefined;
    const connect = () =>
      (connected ??= (async () => {
        const errors: string[] = [];
        await Promise.all(
          parts.flatMap((p) =>
            p.nodes.map((n) =>
              n.connect().catch((err: unknown) => {
                errors.push(reasonOf(err));
              }),
            ),
          ),
        );
        for (const p of parts) {
          for (const check of p.checks) {
            try {
              await check();
            } catch (err) {
              errors.push(reasonOf(err));
            }
          }
        }
        if (errors.length > 0) {
          connected = undefined;
          throw new GeoWatchError("CONNECT", `could not start:\n${errors.map((e) => `  - ${e}`).join("\n")}`);
        }
      })());
    return {
      brokers: parts.map((p) => p.broker),
      connect,
      async run(opts) {
        await connect();
        return Promise.all(parts.map((p) => p.broker.run(opts)));
      },
      stop: () =>
        (stopped ??= (async () => {
          await Promise.all(parts.map((p) => p.broker.stop()));
          for (const p of parts) {
            for (const n of p.nodes) {
              await n.close().catch((err: unknown) => log.warn("close failed", { error: reasonOf(err) }));
            }
          }
          await closeStages().catch((err: unknown) => log.warn("stage close failed", { error: reasonOf(err) }));
        })()),
      health: () => parts.flatMap((p) => p.health()),
      ready: () => parts.every((p) => p.nodes.every((n) => n.state === "ready") && p.broker.deadLetterProblem() === undefined),
    };
  }
}

/** The top level: `brokers` (each checked on its own) and `defaults`. */
const topSchema = z
  .object({
    $schema: z.string().optional(),
    defaults: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
    brokers: z.array(z.unknown()).min(1, "must list at least one broker"),
  })
  .strict();

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}


function joinPath(base: string, rel: string): string {
  return rel.startsWith("[") ? `${base}${rel}` : `${base}.${rel}`;
}

/** An error's message for a config issue, without the `[geowatch]` prefix the issue list already implies. */
function clean(err: unknown): string {
  return reasonOf(err).replace(/^\[geowatch\] /, "");
}
