import { GeoWatchError, checkUrl, jsonLogger, reasonOf, sleep } from "@geowatch/core";
import type { InRecord, Logger, ManagedConsumer, ManagedProducer } from "@geowatch/core";
import { queueConsumer, queueProducer, queueStats } from "@geowatch/queue";
import type { QueueConsumer } from "@geowatch/queue";
import { capabilitiesUrl, HostLimiter, layerProbe, probe } from "./checks.js";
import type { RegistryConfig } from "./config.js";
import { createFetcher, discoverEsriServices, guessType, harvest } from "./harvest/index.js";
import type { Fetcher } from "./harvest/index.js";
import { postgresStorage } from "./storage/postgres.js";
import { sqliteStorage } from "./storage/sqlite.js";
import type { CheckInput, LayerInput, RegistryStorage, Service, ServiceType } from "./storage/types.js";
import { SERVICE_TYPES } from "./storage/types.js";

/** A job on the job channel. */
export type Job = { kind: "harvest"; serviceId: number } | { kind: "check"; serviceId: number };

/** An index update on the buffer channel (Hypermap's memcached buffer): what a worker found, applied by the indexer. */
export type IndexUpdate =
  | { kind: "harvest"; serviceId: number; ok: true; layers: LayerInput[]; title: string; abstract: string; version: string }
  | { kind: "harvest"; serviceId: number; ok: false; error: string }
  | { kind: "checks"; checks: CheckInput[] };

export interface RegistryOptions {
  logger?: Logger;
  /** Use this storage instead of the one the config names (tests, embedding). */
  storage?: RegistryStorage;
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
  private readonly jobs: ManagedProducer;
  private readonly buffer: ManagedProducer;
  private readonly limiter: HostLimiter;
  private closed = false;

  constructor(
    readonly config: RegistryConfig,
    opts: RegistryOptions = {},
  ) {
    this.log = opts.logger ?? jsonLogger();
    this.storage = opts.storage ?? openStorage(config);
    this.fetcher = createFetcher({ ...config.urlPolicy, timeoutMs: config.harvest.timeoutMs, maxBytes: config.harvest.maxBytes });
    this.jobs = queueProducer({ path: config.jobs.path, queue: config.jobs.queue });
    this.buffer = queueProducer({ path: config.jobs.path, queue: config.jobs.buffer });
    this.limiter = new HostLimiter(config.checks.perHost, config.checks.concurrency);
  }

  async init(): Promise<this> {
    await this.storage.init();
    return this;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.jobs.close();
    await this.buffer.close();
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
    const res = await this.jobs.send(jobs.map((j) => ({ value: JSON.stringify(j), key: `${j.kind}:${j.serviceId}` })));
    const failed = res.find((r) => !r.ok);
    if (failed && !failed.ok) throw failed.error;
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
    const [r] = await this.buffer.send([{ value: JSON.stringify(u), key: u.kind }]);
    if (r && !r.ok) throw r.error;
  }

  /** Queue depths of the job channel and the buffer (ready, in flight, dead). */
  stats() {
    return { jobs: queueStats(this.config.jobs.path, this.config.jobs.queue), buffer: queueStats(this.config.jobs.path, this.config.jobs.buffer) };
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
    const jobsC: ManagedConsumer<QueueConsumer> | undefined =
      opts.jobs === false ? undefined : queueConsumer({ path: this.config.jobs.path, queue: this.config.jobs.queue, maxReceives: this.config.jobs.maxReceives, visibilityTimeoutMs: 120_000 });
    const bufC: ManagedConsumer<QueueConsumer> | undefined =
      opts.indexer === false ? undefined : queueConsumer({ path: this.config.jobs.path, queue: this.config.jobs.buffer, maxReceives: this.config.jobs.maxReceives, visibilityTimeoutMs: 120_000 });
    const waitMs = opts.untilIdle ? 200 : 1000;
    const stop = () => opts.signal?.aborted === true;
    let idleJobs = !jobsC;
    let idleBuf = !bufC;
    const jobLoop = async () => {
      if (!jobsC) return;
      while (!stop()) {
        const recs = await jobsC.receive(opts.concurrency ?? 4, { waitMs, ...(opts.signal ? { signal: opts.signal } : {}) });
        if (!recs.length) {
          idleJobs = true;
          if (opts.untilIdle && idleBuf) return;
          continue;
        }
        idleJobs = false;
        await Promise.all(recs.map((r) => this.runJob(jobsC, r).then(() => void counts.jobs++)));
      }
    };
    const bufLoop = async () => {
      if (!bufC) return;
      while (!stop()) {
        const recs = await bufC.receive(100, { waitMs, ...(opts.signal ? { signal: opts.signal } : {}) });
        if (!recs.length) {
          idleBuf = true;
          if (opts.untilIdle && idleJobs) return;
          continue;
        }
        idleBuf = false;
        for (const r of recs) {
          try {
            await this.apply(JSON.parse(String(r.value)) as IndexUpdate);
            await bufC.ack([r]);
            counts.updates++;
          } catch (err) {
            this.log.warn("index update failed", { backend: "registry", error: reasonOf(err) });
            await bufC.nack([r], { requeue: true, reason: reasonOf(err) });
          }
        }
      }
    };
    try {
      await Promise.all([jobLoop(), bufLoop()]);
    } finally {
      await jobsC?.close();
      await bufC?.close();
    }
    return counts;
  }

  private async runJob(c: QueueConsumer, r: InRecord): Promise<void> {
    let job: Job;
    try {
      job = JSON.parse(String(r.value)) as Job;
    } catch (err) {
      await c.nack([r], { requeue: false, reason: `not a job: ${reasonOf(err)}` });
      return;
    }
    try {
      const update = job.kind === "harvest" ? await this.harvestUpdate(job.serviceId) : await this.checkUpdate(job.serviceId);
      await this.bufferUpdate(update);
      await c.ack([r]);
    } catch (err) {
      const gone = err instanceof GeoWatchError && err.code === "NOT_FOUND";
      this.log.warn("job failed", { backend: "registry", job: job.kind, serviceId: job.serviceId, error: reasonOf(err) });
      await c.nack([r], { requeue: !gone, reason: reasonOf(err) });
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
