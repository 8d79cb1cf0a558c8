/**
 * A worker: takes jobs from its queue's GeoWatch channel (@geowatch/queue leases, a Kafka consumer group, a
 * RabbitMQ or SQS queue), builds the ZIP (or reuses the cached one), mails the link, and acknowledges only then
 * (ack, or the committed Kafka offset). A worker that dies mid-job acknowledges nothing, so the job comes back
 * to another worker (lease or visibility timeout, RabbitMQ's redelivery, the group's rebalance): at-least-once;
 * the ZIP of a retried job is rebuilt from the start and only ever renamed into place whole.
 *
 * Attempts are counted in the packager's state (node:sqlite or PostgreSQL), whatever the job channel: a job delivered more than
 * `max_attempts` times (its workers kept dying, or it kept failing) ends `failed` with the reason.
 */
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { isGeoWatchError, reasonOf } from "@geowatch/core";
import type { InRecord } from "@geowatch/core";
import { openReceiver, openSender } from "./channel.js";
import type { JobReceiver, JobSender } from "./channel.js";
import { buildZip, cacheKey } from "./jobs.js";
import type { JobMessage } from "./jobs.js";
import type { Mailer } from "./mail.js";
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
  const channel = await openReceiver(config, o.queue, { logger: svc.logger });
  await removeStaleParts(config.tempDirectory);
  await db.heartbeat(id, o.queue);
  const beat = setInterval(() => {
    db.heartbeat(id, o.queue).catch((err: unknown) => svc.logger.warn("heartbeat failed", { queue: o.queue, error: reasonOf(err) }));
  }, 5000);
  beat.unref();
  let jobs = 0;
  try {
    while (!o.signal.aborted && (o.maxJobs === undefined || jobs < o.maxJobs)) {
      const records = await channel.consumer.receive(1, { waitMs: 1000, signal: o.signal });
      for (const record of records) {
        await handle(svc, channel, record, o);
        jobs++;
      }
    }
  } finally {
    clearInterval(beat);
    await db.heartbeat(id, o.queue, true).catch((err: unknown) => svc.logger.warn("heartbeat failed", { queue: o.queue, error: reasonOf(err) }));
    await channel.close();
    await retrySender?.then((s) => s.close()).catch(() => undefined);
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

let retrySender: Promise<JobSender> | undefined;

/** Gives a job back for another attempt: nack with requeue where the channel has it, else sent again and acknowledged (Kafka). */
async function retry(svc: PackagerService, channel: JobReceiver, record: InRecord, job: JobMessage, queue: QueueName, reason: string): Promise<void> {
  if (channel.consumer.nack) {
    await channel.consumer.nack([record], { requeue: true, reason });
    return;
  }
  retrySender ??= openSender(svc.config, queue, { logger: svc.logger });
  await (await retrySender).send(job, job.id);
  await channel.settle(record);
}

/** Drops a job for good (its final state is already in the job table): nack without requeue where there is one, else acknowledged. */
async function drop(channel: JobReceiver, record: InRecord, reason: string): Promise<void> {
  if (channel.consumer.nack) await channel.consumer.nack([record], { requeue: false, reason });
  else await channel.settle(record);
}

async function handle(svc: PackagerService, channel: JobReceiver, record: InRecord, o: WorkerOptions): Promise<void> {
  const { config, db, logger } = svc;
  let job: JobMessage;
  try {
    job = channel.decode(record) as JobMessage;
    if (!job || typeof job.id !== "string" || !job.data) throw new Error("no job id or data");
  } catch (err) {
    logger.warn("not a job message; dropped", { queue: o.queue, error: reasonOf(err) });
    await drop(channel, record, `not a job message: ${reasonOf(err)}`);
    return;
  }
  const before = await db.job(job.id);
  if (before && (before.state === "done" || before.state === "failed")) {
    // Delivered again after it was settled (at-least-once): nothing to do.
    await channel.settle(record);
    return;
  }
  const attempt = Math.max(await db.startJob(job.id), (record.redeliveries ?? 0) + 1);
  if (attempt > config.maxAttempts) {
    // The channel delivered it again after max_attempts: its workers kept dying (lease expiry) or it kept failing.
    const reason = `gave up after ${config.maxAttempts} attempts: ${before?.error ?? "the worker was lost mid-job each time (lease or visibility expired)"}`;
    await db.failJob(job.id, reason, true);
    await db.logError(job.data.resourceId, job.email, reason);
    logger.warn("job failed", { job: job.id, attempt, error: reason });
    await drop(channel, record, reason);
    return;
  }
  logger.info("job started", { job: job.id, queue: o.queue, attempt, resource_id: job.data.resourceId });
  let progress: Promise<void> = Promise.resolve();
  try {
    const key = cacheKey(job.data);
    let name = await db.cached(key, config.cacheTime);
    if (name && !existsSync(join(config.storeDirectory, name))) {
      await db.dropCache(key);
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
            // Written in order, off the page loop; awaited before the job's end is recorded.
            progress = progress.then(() => db.progress(job.id, done, total)).catch((err: unknown) => logger.warn("progress not recorded", { job: job.id, error: reasonOf(err) }));
          }
        },
        onPaging: (style) => logger.debug("datastore paging", { job: job.id, style }),
      });
      await progress;
      await db.putCache(key, name);
    }
    const link = svc.link(name);
    await o.mailer.send(job.email, {
      resource_id: job.data.resourceId,
      zip_file_name: name,
      ckan_host: job.ckanHost,
      link: link.url,
      expires: new Date(link.expires * 1000).toISOString(),
    });
    await db.finishJob(job.id, name);
    await channel.settle(record);
    logger.info("job done", { job: job.id, zip: name });
  } catch (err) {
    // Network trouble and CKAN 5xx are retried; a refused URL, a bad query or a writer error is final.
    const retryable = isGeoWatchError(err) && err.retryable;
    const final = !retryable || attempt >= config.maxAttempts;
    const reason = reasonOf(err);
    if (o.signal.aborted) {
      // Shutting down: hand the job back for another worker.
      await progress;
      await db.failJob(job.id, "worker stopped; retried", false);
      await db.unstartJob(job.id);
      await retry(svc, channel, record, job, o.queue, "worker stopped");
      return;
    }
    await progress;
    await db.failJob(job.id, reason, final);
    if (final) await db.logError(job.data.resourceId, job.email, reason);
    logger.warn(final ? "job failed" : "job failed; retried", { job: job.id, attempt, error: reason });
    if (final) await drop(channel, record, reason);
    else await retry(svc, channel, record, job, o.queue, reason);
  }
}
