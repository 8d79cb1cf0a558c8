/** `serve`: the HTTP service plus the in-process workers the config asks for; and a lone worker process. */
import { Worker } from "node:worker_threads";
import type { Logger } from "@geowatch/core";
import type { PackagerConfig } from "./config.js";
import { buildServer } from "./server.js";
import { openSource } from "./sources/store.js";
import { PackagerService } from "./service.js";
import type { QueueName } from "./service.js";
import type { ThreadData } from "./thread.js";

export interface RunningPackager {
  /** The address it listens on: http://host:port. */
  url: string;
  service: PackagerService;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
}

// The built thread entry; from src/ (tests) and from dist/ alike this is <package>/dist/thread.js.
const THREAD = new URL("../dist/thread.js", import.meta.url);

interface WorkerThread {
  /** Resolves with the number of jobs done when the thread ends. */
  done: Promise<number>;
  stop(): void;
}

/** Runs workers for `queues` in a worker thread whose heap is bounded by `workerMemoryMb`. */
function workerThread(config: PackagerConfig, queues: QueueName[], maxJobs?: number): WorkerThread {
  const data: ThreadData = { config, queues, maxJobs };
  const young = Math.max(4, Math.min(16, Math.floor(config.workerMemoryMb / 8)));
  const t = new Worker(THREAD, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: young, maxOldGenerationSizeMb: config.workerMemoryMb - young } });
  let jobs = 0;
  t.on("message", (m: { jobs?: number }) => {
    if (typeof m.jobs === "number") jobs = m.jobs;
  });
  const done = new Promise<number>((resolve, reject) => {
    t.once("error", reject);
    t.once("exit", (code) => (code === 0 ? resolve(jobs) : reject(new Error(`worker thread exited with code ${code}`))));
  });
  return { done, stop: () => t.postMessage("stop") };
}

export async function startPackager(config: PackagerConfig, opts: StartOptions = {}): Promise<RunningPackager> {
  const service = new PackagerService(config, { logger: opts.logger });
  try {
    // The state database answers (PostgreSQL: connected, schema created), or the start fails with the reason.
    await service.db.ready();
    // The job channels are resolved and validated now (a missing backend package, an unknown option: a CONFIG
    // error with its jobs.* path at start, not at the first request). Nothing connects yet.
    await Promise.all([service.sender("fast"), service.sender("slow")]);
    // So are the sources (sources.<name>.*): resolved, validated and closed again.
    for (const name of Object.keys(config.sources)) await (await openSource(config, name, { logger: service.logger })).store.close();
  } catch (err) {
    await service.close();
    throw err;
  }
  const app = await buildServer(service);
  await app.listen({ host: config.host, port: config.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  // Port 0 picks a free port: the default link base must name the real one.
  if (config.publicUrl.endsWith(":0")) config.publicUrl = `${config.publicUrl.slice(0, -2)}:${port}`;
  const queues: QueueName[] = [...Array<QueueName>(config.workers.fast).fill("fast"), ...Array<QueueName>(config.workers.slow).fill("slow")];
  let stopping = false;
  let current: WorkerThread | undefined;
  let running: Promise<void> = Promise.resolve();
  // A thread that dies (out of memory, a bug) is started again; its jobs come back through their leases.
  const launch = (): Promise<void> => {
    current = workerThread(config, queues);
    return current.done.then(
      () => undefined,
      async (err: unknown) => {
        if (stopping) return;
        service.logger.error("worker thread failed; starting it again in 2 s", { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 2000));
        if (!stopping) return launch();
      },
    );
  };
  if (queues.length > 0) running = launch();
  // Jobs the channel dead-letters (after repeated lease expiry) end `failed` with the reason.
  const watch = new AbortController();
  const watching = service.watchDeadLetters(watch.signal).catch((err: unknown) => service.logger.error("dead-letter watch stopped", { error: (err as Error).message }));
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  service.logger.info("packager listening", { url: `http://${host}:${port}`, workers: config.workers });
  return {
    url: `http://${host}:${port}`,
    service,
    async close() {
      stopping = true;
      current?.stop();
      watch.abort();
      await app.close();
      await running;
      await watching;
      await service.close();
    },
  };
}

/** `worker --queue Q`: one worker (in a bounded thread) on a queue until `signal` aborts or `maxJobs` are done. */
export async function startWorker(config: PackagerConfig, queue: QueueName, signal: AbortSignal, opts: { maxJobs?: number } = {}): Promise<number> {
  const t = workerThread(config, [queue], opts.maxJobs);
  const onAbort = () => t.stop();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await t.done;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
