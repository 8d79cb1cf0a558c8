/**
 * geowatch-packager: runs the service and workers, and talks to a running service like ckanpackager's CLI
 * (status, cc/clear-cache, queue TASK PARAM:VALUE..., stats), with a defaults file and a progress bar.
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isGeoWatchError } from "@geowatch/core";
import { startPackager, startWorker } from "./app.js";
import { readConfigFile, resolveConfig } from "./config.js";
import type { PackagerConfig } from "./config.js";

const VERSION = "0.0.0";
const DEFAULTS_FILES = ["/etc/geowatch-packager/cli.json", "/etc/ckanpackager/ckanpackager-cli.json"];

const HELP = `geowatch-packager: package CKAN data into ZIP files on GeoWatch's job queue and email a link.

Usage: geowatch-packager serve [-c CONFIG]
       geowatch-packager worker --queue fast|slow [-c CONFIG] [--once]
       geowatch-packager [options] status
       geowatch-packager [options] (cc|clear-cache)
       geowatch-packager [options] queue TASK [PARAM:VALUE ...] [--wait]
       geowatch-packager [options] job JOB_ID [--wait]
       geowatch-packager [options] stats [requests|errors] [PARAM:VALUE ...]

TASK is package_datastore, package_url or package_dwc_archive (or datastore, url, dwc_archive).

Options:
    -h --help       Show this screen.
    --version       Show version.
    -q              Quiet. Don't output anything (the exit code tells).
    -p HOST         The packager's URL [default: http://127.0.0.1:8765]
    -d FILE         JSON file of default parameters (for example the secret and api_url). Without it,
                    ${DEFAULTS_FILES.join(" or ")} when present.
                    Example: {"secret": "...", "api_url": "http://.../api/3/action/datastore_search"}
    -s SECRET       The secret; overrides the defaults file (a secret:VALUE parameter overrides this).
    -c CONFIG       serve/worker: YAML or JSON config file (or GEOWATCH_PACKAGER_CONFIG).
    --wait          queue/job: follow the job with a progress bar until it is done (exit 1 if it failed).

Exit codes: 0 done, 1 the request or job failed, 2 usage or config error.`;

type Out = { log(s: string): void; err(s: string): void; progress(s: string): void };

export async function main(argv: string[], out: Out = defaultOut()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
        host: { type: "string", short: "p" },
        defaults: { type: "string", short: "d" },
        secret: { type: "string", short: "s" },
        config: { type: "string", short: "c" },
        queue: { type: "string" },
        once: { type: "boolean" },
        wait: { type: "boolean" },
      },
    });
  } catch (err) {
    out.err(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.version) return (out.log(VERSION), 0);
  const [cmd, ...rest] = positionals;
  if (v.help || !cmd) return (out.log(HELP), v.help ? 0 : 2);
  const say = v.quiet ? () => undefined : out.log;
  try {
    switch (cmd) {
      case "serve":
        return await serve(loadConfig(v.config), say);
      case "worker": {
        if (v.queue !== "fast" && v.queue !== "slow") return (out.err("worker needs --queue fast or --queue slow"), 2);
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        const n = await startWorker(loadConfig(v.config), v.queue, stop.signal, { maxJobs: v.once ? 1 : undefined });
        say(`worker stopped after ${n} job(s)`);
        return 0;
      }
    }
    const client = new Client(v.host ?? "http://127.0.0.1:8765", defaults(v.defaults, v.secret));
    switch (cmd) {
      case "status":
        return show(await client.call("/status", {}), say);
      case "cc":
      case "clear-cache":
        return show(await client.call("/clear_caches", {}), say);
      case "queue": {
        const [task, ...params] = rest;
        if (!task) return (out.err("queue needs a TASK\n\n" + HELP), 2);
        const endpoint = `/${task.startsWith("package_") ? task : `package_${task}`}`;
        if (!["/package_datastore", "/package_url", "/package_dwc_archive"].includes(endpoint)) return (out.err(`unknown task "${task}"`), 2);
        const res = await client.call(endpoint, pairs(params));
        const code = show(res, say);
        if (code !== 0 || !v.wait) return code;
        return await follow(client, String(res.body.job_id), v.quiet ? () => undefined : out.progress, say);
      }
      case "job": {
        const [id] = rest;
        if (!id) return (out.err("job needs a JOB_ID"), 2);
        if (v.wait) return await follow(client, id, v.quiet ? () => undefined : out.progress, say);
        return show(await client.call("/job_status", { job_id: id }), say);
      }
      case "stats": {
        const kind = rest[0] === "requests" || rest[0] === "errors" ? rest.shift() : undefined;
        return show(await client.call(kind ? `/statistics/${kind}` : "/statistics", pairs(rest)), say);
      }
      default:
        out.err(`unknown command "${cmd}"\n\n${HELP}`);
        return 2;
    }
  } catch (err) {
    out.err(`[geowatch-packager] ${(err as Error).message}`);
    return isGeoWatchError(err, "CONFIG") || err instanceof UsageError ? 2 : 1;
  }
}

class UsageError extends Error {}

function defaultOut(): Out {
  return {
    log: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    progress: (s) => process.stderr.write(process.stderr.isTTY ? `\r${s}` : `${s}\n`),
  };
}

function loadConfig(path: string | undefined): PackagerConfig {
  const file = path ?? process.env.GEOWATCH_PACKAGER_CONFIG;
  return resolveConfig(file ? readConfigFile(file) : {});
}

async function serve(config: PackagerConfig, say: (s: string) => void): Promise<number> {
  const running = await startPackager(config);
  say(`geowatch-packager listening on ${running.url} (workers: fast ${config.workers.fast}, slow ${config.workers.slow})`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await running.close();
  return 0;
}

/** PARAM:VALUE pairs (the first colon splits: URLs keep theirs). */
function pairs(params: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of params) {
    const i = p.indexOf(":");
    if (i <= 0) throw new UsageError(`"${p}" is not PARAM:VALUE`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

function defaults(file: string | undefined, secret: string | undefined): Record<string, unknown> {
  const path = file ?? DEFAULTS_FILES.find((f) => existsSync(f));
  let d: Record<string, unknown> = {};
  if (path) {
    try {
      d = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`cannot read the defaults file ${path}: ${(err as Error).message}`);
    }
  }
  if (secret !== undefined) d.secret = secret;
  return d;
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

class Client {
  constructor(
    private readonly base: string,
    private readonly defaults: Record<string, unknown>,
  ) {}

  async call(path: string, params: Record<string, unknown>): Promise<Reply> {
    const res = await fetch(new URL(path, this.base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...this.defaults, ...params }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { success: false, msg: `HTTP ${res.status}: ${text.slice(0, 200)}` };
    }
    return { status: res.status, body };
  }
}

function show(r: Reply, say: (s: string) => void): number {
  say(JSON.stringify(r.body, null, 2));
  return r.body.success === true ? 0 : 1;
}

export function progressBar(done: number, total: number | null, unit: string, state: string, width = 30): string {
  if (total === null || total <= 0) return `[${"?".repeat(width)}] ${done} ${unit} ${state}`;
  const frac = Math.min(1, done / total);
  const fill = Math.round(frac * width);
  return `[${"#".repeat(fill)}${"-".repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${total} ${unit} ${state}`;
}

async function follow(client: Client, id: string, progress: (s: string) => void, say: (s: string) => void): Promise<number> {
  for (;;) {
    const r = await client.call("/job_status", { job_id: id });
    if (r.body.success !== true) return show(r, say);
    const job = r.body.job as { state: string; done: number; total: number | null; unit: string; zip_file_name: string | null; error: string | null };
    progress(progressBar(job.done, job.total, job.unit, job.state));
    if (job.state === "done") {
      say(`\ndone: ${job.zip_file_name}`);
      return 0;
    }
    if (job.state === "failed") {
      say(`\nfailed: ${job.error}`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
