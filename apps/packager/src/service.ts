/**
 * What the HTTP layer and the CLI share: accepting a job (count its rows, pick the fast or slow queue, put it on
 * the GeoWatch queue), the status counters, statistics, the cache and signed download links. The long work
 * is never done here: workers (worker.ts) take the jobs from the queue.
 */
import { createHmac, randomUUID, timingSafeEqual, createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { GeoWatchError, checkUrl, jsonLogger, urlPolicy } from "@geowatch/core";
import type { Logger, UrlPolicy } from "@geowatch/core";
import { openQueueDatabase, queueStats } from "@geowatch/queue";
import type { QueueDatabase, QueueStats } from "@geowatch/queue";
import { QUEUES, deadLetterNodes, deadReason, openDeadLetters, openSender } from "./channel.js";
import type { Importer, JobSender, QueueName } from "./channel.js";
import type { PackagerConfig } from "./config.js";
import { openState } from "./db.js";
import type { PackagerDb } from "./db.js";
import { cacheKey } from "./jobs.js";
import type { JobData, JobMessage } from "./jobs.js";
import { countRows } from "./sources/datastore.js";

export { QUEUES };
export type { QueueName };

const digest = (s: string) => createHash("sha256").update(s).digest();

export class PackagerService {
  readonly db: PackagerDb;
  readonly policy: UrlPolicy;
  readonly logger: Logger;
  private readonly senders = new Map<QueueName, Promise<JobSender>>();
  private readonly importer: Importer | undefined;
  private readonly secretDigest: Buffer;
  private statusCache: { at: number; value: Record<string, unknown>; json?: string } | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  // Held open so queueStats reuses one connection instead of opening the file (and waiting on locks) per call.
  private readonly queueDb: QueueDatabase | undefined;

  constructor(
    readonly config: PackagerConfig,
    opts: { logger?: Logger; importer?: Importer } = {},
  ) {
    this.db = openState(config.state);
    this.policy = urlPolicy({ allowHosts: config.allowHosts, allowPrivate: config.allowPrivate });
    this.logger = opts.logger ?? jsonLogger({ level: config.logLevel });
    // Queue depths come from @geowatch/queue's file when both queues are on it; otherwise from the job table.
    this.queueDb = this.onLocalQueue() ? openQueueDatabase(config.queuePath) : undefined;
    this.importer = opts.importer;
    this.secretDigest = digest(config.secret);
  }

  /** Constant-time comparison over equal-length digests; the secret itself is never logged. */
  checkSecret(given: unknown): boolean {
    if (typeof given !== "string" || given === "") return false;
    return timingSafeEqual(digest(given), this.secretDigest);
  }

  /**
   * Queues a job: a cached ZIP or a small count goes to the fast queue, a large or unknown count to the slow one.
   * Returns the job id and queue. Recorded in the request statistics.
   */
  async enqueue(data: JobData, email: string, key: string | undefined): Promise<{ id: string; queue: QueueName; rows: number | null; cached: boolean }> {
    if (data.kind === "source") {
      if (!data.source || !Object.hasOwn(this.config.sources, data.source)) {
        throw new GeoWatchError("VALIDATE", `unknown source "${data.source}" (configured: ${Object.keys(this.config.sources).join(", ") || "none"})`);
      }
    } else {
      // A URL the policy refuses is refused now, to the caller (redirects are checked again when fetched).
      await checkUrl((data.apiUrl ?? data.resourceUrl)!, this.policy);
    }
    const ckanHost = data.kind === "source" ? data.source! : hostOf(data.apiUrl ?? data.resourceUrl ?? "");
    let rows: number | null = null;
    const cached = (await this.cachedZip(data)) !== undefined;
    if (!cached && data.kind !== "url" && data.apiUrl) {
      try {
        rows = (await countRows({ apiUrl: data.apiUrl, resourceId: data.resourceId, filters: data.filters, q: data.q, offset: data.offset, limit: data.limit, key }, { policy: this.policy, timeoutMs: this.config.requestTimeoutMs })) ?? null;
      } catch (err) {
        // A refused URL is the caller's error; anything else leaves the count unknown (slow queue).
        if (err instanceof GeoWatchError && err.code === "URL_REFUSED") throw err;
        this.logger.warn("could not count the rows; the job goes to the slow queue", { resource_id: data.resourceId, error: (err as Error).message });
      }
    }
    const queue: QueueName = cached || (rows !== null && rows < this.config.slowRequest) ? "fast" : "slow";
    const id = randomUUID();
    const msg: JobMessage = { id, data, email, key, ckanHost };
    await this.db.addJob({ id, kind: data.kind, queue, resourceId: data.resourceId, email, rowsTotal: rows });
    await (await this.sender(queue)).send(msg, id);
    await this.db.logRequest(data.resourceId, email);
    this.invalidateStatus();
    this.logger.info("job queued", { job: id, queue, kind: data.kind, resource_id: data.resourceId, rows });
    return { id, queue, rows, cached };
  }

  /** The cached ZIP of these data parameters, if younger than CACHE_TIME. */
  cachedZip(data: JobData): Promise<string | undefined> {
    return this.db.cached(cacheKey(data), this.config.cacheTime);
  }

  /** The producer end of a queue, opened (and its destination created) on first use. */
  sender(queue: QueueName): Promise<JobSender> {
    let s = this.senders.get(queue);
    if (!s) {
      s = openSender(this.config, queue, { logger: this.logger, ...(this.importer ? { importer: this.importer } : {}) });
      // A failed open (a missing package, a bad option) is reported to this caller and tried again by the next.
      s.catch(() => this.senders.delete(queue));
      this.senders.set(queue, s);
    }
    return s;
  }

  /**
   * Reads the dead-letter destinations until `signal` aborts: a job the channel gave up on (dead-lettered after
   * repeated lease expiry, say) ends `failed` with the reason instead of staying `running`. Returns when stopped.
   */
  async watchDeadLetters(signal: AbortSignal): Promise<void> {
    const nodes = deadLetterNodes(this.config);
    await Promise.all(
      nodes.map(async (node, i) => {
        const ch = await openDeadLetters(node, i, { logger: this.logger, ...(this.importer ? { importer: this.importer } : {}) });
        try {
          while (!signal.aborted) {
            let records;
            try {
              records = await ch.consumer.receive(10, { waitMs: 1000, signal });
            } catch (err) {
              if (signal.aborted) break;
              this.logger.warn("dead-letter read failed; retrying", { node: `jobs.dead_letters[${i}]`, error: (err as Error).message });
              await new Promise((r) => setTimeout(r, 2000).unref());
              continue;
            }
            for (const r of records) {
              let job: { id?: unknown; data?: { resourceId?: unknown }; email?: unknown } | undefined;
              try {
                job = ch.decode(r) as typeof job;
              } catch {
                job = undefined;
              }
              const id = typeof job?.id === "string" ? job.id : undefined;
              const row = id ? await this.db.job(id) : undefined;
              if (row && row.state !== "done" && row.state !== "failed") {
                const reason = `dead-lettered after ${row.attempts} attempt(s): ${deadReason(r)}${row.error ? ` (last error: ${row.error})` : ""}`;
                await this.db.failJob(row.id, reason, true);
                await this.db.logError(row.resourceId, typeof job?.email === "string" ? job.email : "", reason);
                this.invalidateStatus();
                this.logger.warn("job failed", { job: row.id, error: reason });
              }
              await ch.settle(r);
            }
          }
        } finally {
          await ch.close();
        }
      }),
    );
  }

  /** Both queues on the default @geowatch/queue file. */
  onLocalQueue(): boolean {
    return !this.config.jobs.fast && !this.config.jobs.slow;
  }

  queueStats(): Record<QueueName, QueueStats> {
    return { fast: queueStats(this.config.queuePath, QUEUES.fast), slow: queueStats(this.config.queuePath, QUEUES.slow) };
  }

  /**
   * The /status answer: a snapshot refreshed every 200 ms by a timer, off the request path (a monitoring endpoint
   * polled at 1,000 requests/s must not run database queries, or wait on them, inside a request); accepting a
   * job or clearing the cache drops it, and the next call recomputes it.
   */
  async status(): Promise<Record<string, unknown>> {
    return (await this.snapshot()).value;
  }

  /** The /status reply body, serialized once per snapshot (`wrap` adds the reply's own fields). */
  async statusReply(wrap: (v: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
    const snap = await this.snapshot();
    return (snap.json ??= JSON.stringify(wrap(snap.value)));
  }

  /** Bumped by every change /status must show at once (a job queued, failed by a dead letter, the cache cleared). */
  private statusGen = 0;
  private refreshing: { gen: number; done: Promise<void> } | undefined;

  /** Drops the snapshot: the next /status computes one that starts after this change. */
  private invalidateStatus(): void {
    this.statusGen++;
    this.statusCache = undefined;
  }

  /**
   * Recomputes the snapshot; concurrent callers share one computation. A computation that started before an
   * invalidation neither serves nor stores its (older) value: the caller after the change gets a new one.
   */
  private refresh(): Promise<void> {
    const gen = this.statusGen;
    if (this.refreshing?.gen === gen) return this.refreshing.done;
    const done: Promise<void> = this.computeStatus()
      .then((value) => {
        if (gen === this.statusGen) this.statusCache = { at: Date.now(), value };
      })
      .finally(() => {
        if (this.refreshing?.done === done) this.refreshing = undefined;
      });
    this.refreshing = { gen, done };
    return done;
  }

  private async snapshot(): Promise<{ at: number; value: Record<string, unknown>; json?: string }> {
    if (!this.statusTimer) {
      this.statusTimer = setInterval(() => {
        // The last snapshot stays when this fails; the next tick tries again.
        this.refresh().catch((err: unknown) => this.logger.warn("status snapshot failed", { error: (err as Error).message }));
      }, 200);
      this.statusTimer.unref();
    }
    // Invalidated again while it computed (jobs queued meanwhile): try again, then answer with a fresh computation.
    for (let i = 0; i < 3 && (!this.statusCache || Date.now() - this.statusCache.at > 2000); i++) await this.refresh();
    return this.statusCache ?? { at: Date.now(), value: await this.computeStatus() };
  }

  private async computeStatus(): Promise<Record<string, unknown>> {
    if (!this.onLocalQueue()) return this.statusFromJobs();
    const qs = this.queueStats();
    const workers = await this.db.liveWorkers(15);
    const depth = (s: QueueStats) => s.ready + s.inFlight + s.delayed;
    return {
      worker_count: (workers.fast ?? 0) + (workers.slow ?? 0),
      queue_length: depth(qs.fast) + depth(qs.slow),
      processed_requests: await this.db.counter("processed_requests"),
      queues: Object.fromEntries(
        (Object.keys(qs) as QueueName[]).map((q) => [q, { workers: workers[q] ?? 0, length: depth(qs[q]), ready: qs[q].ready, in_flight: qs[q].inFlight, delayed: qs[q].delayed, dead: qs[q].dead }]),
      ),
    };
  }

  /** /status when the jobs travel on Kafka, RabbitMQ or SQS: depths from the job table (queued and running jobs). */
  private async statusFromJobs(): Promise<Record<string, unknown>> {
    const workers = await this.db.liveWorkers(15);
    const open = await this.db.openJobs();
    const count = (q: string, state?: string) => open.filter((r) => r.queue === q && (state === undefined || r.state === state)).reduce((a, r) => a + Number(r.n), 0);
    const queues = Object.fromEntries(
      (Object.keys(QUEUES) as QueueName[]).map((q) => [q, { workers: workers[q] ?? 0, length: count(q), ready: count(q, "queued"), in_flight: count(q, "running"), backend: String(this.config.jobs[q]?.backend ?? "queue") }]),
    );
    return {
      worker_count: (workers.fast ?? 0) + (workers.slow ?? 0),
      queue_length: count("fast") + count("slow"),
      processed_requests: await this.db.counter("processed_requests"),
      queues,
    };
  }

  /** Empties the cache and deletes the cached ZIPs. */
  async clearCache(): Promise<number> {
    const names = await this.db.clearCache();
    this.invalidateStatus();
    await Promise.all(names.map((n) => rm(join(this.config.storeDirectory, n), { force: true })));
    return names.length;
  }

  /** A download link for a ZIP, valid for `linkExpiry` seconds: HMAC over name and expiry with the secret. */
  link(name: string, now = Date.now()): { url: string; expires: number } {
    const expires = Math.floor(now / 1000) + this.config.linkExpiry;
    const sig = this.sign(name, expires);
    return { url: `${this.config.publicUrl}/download/${encodeURIComponent(name)}?expires=${expires}&signature=${sig}`, expires };
  }

  checkLink(name: string, expires: number, signature: string): "ok" | "expired" | "bad" {
    const want = Buffer.from(this.sign(name, expires), "hex");
    const got = Buffer.from(signature, "hex");
    if (got.length !== want.length || !timingSafeEqual(got, want)) return "bad";
    return expires * 1000 >= Date.now() ? "ok" : "expired";
  }

  private sign(name: string, expires: number): string {
    return createHmac("sha256", this.config.secret).update(`${name}\n${expires}`).digest("hex");
  }

  async close(): Promise<void> {
    if (this.statusTimer) clearInterval(this.statusTimer);
    for (const s of this.senders.values()) await s.then((x) => x.close()).catch(() => undefined);
    this.senders.clear();
    this.queueDb?.release();
    await this.db.close();
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}
