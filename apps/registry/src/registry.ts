import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { GeoWatchError, checkUrl, jsonLogger, reasonOf, sleep } from "@geowatch/core";
import type { InRecord, Logger } from "@geowatch/core";
import { queueStats } from "@geowatch/queue";
import type { QueueStats } from "@geowatch/queue";
import { openJobChannel, REASON_HEADER } from "./channel.js";
import type { ChannelConsumer, Importer, JobChannel } from "./channel.js";
import { capabilitiesUrl, HostLimiter, layerProbe, probe } from "./checks.js";
import type { RegistryConfig } from "./config.js";
import { createFetcher, discoverEsriServices, guessType, harvest } from "./harvest/index.js";
import type { Fetcher } from "./harvest/index.js";
import { postgresStorage } from "./storage/postgres.js";
import { sqliteStorage } from "./storage/sqlite.js";
import type { CheckInput, LayerInput, RegistryStorage, Service, ServiceType } from "./storage/types.js";
import { SERVICE_TYPES } from "./storage/types.js";

/** A job on the job channel; `attempt` counts the failed runs before this one. */
export type Job = { kind: "harvest" | "check"; serviceId: number; attempt?: number };

/** An index update on the buffer channel (Hypermap's memcached buffer): what a worker found, applied by the indexer. */
export type IndexUpdate =
  | { kind: "harvest"; serviceId: number; ok: true; layers: LayerInput[]; title: string; abstract: string; version: string }
  | { kind: "harvest"; serviceId: number; ok: false; error: string }
  | { kind: "checks"; checks: CheckInput[] };

export interface RegistryOptions {
  logger?: Logger;
  /** Use this storage instead of the one the config names (tests, embedding). */
  storage?: RegistryStorage;
  /** Loads backend packages (`jobs.backend`); default: `import()` from this package. */
  importer?: Importer;
}

export function openStorage(config: RegistryConfig): RegistryStorage {
  if (config.storage.engine === "postgres") {
    if (!config.storage.url) throw new GeoWatchError("CONFIG", "storage.engine postgres needs storage.url (or GEOWATCH_REGISTRY_PG_URL)", { backend: "registry", path: "storage.url" });
    return postgresStorage(config.storage.url);
  }
  return sqliteStorage(config.storage.path);
}

/**
 * The registry: storage, the URL-policy fetcher, the job channel and the index buffer. HTTP, CLI and workers
 * are built on it; the HTTP layer only enqueues, workers do the long work.
 */
export class Registry {
  readonly storage: RegistryStorage;
  readonly fetcher: Fetcher;
  readonly log: Logger;
  private channel: JobChannel | undefined;
  private readonly limiter: HostLimiter;
  private closed = false;

  constructor(
    readonly config: RegistryConfig,
    private readonly opts: RegistryOptions = {},
  ) {
    this.log = opts.logger ?? jsonLogger();
    this.storage = opts.storage ?? openStorage(config);
    this.fetcher = createFetcher({ ...config.urlPolicy, timeoutMs: config.harvest.timeoutMs, maxBytes: config.harvest.maxBytes });
    const holder = `${hostname()}:${process.pid}:${randomUUID()}`;
    // A slot is held for at most one request, which the check timeout ends; the margin covers reading the answer.
    const ttl = config.checks.timeoutMs + 10_000;
    this.limiter = new HostLimiter(config.checks.perHost, config.checks.concurrency, async (host) => {
      for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
        const slot = await this.storage.acquireHostSlot(host, config.checks.perHost, holder, ttl);
        if (slot !== undefined) return () => this.storage.releaseHostSlot(host, slot, holder);
        await sleep(wait + Math.random() * wait);
      }
    });
  }

  /** Opens storage and the job channel (finding and validating `jobs.backend`, creating its destinations). */
  async init(): Promise<this> {
    await this.storage.init();
    try {
      this.channel = await openJobChannel(this.config, this.log, ...(this.opts.importer ? [this.opts.importer] : []));
    } catch (err) {
      await this.storage.close();
      this.closed = true;
      throw err;
    }
    return this;
  }

  private get jobChannel(): JobChannel {
    if (!this.channel) throw new GeoWatchError("CLOSED", "the registry is not initialised (call init())", { backend: "registry" });
    return this.channel;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.channel?.close();
    await this.storage.close();
  }

  /**
   * Registers services by URL (type guessed when not given; an ArcGIS services root adds every service it
   * lists) and enqueues their harvest. The URL must pass the URL policy.
   */
  async add(url: string, opts: { type?: ServiceType; owner?: string; enqueue?: boolean } = {}): Promise<Service[]> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new GeoWatchError("VALIDATE", `"${url}" is not a URL`, { backend: "registry" });
    }
    if (opts.type && !SERVICE_TYPES.includes(opts.type)) throw new GeoWatchError("VALIDATE", `unknown service type "${opts.type}" (one of ${SERVICE_TYPES.join(", ")})`, { backend: "registry" });
    await checkUrl(parsed, this.fetcher.policy);
    let targets: { url: string; type: ServiceType }[];
    if (!opts.type && /\/rest\/services\/?$/i.test(parsed.pathname)) {
      targets = (await discoverEsriServices(url, { fetcher: this.fetcher })).map((u) => ({ url: u, type: guessType(u)! }));
    } else {
      const type = opts.type ?? guessType(url);
      if (!type) throw new GeoWatchError("VALIDATE", `cannot tell the service type of ${url}; give it (--type ${SERVICE_TYPES.join("|")})`, { backend: "registry" });
      targets = [{ url, type }];
    }
    const out: Service[] = [];
    for (const t of targets) {
      const s = await this.storage.addService({ url: t.url, type: t.type, ...(opts.owner ? { owner: opts.owner } : {}) });
      out.push(s);
    }
    if (opts.enqueue !== false) await this.enqueue(out.map((s) => ({ kind: "harvest", serviceId: s.id })));
    return out;
  }

  /** Sends jobs to the job channel (one transaction). */
  async enqueue(jobs: Job[]): Promise<void> {
    if (!jobs.length) return;
    await this.jobChannel.send(this.jobChannel.names.jobs, jobs.map((j) => ({ value: JSON.stringify(j), key: `${j.kind}:${j.serviceId}` })));
  }

  /** Harvests a service now and returns the index update (the caller buffers or applies it). */
  async harvestUpdate(serviceId: number, progress?: (done: number, total: number | undefined) => void): Promise<IndexUpdate> {
    const s = await this.storage.getService(serviceId);
    if (!s) throw new GeoWatchError("NOT_FOUND", `no service ${serviceId}`, { backend: "registry" });
    try {
      const h = await harvest(s.url, s.type, { fetcher: this.fetcher, owner: s.owner, maxRecords: this.config.harvest.maxRecords, ...(progress ? { progress } : {}) });
      return { kind: "harvest", serviceId, ok: true, layers: h.layers, title: h.title, abstract: h.abstract, version: h.version };
    } catch (err) {
      // A failed harvest is a result (kept with its reason), not a crash.
      return { kind: "harvest", serviceId, ok: false, error: reasonOf(err) };
    }
  }

  /** Checks a service (capabilities) and, when configured, each monitored layer; returns the results. */
  async checkUpdate(serviceId: number): Promise<IndexUpdate> {
    const s = await this.storage.getService(serviceId);
    if (!s) throw new GeoWatchError("NOT_FOUND", `no service ${serviceId}`, { backend: "registry" });
    const t = this.config.checks.timeoutMs;
    const url = capabilitiesUrl(s);
    const checks: CheckInput[] = [];
    const at = Date.now();
    const svc = await this.limiter.run(url, () => probe(this.fetcher, url, "capabilities", t));
    checks.push({ serviceId, ok: svc.ok, responseMs: svc.responseMs, message: svc.message, at });
    if (this.config.checks.layers && svc.ok) {
      const layers = (await this.storage.listLayers(serviceId)).filter((l) => l.monitored);
      const results = await Promise.all(
        layers.map(async (l) => {
          const p = layerProbe(l);
          if (!p) return undefined;
          const r = await this.limiter.run(p.url, () => probe(this.fetcher, p.url, p.expect, t));
          return { serviceId, layerId: l.id, ok: r.ok, responseMs: r.responseMs, message: r.message, at: Date.now() } satisfies CheckInput;
        }),
      );
      for (const r of results) if (r) checks.push(r);
    }
    return { kind: "checks", checks };
  }

  /** Writes an index update to storage (what the indexer does with each buffered update). */
  async apply(u: IndexUpdate): Promise<void> {
    if (u.kind === "checks") {
      for (const c of u.checks) {
        // The layer may have gone in a harvest since the check ran: its check goes with it.
        if (c.layerId && !(await this.storage.getLayer(c.layerId))) continue;
        if (!(await this.storage.getService(c.serviceId))) continue;
        await this.storage.addCheck(c, this.config.checks.recent);
      }
      return;
    }
    if (!(await this.storage.getService(u.serviceId))) return;
    if (u.ok) {
      await this.storage.recordHarvest(u.serviceId, { ok: true, layers: u.layers });
      await this.storage.updateService(u.serviceId, { title: u.title, abstract: u.abstract, version: u.version });
    } else {
      await this.storage.recordHarvest(u.serviceId, { ok: false, error: u.error });
    }
  }

  /** Puts an index update on the buffer channel. */
  async bufferUpdate(u: IndexUpdate): Promise<void> {
    // Keyed by service: on partitioned channels (Kafka) a service's updates stay in order on one partition.
    const serviceId = u.kind === "harvest" ? u.serviceId : u.checks[0]?.serviceId;
    await this.jobChannel.send(this.jobChannel.names.buffer, [{ value: JSON.stringify(u), key: `service:${serviceId ?? 0}` }]);
  }

  /** Queue depths of the job channel and the buffer (ready, in flight, dead) on the queue backend; other backends report only their name. */
  stats(): { backend: string; jobs?: QueueStats; buffer?: QueueStats } {
    if (this.config.jobs.backend !== "queue") return { backend: this.config.jobs.backend };
    return { backend: "queue", jobs: queueStats(this.config.jobs.path, this.config.jobs.queue), buffer: queueStats(this.config.jobs.path, this.config.jobs.buffer) };
  }

  /**
   * One scheduler tick: for each schedule whose period is due, exactly one process across all that share
   * the storage wins the claim (a conditional UPDATE of the schedule row: SQLite's write lock on the shared
   * file, PostgreSQL's row lock) and enqueues that period's jobs. Returns how many jobs it enqueued.
   */
  async scheduleTick(now = Date.now()): Promise<number> {
    let n = 0;
    if (await this.storage.claimPeriod("checks", this.config.checks.intervalMs, now)) {
      const services = (await this.storage.listServices()).filter((s) => s.monitored && s.harvestOk !== false);
      await this.enqueue(services.map((s) => ({ kind: "check", serviceId: s.id })));
      n += services.length;
    }
    if (await this.storage.claimPeriod("harvests", this.config.harvest.intervalMs, now)) {
      const services = (await this.storage.listServices()).filter((s) => s.harvestedAt !== null);
      await this.enqueue(services.map((s) => ({ kind: "harvest", serviceId: s.id })));
      n += services.length;
    }
    return n;
  }

  /**
   * A worker: takes jobs from the job channel, runs them (harvest or check, bounded per host), puts the
   * results on the buffer and acknowledges; the indexer loop applies buffered updates to storage. Runs until
   * `signal` aborts, or until both channels are empty when `untilIdle`.
   */
  async work(opts: { signal?: AbortSignal; untilIdle?: boolean; indexer?: boolean; jobs?: boolean; concurrency?: number } = {}): Promise<{ jobs: number; updates: number }> {
    const counts = { jobs: 0, updates: 0 };
    const ch = this.jobChannel;
    const jobsC = opts.jobs === false ? undefined : ch.consumer("jobs");
    const bufC = opts.indexer === false ? undefined : ch.consumer("buffer");
    const waitMs = opts.untilIdle ? 500 : 1000;
    const stop = () => opts.signal?.aborted === true;
    let idleJobs = !jobsC;
    let idleBuf = !bufC;
    const loop = async (c: ChannelConsumer | undefined, max: number, each: (r: InRecord) => Promise<void>, idle: (v: boolean) => boolean) => {
      if (!c) return;
      while (!stop()) {
        const recs = await c.receive(max, { waitMs, ...(opts.signal ? { signal: opts.signal } : {}) });
        if (!recs.length) {
          if (idle(true) && opts.untilIdle) return;
          continue;
        }
        idle(false);
        // Every record of the batch is settled (done, retried or dead-lettered) before the batch is acknowledged.
        await Promise.all(recs.map(each));
        await c.done(recs);
      }
    };
    const jobLoop = loop(
      jobsC,
      opts.concurrency ?? 4,
      async (r) => {
        await this.runJob(r);
        counts.jobs++;
      },
      (v) => {
        idleJobs = v;
        return idleJobs && idleBuf;
      },
    );
    const bufLoop = loop(
      bufC,
      100,
      async (r) => {
        // Updates apply one at a time, in order (a harvest before the checks of its layers).
        await this.settle<IndexUpdate & { attempt?: number }>(r, ch.names.buffer, ch.names.bufferDead, "update", async (u) => {
          await this.apply(u);
          counts.updates++;
        });
      },
      (v) => {
        idleBuf = v;
        return idleJobs && idleBuf;
      },
    );
    try {
      await Promise.all([jobLoop, bufLoop]);
    } finally {
      await jobsC?.close();
      await bufC?.close();
    }
    return counts;
  }

  private async runJob(r: InRecord): Promise<void> {
    const ch = this.jobChannel;
    await this.settle<Job>(r, ch.names.jobs, ch.names.jobsDead, "job", async (job) => {
      if (job.kind !== "harvest" && job.kind !== "check") throw new GeoWatchError("VALIDATE", `unknown job kind "${String(job.kind)}"`, { backend: "registry" });
      const update = job.kind === "harvest" ? await this.harvestUpdate(job.serviceId) : await this.checkUpdate(job.serviceId);
      // The job is acknowledged only after its result is on the buffer channel (at-least-once).
      await this.bufferUpdate(update);
    });
  }

  /**
   * Runs one record's work. On failure it goes back to its channel with its attempt count raised, or, at
   * `jobs.max_receives` attempts (or when it can never work: not JSON, a service that is gone), to the
   * dead-letter destination with the reason. Returns once the record may be acknowledged; if even that
   * send fails, the error propagates and the record is not acknowledged (it comes again).
   */
  private async settle<T extends { attempt?: number }>(r: InRecord, home: string, dead: string, what: string, work: (v: T) => Promise<void>): Promise<void> {
    const ch = this.jobChannel;
    let v: T;
    try {
      v = JSON.parse(String(r.value)) as T;
      if (!v || typeof v !== "object") throw new Error("not an object");
    } catch (err) {
      await ch.send(dead, [{ value: String(r.value), headers: { [REASON_HEADER]: `not a ${what}: ${reasonOf(err)}` } }]);
      return;
    }
    try {
      await work(v);
    } catch (err) {
      const reason = reasonOf(err);
      const attempt = (v.attempt ?? 0) + 1;
      const gone = err instanceof GeoWatchError && (err.code === "NOT_FOUND" || err.code === "VALIDATE");
      this.log.warn(`${what} failed`, { backend: "registry", attempt, error: reason });
      const next = JSON.stringify({ ...v, attempt });
      if (gone || attempt >= this.config.jobs.maxReceives) {
        await ch.send(dead, [{ value: next, ...(r.key ? { key: r.key } : {}), headers: { [REASON_HEADER]: reason, "geowatch-attempts": String(attempt) } }]);
      } else {
        await ch.send(home, [{ value: next, ...(r.key ? { key: r.key } : {}) }]);
      }
    }
  }

  /** Runs the scheduler every `tickMs` until `signal` aborts. */
  async schedule(signal: AbortSignal, tickMs = 5000): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.scheduleTick();
      } catch (err) {
        this.log.warn("scheduler tick failed", { backend: "registry", error: reasonOf(err) });
      }
      await sleep(tickMs, signal).catch(() => undefined);
    }
  }
}
