/** `serve`: the HTTP service plus the in-process workers the config asks for; and a lone worker process. */
import type { Logger } from "@geowatch/core";
import type { MailTransport } from "@geowatch/email";
import type { PackagerConfig } from "./config.js";
import { Mailer } from "./mail.js";
import { buildServer } from "./server.js";
import { PackagerService } from "./service.js";
import type { QueueName } from "./service.js";
import { runWorker } from "./worker.js";

export interface RunningPackager {
  /** The address it listens on: http://host:port. */
  url: string;
  service: PackagerService;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** An SMTP transport to use instead of one made from the config (nodemailer's fits). */
  transport?: MailTransport;
}

export async function startPackager(config: PackagerConfig, opts: StartOptions = {}): Promise<RunningPackager> {
  const service = new PackagerService(config, { logger: opts.logger });
  const mailer = new Mailer(config, opts.transport);
  const app = await buildServer(service);
  await app.listen({ host: config.host, port: config.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  // Port 0 picks a free port: the default link base must name the real one.
  if (config.publicUrl.endsWith(":0")) config.publicUrl = `${config.publicUrl.slice(0, -2)}:${port}`;
  const stop = new AbortController();
  const workers: Promise<number>[] = [];
  for (const q of ["fast", "slow"] as QueueName[]) {
    for (let i = 0; i < config.workers[q]; i++) {
      workers.push(
        runWorker(service, { queue: q, mailer, signal: stop.signal }).catch((err: unknown) => {
          service.logger.error("worker stopped by an error", { queue: q, error: (err as Error).message });
          return 0;
        }),
      );
    }
  }
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  service.logger.info("packager listening", { url: `http://${host}:${port}`, workers: config.workers });
  return {
    url: `http://${host}:${port}`,
    service,
    async close() {
      stop.abort();
      await app.close();
      await Promise.all(workers);
      await mailer.close();
      await service.close();
    },
  };
}

/** `worker --queue Q`: one worker process on a queue until `signal` aborts (or `maxJobs` are done). */
export async function startWorker(config: PackagerConfig, queue: QueueName, signal: AbortSignal, opts: StartOptions & { maxJobs?: number } = {}): Promise<number> {
  const service = new PackagerService(config, { logger: opts.logger });
  const mailer = new Mailer(config, opts.transport);
  try {
    return await runWorker(service, { queue, mailer, signal, maxJobs: opts.maxJobs });
  } finally {
    await mailer.close();
    await service.close();
  }
}
