/**
 * A worker: takes jobs from a GeoWatch queue (@geowatch/queue leases), builds the ZIP (or reuses the cached
 * one), mails the link, and acknowledges only then. A worker that dies mid-job stops extending its lease,
 * so the job comes back to another worker after the visibility timeout (at-least-once; the ZIP of a retried
 * job is rebuilt from the start and only ever renamed into place whole).
 */
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { isGeoWatchError, reasonOf } from "@geowatch/core";
import type { InRecord } from "@geowatch/core";
import { queueConsumer } from "@geowatch/queue";
import type { QueueConsumer } from "@geowatch/queue";
import { buildZip, cacheKey } from "./jobs.js";
import type { JobMessage } from "./jobs.js";
import type { Mailer } from "./mail.js";
import { QUEUES } from "./service.js";
import type { PackagerService, QueueName } from "./service.js";

export interface WorkerOptions {
  queue: QueueName;
  mailer: Mailer;
  signal: AbortSignal;
  /** Stop after this many jobs (tests, `worker --once`). */
  maxJobs?: number;
}

export async function runWorker(svc: PackagerService, o: WorkerOptions): Promise<number> {
  const { config, db } = svc;
  const id = `${o.queue}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const consumer: QueueConsumer = queueConsumer({
    path: config.queuePath,
    queue: QUEUES[o.queue],
    visibilityTimeoutMs: config.visibilityTimeoutMs,
    maxReceives: config.maxAttempts,
    maxLeased: 1,
    pollIntervalMs: 200,
    retryDelayMs: 2000,
  });
  await removeStaleParts(config.tempDirectory);
  db.heartbeat(id, o.queue);
  const beat = setInterval(() => db.heartbeat(id, o.queue), 5000);
  beat.unref();
  let jobs = 0;
  try {
    while (!o.signal.aborted && (o.maxJobs === undefined || jobs < o.maxJobs)) {
      const records = await consumer.receive(1, { waitMs: 1000, signal: o.signal });
      for (const record of records) {
        await handle(svc, consumer, record, o);
        jobs++;
      }
    }
  } finally {
    clearInterval(beat);
    db.heartbeat(id, o.queue, true);
    await consumer.close();
  }
  return jobs;
}

/** Temp files of workers that died mid-job (their pid is in the name and no longer runs). */
async function removeStaleParts(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    const pid = /-(\d+)-\d+(?:-multimedia\.txt|\.gpkg)$|\.(\d+)\.\d+\.part$/.exec(n);
    const p = Number(pid?.[1] ?? pid?.[2]);
    if (!pid || p === process.pid || alive(p)) continue;
    await rm(join(dir, n), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function handle(svc: PackagerService, consumer: QueueConsumer, record: InRecord, o: WorkerOptions): Promise<void> {
  const { config, db, logger } = svc;
  let job: JobMessage;
  try {
    job = JSON.parse(typeof record.value === "string" ? record.value : Buffer.from(record.value as Uint8Array).toString("utf8")) as JobMessage;
  } catch (err) {
    await consumer.nack([record], { requeue: false, reason: `not a job message: ${reasonOf(err)}` });
    return;
  }
  const attempt = (record.redeliveries ?? 0) + 1;
  db.startJob(job.id);
  logger.info("job started", { job: job.id, queue: o.queue, attempt, resource_id: job.data.resourceId });
  try {
    const key = cacheKey(job.data);
    let name = db.cached(key, config.cacheTime);
    if (name && !existsSync(join(config.storeDirectory, name))) {
      db.dropCache(key);
      name = undefined;
    }
    if (name) {
      logger.info("cached ZIP reused", { job: job.id, zip: name });
    } else {
      let last = 0;
      name = await buildZip(job, {
        config,
        policy: svc.policy,
        signal: o.signal,
        onProgress: (done, total) => {
          const now = Date.now();
          if (now - last >= 250 || (total !== null && done >= total)) {
            last = now;
            db.progress(job.id, done, total);
          }
        },
        onPaging: (style) => logger.debug("datastore paging", { job: job.id, style }),
      });
      db.putCache(key, name);
    }
    const link = svc.link(name);
    await o.mailer.send(job.email, {
      resource_id: job.data.resourceId,
      zip_file_name: name,
      ckan_host: job.ckanHost,
      link: link.url,
      expires: new Date(link.expires * 1000).toISOString(),
    });
    db.finishJob(job.id, name);
    await consumer.ack([record]);
    logger.info("job done", { job: job.id, zip: name });
  } catch (err) {
    // Network trouble and CKAN 5xx are retried; a refused URL, a bad query or a writer error is final.
    const retryable = isGeoWatchError(err) && err.retryable;
    const final = !retryable || attempt >= config.maxAttempts;
    const reason = reasonOf(err);
    if (o.signal.aborted) {
      // Shutting down: hand the job back for another worker.
      await consumer.nack([record], { requeue: true, reason: "worker stopped" });
      db.failJob(job.id, "worker stopped; retried", false);
      return;
    }
    db.failJob(job.id, reason, final);
    if (final) db.logError(job.data.resourceId, job.email, reason);
    logger.warn(final ? "job failed" : "job failed; retried", { job: job.id, attempt, error: reason });
    await consumer.nack([record], { requeue: !final, reason });
  }
}
