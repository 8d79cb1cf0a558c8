/**
 * The worker thread: runs the workers of one or more queues in their own V8 isolate, whose heap the parent
 * bounds (`worker_memory_mb`), so a job's garbage (pages of JSON, CSV text) cannot grow the process's memory
 * with the size of the job. It shares nothing with the parent but the databases (the queue file, the state: node:sqlite or PostgreSQL).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { PackagerConfig } from "./config.js";
import { Mailer } from "./mail.js";
import { PackagerService } from "./service.js";
import type { QueueName } from "./service.js";
import { runWorker } from "./worker.js";

export interface ThreadData {
  config: PackagerConfig;
  queues: QueueName[];
  maxJobs?: number;
}

const data = workerData as ThreadData;
const stop = new AbortController();
parentPort!.on("message", (m: unknown) => {
  if (m === "stop") stop.abort();
});
const service = new PackagerService(data.config);
const mailer = new Mailer(data.config);
try {
  const counts = await Promise.all(data.queues.map((queue) => runWorker(service, { queue, mailer, signal: stop.signal, maxJobs: data.maxJobs })));
  parentPort!.postMessage({ jobs: counts.reduce((a, b) => a + b, 0) });
} finally {
  await mailer.close();
  await service.close();
  // Pooled SMTP sockets and timers of the libraries may linger: the thread is done, end it.
  setImmediate(() => process.exit(0));
}
