import { readFileSync } from "node:fs";
import { Broker, type BrokerObserver, type BrokerStats, type ConsumerNode, type ProducerNode, type RunOptions } from "./broker.js";
import { getCodec } from "./codecs/index.js";
import {
  brokerSchema,
  camelKeys,
  checkConfigShape,
  ConfigError,
  interpolate,
  NODE_KEYS,
  STORE_KEYS,
  type BrokerConfig,
  type ConfigIssue,
  type GeoWatchConfig,
  type NodeConfig,
  type StageConfig,
  type StoreConfig,
} from "./config.js";
import { GeoWatchError, reasonOf } from "./errors.js";
import { memoryBackend } from "./backends/memory.js";
import { silentLogger } from "./logger.js";
import { guardConsumer, guardProducer, guardStore, type Lifecycle } from "./managed.js";
import type { StoreOutNode } from "./store-sink.js";
import type { StoreInNode } from "./store-source.js";
import type { BackendContext, BackendDefinition, Codec, Logger, Stage } from "./types.js";

/** Builds a stage from its config options. */
export type StageFactory = (options: Record<string, unknown>, ctx: BackendContext) => Stage | Promise<Stage>;

/** The package that holds each first-party backend, so config can name it by its short name. */
export const BACKEND_PACKAGES: Readonly<Record<string, string>> = {
  kafka: "@geowatch/kafka",
  amqp: "@geowatch/amqp",
  file: "@geowatch/file",
  queue: "@geowatch/queue",
  kinesis: "@geowatch/kinesis",
  sqs: "@geowatch/sqs",
  sns: "@geowatch/sns",
  s3: "@geowatch/s3",
  slack: "@geowatch/slack",
  memcached: "@geowatch/memcached",
  wfs: "@geowatch/wfs",
  email: "@geowatch/email",
};

/** Packages whose `stages` export provides named stages. */
export const STAGE_PACKAGES: readonly string[] = ["@geowatch/spatial"];

export interface RuntimeOptions {
  /** Backends available without importing a package. `memory` is always there. */
  backends?: BackendDefinition[];
  /** Stages available by name. */
  stages?: Record<string, StageFactory>;
  /** Imports a package by name from the user's project (so third-party backends resolve there). */
  importer?: (specifier: string) => Promise<Record<string, unknown>>;
  logger?: Logger;
  /** Environment for `${VAR}` interpolation and secrets; default process.env. */
  env?: Record<string, string | undefined>;
  /** Metrics callbacks per broker. */
  observer?: (broker: string) => BrokerObserver | undefined;
}

export interface NodeHealth {
  broker: string;
  node: string;
  role: "consumer" | "producer" | "store" | "dead_letter";
  backend: string;
  state: Lifecycle["state"];
  error?: string;
}

/** Everything a config provisioned. */
export interface Provisioned {
  readonly brokers: Broker[];
  /** Connects every node (with retries) and runs `topic_check`. */
  connect(): Promise<void>;
  /** Connects, then runs every broker until stopped (or until `opts` says). */
  run(opts?: RunOptions): Promise<BrokerStats[]>;
  /** Stops consuming, drains, flushes, acknowledges, closes every node. */
  stop(): Promise<void>;
  health(): NodeHealth[];
  /** True when every node is connected. */
  ready(): boolean;
}

interface Planned<T> {
  make: () => T;
}

/** Provisions brokers from config objects. */
export class Runtime {
  private readonly backends = new Map<string, BackendDefinition>();
  private readonly stages = new Map<string, StageFactory>();
  private readonly log: Logger;
  private readonly env: Record<string, string | undefined>;
  private stagesLoaded = false;

  constructor(private readonly opts: RuntimeOptions = {}) {
    this.log = opts.logger ?? silentLogger;
    this.env = opts.env ?? process.env;
    this.register(memoryBackend);
    for (const b of opts.backends ?? []) this.register(b);
    for (const [k, f] of Object.entries(opts.stages ?? {})) this.stages.set(k, f);
  }

  register(def: BackendDefinition): this {
    this.backends.set(def.name, def);
    return this;
  }

  /** Finds a backend by name, importing its package (first-party by short name, others by package name). */
  async resolveBackend(name: string): Promise<BackendDefinition> {
    const known = this.backends.get(name);
    if (known) return known;
    const pkg = BACKEND_PACKAGES[name] ?? name;
    const mod = await this.importModule(pkg, `backend "${name}"`);
    const defs = Object.values(mod).filter(isBackendDefinition);
    const def = defs.find((d) => d.name === name) ?? (defs.length === 1 ? defs[0] : undefined) ?? (isBackendDefinition(mod.default) ? mod.default : undefined);
    if (!def) throw new GeoWatchError("CONFIG", `package "${pkg}" exports no GeoWatch backend (an object with name and consumer/producer/store factories)`);
    this.backends.set(name, def);
    return def;
  }

  /** Names of registered backends (after a load, including imported ones). */
  listBackends(): BackendDefinition[] {
    return [...this.backends.values()];
  }

  private async importModule(specifier: string, what: string): Promise<Record<string, unknown>> {
    const importer = this.opts.importer ?? ((s: string) => import(s) as Promise<Record<string, unknown>>);
    try {
      return await importer(specifier);
    } catch (err) {
      const missing = (err as { code?: string }).code === "ERR_MODULE_NOT_FOUND" || (err as { code?: string }).code === "MODULE_NOT_FOUND";
      throw new GeoWatchError("CONFIG", missing ? `${what} is not installed: npm install ${specifier}` : `${what}: cannot load "${specifier}": ${reasonOf(err)}`, { cause: err });
    }
  }

  private async resolveStage(name: string): Promise<StageFactory> {
    if (!this.stages.has(name) && !this.stagesLoaded) {
      this.stagesLoaded = true;
      for (const pkg of STAGE_PACKAGES) {
        try {
          const mod = await this.importModule(pkg, "stages");
          const stages = (mod.stages ?? mod.spatialStages) as Record<string, StageFactory> | undefined;
          const check = (mod.validateStage ?? mod.validateSpatialStage) as ((stage: string, o: Record<string, unknown>) => ConfigIssue[]) | undefined;
          for (const [k, f] of Object.entries(stages ?? {})) {
            if (this.stages.has(k)) continue;
            const factory: StageFactory & { validate?: (o: Record<string, unknown>) => ConfigIssue[] } = (o, ctx) => f(o, ctx);
            factory.validate = (o) => (f as { validate?: (o: Record<string, unknown>) => ConfigIssue[] }).validate?.(o) ?? check?.(k, o) ?? [];
            this.stages.set(k, factory);
          }
        } catch {
          // Optional: a project without @geowatch/spatial simply has fewer stages.
        }
      }
    }
    // Config is snake_case: `route_by_fence` names the `routeByFence` stage.
    const f = this.stages.get(name) ?? this.stages.get(name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
    if (f) return f;
    if (name.startsWith("@") || name.startsWith(".") || name.includes("/")) {
      const mod = await this.importModule(name, `stage "${name}"`);
      const fn = (mod.default ?? mod.stage) as StageFactory | undefined;
      if (typeof fn === "function") return fn;
    }
    throw new GeoWatchError("CONFIG", `unknown stage "${name}" (known: ${[...this.stages.keys()].sort().join(", ") || "none"})`);
  }

  /** Checks a config completely (shape, backends, options, codecs, stages) and returns every problem. */
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

  private async plan(raw: unknown, source = "config"): Promise<(() => Provisioned) & { dispose(): Promise<void> }> {
    const issues: ConfigIssue[] = [];
    const interpolated = interpolate(raw, this.env, (p) => readFileSync(p, "utf8"), issues);
    const shape = checkConfigShape(interpolated);
    issues.push(...shape.issues);
    if (!shape.config) {
      // The whole config does not parse, but the brokers that do are still checked, so one run lists every problem.
      const brokers = (interpolated as { brokers?: unknown } | null)?.brokers;
      const cfg = { brokers: [], defaults: (interpolated as { defaults?: GeoWatchConfig["defaults"] }).defaults } as unknown as GeoWatchConfig;
      const built: Stage[] = [];
      for (const [bi, raw] of (Array.isArray(brokers) ? brokers : []).entries()) {
        const b = brokerSchema.safeParse(raw);
        if (b.success && b.data.enabled !== false) await this.planBroker(cfg, b.data, `brokers[${bi}]`, issues, built).catch(() => undefined);
      }
      for (const st of built) await st.close?.();
      throw new ConfigError(issues, source);
    }
    const cfg = shape.config;
    const builders: Array<() => { broker: Broker; health: () => NodeHealth[]; nodes: Lifecycle[]; checks: Array<() => Promise<void>> }> = [];
    const built: Stage[] = [];
    for (const [bi, b] of cfg.brokers.entries()) {
      if (b.enabled === false) continue;
      builders.push(await this.planBroker(cfg, b, `brokers[${bi}]`, issues, built));
    }
    const dispose = async () => {
      for (const s of built) await s.close?.();
    };
    if (issues.length > 0) {
      await dispose();
      throw new ConfigError(issues, source);
    }
    return Object.assign(() => this.assemble(builders.map((f) => f()), dispose), { dispose });
  }

  private async planBroker(cfg: GeoWatchConfig, b: BrokerConfig, at: string, issues: ConfigIssue[], built: Stage[]) {
    const consumers: Array<Planned<ConsumerNode & { life: Lifecycle; role: NodeHealth["role"] }>> = [];
    const producers: Array<Planned<ProducerNode & { life: Lifecycle; check?: () => Promise<void> }>> = [];
    const storesIn: Array<Planned<StoreInNode & { life: Lifecycle }>> = [];
    const storesOut: Array<Planned<StoreOutNode & { life: Lifecycle }>> = [];
    let deadLetter: Planned<ProducerNode & { life: Lifecycle }> | undefined;
    const stages: Stage[] = [];
    const maxTries = b.max_tries ?? 5;

    const planNode = async (n: NodeConfig, path: string, role: "consumer" | "producer", index: number) => {
      const def = await this.backendFor(n.backend, role, `${path}.backend`, issues);
      const codec = this.codecFor(n.codec, `${path}.codec`, issues);
      if (!def) return undefined;
      const name = n.name ?? `${n.backend}-${role}-${index}`;
      const options = this.nodeOptions(cfg, n, NODE_KEYS, def, path, issues);
      const ctx = this.context(b.name, name);
      const tries = n.max_tries ?? maxTries;
      return { def, codec, name, options, ctx, tries };
    };

    for (const [i, n] of (b.consumers ?? []).entries()) {
      if (n.enabled === false) continue;
      const p = await planNode(n, `${at}.consumers[${i}]`, "consumer", i);
      if (!p) continue;
      consumers.push({
        make: () => {
          const consumer = guardConsumer(p.def.consumer!(p.options, p.ctx), { name: p.name, backend: p.def.name, logger: this.log, connectTries: p.tries });
          return { name: p.name, consumer, codec: p.codec, backend: p.def.name, life: consumer, role: "consumer", ...(n.count ? { count: n.count } : {}) };
        },
      });
    }
    const planProducer = async (n: NodeConfig, path: string, i: number) => {
      const p = await planNode(n, path, "producer", i);
      if (!p) return undefined;
      return {
        make: () => {
          const producer = guardProducer(p.def.producer!(p.options, p.ctx), { name: p.name, backend: p.def.name, logger: this.log, connectTries: p.tries });
          const topic = n.topic;
          const tc = n.topic_check;
          const check =
            tc && topic
              ? async () => {
                  if (!producer.ensureTopic) throw new GeoWatchError("UNSUPPORTED", `"${p.name}": topic_check is not supported by this backend`, { backend: p.def.name });
                  await producer.ensureTopic(topic, { create: typeof tc === "object" ? (tc.create ?? false) : false, ...(typeof tc === "object" && tc.partitions ? { partitions: tc.partitions } : {}) });
                }
              : undefined;
          const node: ProducerNode & { life: Lifecycle; check?: () => Promise<void> } = { name: p.name, producer, codec: p.codec, backend: p.def.name, life: producer, maxTries: p.tries };
          if (n.timeout !== undefined) node.timeoutMs = n.timeout * 1000;
          if (n.max_batch !== undefined) node.maxBatch = n.max_batch;
          if (n.max_batch_bytes !== undefined) node.maxBatchBytes = n.max_batch_bytes;
          if (n.linger_ms !== undefined) node.lingerMs = n.linger_ms;
          if (check) node.check = check;
          return node;
        },
      };
    };
    for (const [i, n] of (b.producers ?? []).entries()) {
      if (n.enabled === false) continue;
      const planned = await planProducer(n, `${at}.producers[${i}]`, i);
      if (planned) producers.push(planned);
    }
    if (b.dead_letter && b.dead_letter.enabled !== false) deadLetter = await planProducer({ name: "dead-letter", ...b.dead_letter }, `${at}.dead_letter`, 0);

    const planStore = async (s: StoreConfig, path: string, role: "in" | "out", i: number) => {
      const def = await this.backendFor(s.backend, "store", `${path}.backend`, issues);
      const codec = this.codecFor(s.codec, `${path}.codec`, issues);
      if (!def) return undefined;
      const name = s.name ?? `${s.backend}-store-${role}-${i}`;
      const options = this.nodeOptions(cfg, s as NodeConfig, STORE_KEYS, def, path, issues);
      const ctx = this.context(b.name, name);
      return () => {
        const store = guardStore(def.store!(options, ctx), { name, backend: def.name, logger: this.log, connectTries: s.max_tries ?? maxTries });
        return { name, store, codec, key: s.key, backend: def.name, life: store, ...(s.which ? { which: s.which } : {}), ...(s.which_index !== undefined ? { whichIndex: s.which_index } : {}) };
      };
    };
    for (const [i, s] of (b.stores_in ?? []).entries()) {
      if (s.enabled === false) continue;
      const make = await planStore(s, `${at}.stores_in[${i}]`, "in", i);
      if (make) storesIn.push({ make: () => ({ ...make(), ...(s.poll_ms ? { pollMs: s.poll_ms } : {}) }) });
    }
    for (const [i, s] of (b.stores_out ?? []).entries()) {
      if (s.enabled === false) continue;
      const make = await planStore(s, `${at}.stores_out[${i}]`, "out", i);
      if (make)
        storesOut.push({
          make: () => ({
            ...make(),
            ...(s.mode ? { mode: s.mode } : {}),
            ...(s.flush_count ? { flushCount: s.flush_count } : {}),
            ...(s.flush_ms !== undefined ? { flushMs: s.flush_ms } : {}),
          }),
        });
    }
    for (const [i, st] of (b.stages ?? []).entries()) {
      if (st.enabled === false) continue;
      const planned = await this.planStage(st, `${at}.stages[${i}]`, b.name, issues);
      if (planned) {
        stages.push(planned);
        built.push(planned);
      }
    }
    if ((b.consumers ?? []).length + (b.stores_in ?? []).length === 0) {
      this.log.info("broker has no consumers or stores_in: it only takes pushed messages", { broker: b.name });
    }

    return () => {
      const cs = consumers.map((c) => c.make());
      const ps = producers.map((p) => p.make());
      const si = storesIn.map((s) => s.make());
      const so = storesOut.map((s) => s.make());
      const dl = deadLetter?.make();
      const observer = this.opts.observer?.(b.name);
      const broker = new Broker({
        name: b.name,
        consumers: cs,
        producers: ps,
        storesIn: si,
        storesOut: so,
        ...(dl ? { deadLetter: dl } : {}),
        stages,
        logger: this.log,
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

  /**
   * Builds a stage at plan time, so a problem only building reveals (a fence file that does not parse)
   * is a config issue with its path, for `validate` and `run` alike.
   */
  private async planStage(st: StageConfig, path: string, broker: string, issues: ConfigIssue[]): Promise<Stage | undefined> {
    let factory: StageFactory;
    try {
      factory = await this.resolveStage(st.stage);
    } catch (err) {
      issues.push({ path: `${path}.stage`, message: reasonOf(err).replace(/^\[geowatch\] /, "") });
      return undefined;
    }
    const { stage: _s, enabled: _e, name, ...rest } = st;
    const options = camelKeys(rest) as Record<string, unknown>;
    const validate = (factory as StageFactory & { validate?: (o: Record<string, unknown>) => ConfigIssue[] }).validate;
    const problems = validate?.(options) ?? [];
    for (const i of problems) issues.push({ path: i.path ? `${path}.${snake(i.path)}` : path, message: i.message });
    if (problems.length > 0) return undefined;
    try {
      return await factory(options, this.context(broker, name ?? st.stage));
    } catch (err) {
      issues.push({ path, message: reasonOf(err).replace(/^\[geowatch\] /, "") });
      return undefined;
    }
  }

  private async backendFor(name: string, role: "consumer" | "producer" | "store", path: string, issues: ConfigIssue[]) {
    let def: BackendDefinition;
    try {
      def = await this.resolveBackend(name);
    } catch (err) {
      issues.push({ path, message: reasonOf(err).replace(/^\[geowatch\] /, "") });
      return undefined;
    }
    if (!def[role]) {
      const roles = (["consumer", "producer", "store"] as const).filter((r) => def[r]);
      issues.push({ path, message: `backend "${name}" cannot be a ${role} (it offers: ${roles.join(", ") || "nothing"})` });
      return undefined;
    }
    return def;
  }

  private codecFor(ref: NodeConfig["codec"], path: string, issues: ConfigIssue[]): Codec | undefined {
    if (ref === undefined) return undefined;
    const [name, options] = typeof ref === "string" ? [ref, undefined] : [ref.name, ref.options];
    try {
      return getCodec(name, options);
    } catch (err) {
      issues.push({ path, message: reasonOf(err).replace(/^\[geowatch\] /, "") });
      return undefined;
    }
  }

  /** Merges defaults (fallback) under the node's inline options and `options`, validating them. */
  private nodeOptions(
    cfg: GeoWatchConfig,
    n: NodeConfig,
    own: readonly string[],
    def: BackendDefinition,
    path: string,
    issues: ConfigIssue[],
  ): Record<string, unknown> {
    const inline: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n)) if (!own.includes(k)) inline[k] = v;
    for (const k of ["topic", "topics", "topic_prefix"] as const) if (n[k] !== undefined) inline[k] = n[k];
    const merged = camelKeys({ ...(cfg.defaults?.[n.backend] ?? {}), ...inline, ...(n.options ?? {}) }) as Record<string, unknown>;
    for (const i of def.validate?.(merged) ?? []) {
      issues.push({ path: i.path ? `${path}.${snake(i.path)}` : path, message: i.message });
    }
    return merged;
  }

  private context(broker: string, name: string): BackendContext {
    return {
      name,
      logger: this.log,
      secret: (ref) => {
        if (ref.startsWith("file:")) return readFileSync(ref.slice(5), "utf8").trim();
        return this.env[ref];
      },
    };
  }

  private assemble(
    parts: Array<{ broker: Broker; health: () => NodeHealth[]; nodes: Lifecycle[]; checks: Array<() => Promise<void>> }>,
    closeStages: () => Promise<void>,
  ): Provisioned {
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
    const provisioned: Provisioned = {
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
      ready: () => parts.every((p) => p.nodes.every((n) => n.state === "ready")),
    };
    return provisioned;
  }
}

function isBackendDefinition(v: unknown): v is BackendDefinition {
  if (v === null || typeof v !== "object") return false;
  const d = v as BackendDefinition;
  return typeof d.name === "string" && (typeof d.consumer === "function" || typeof d.producer === "function" || typeof d.store === "function");
}

/** `topicPrefix` -> `topic_prefix`, to show option paths the way the config spells them. */
function snake(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
