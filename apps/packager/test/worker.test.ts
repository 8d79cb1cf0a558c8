// Separate worker processes (`geowatch-packager worker --queue slow`) and at-least-once jobs: a worker
// SIGKILLed mid-job leaves the job to another worker after the lease runs out; the ZIP is complete.
// Once per state engine. On PostgreSQL the worker processes run as on another machine would: a data_dir of their
// own (no state file shared with serve: attempts, progress and the heartbeat go to PostgreSQL); what they still
// share with serve is the ZIP store directory (the download is served from it) and, because these jobs travel
// on @geowatch/queue, its queue file (on several machines the jobs go on Kafka, RabbitMQ or SQS: engines.test.ts).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { STATE_ENGINES, createPgDatabase, ckanToken, makeResource, mailsTo, post, py, searchUrl, smtpEnv, stateFor, testConfig, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
const BIN = join(import.meta.dirname, "..", "bin", "geowatch-packager.js");
const N = 1000;
let rid = "";
let app: RunningPackager;
let configFile = "";
let workerDir = "";
let pgDb: Awaited<ReturnType<typeof createPgDatabase>> | undefined;
const children: ChildProcess[] = [];

function worker(): ChildProcess {
  const child = spawn(process.execPath, [BIN, "worker", "--queue", "slow", "-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.on("data", () => undefined);
  children.push(child);
  return child;
}

async function jobState(id: string) {
  const r = await post(app.url, "/job_status", { secret: SECRET, job_id: id });
  return r.body.job as { state: string; done: number; total: number; attempts: number; error: string | null; zip_file_name: string | null };
}

describe.each(STATE_ENGINES)("worker processes, state on %s", (engine) => {
  beforeAll(async () => {
    rid = await makeResource(N);
    pgDb = engine === "postgres" ? await createPgDatabase() : undefined;
    // No in-process workers: the jobs wait for the worker processes. Small pages make the job take seconds.
    const config = testConfig({ workers: { fast: 0, slow: 0 }, slowRequest: 1, pageSize: 10, visibilityTimeoutMs: 2000, ...stateFor(engine, pgDb?.url) });
    app = await startPackager(config);
    const s = smtpEnv();
    // sqlite: the workers share serve's data_dir (its stats.db). postgres: a data_dir of their own.
    workerDir = engine === "sqlite" ? config.dataDir : mkdtempSync(join(tmpdir(), "gw-packager-worker-"));
    configFile = join(workerDir, "packager.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        secret: SECRET,
        data_dir: workerDir,
        ...(engine === "postgres" ? { state: { engine: "postgres", url: pgDb!.url }, store_directory: config.storeDirectory, queue_path: config.queuePath } : {}),
        public_url: app.url,
        allow_hosts: ["127.0.0.1"],
        page_size: 10,
        visibility_timeout_ms: 2000,
        log_level: "warn",
        email: { host: s.host, port: s.port, user: s.user, password_file: s.passwordFile, ca: s.ca, from: "portal@example.org" },
      }),
    );
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await app?.close();
    if (app) rmSync(app.service.config.dataDir, { recursive: true, force: true });
    if (workerDir) rmSync(workerDir, { recursive: true, force: true });
    await pgDb?.drop();
  });

  it("a job whose worker is SIGKILLed mid-job is retried by another worker and finishes whole", async () => {
    const to = `kill-${Date.now()}@example.org`;
    const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, key: ckanToken() });
    expect(r.body).toMatchObject({ success: true, queue: "slow", rows: N });
    const id = String(r.body.job_id);
    expect((await post(app.url, "/status", { secret: SECRET })).body.queue_length).toBe(1);

    const a = worker();
    const mid = await waitFor("the first worker mid-job", async () => {
      const j = await jobState(id);
      return j.state === "running" && j.done > 0 && j.done < N ? j : undefined;
    });
    a.kill("SIGKILL");
    await new Promise((res) => a.once("exit", res));
    expect(mid.attempts).toBe(1);
    expect((await jobState(id)).state).toBe("running"); // nobody finished it
    expect(readdirSync(app.service.config.storeDirectory)).toEqual([]); // no half ZIP in the store

    const b = worker();
    const done = await waitFor("the job done by the second worker", async () => {
      const j = await jobState(id);
      return j.state === "done" ? j : undefined;
    }, 120_000);
    expect(done).toMatchObject({ attempts: 2, done: N, total: N });
    const mail = await waitFor("mail", () => mailsTo(to)[0]);
    const link = /https?:\/\/\S+\/download\/\S+/.exec(mail.body)![0];
    const zip = join(app.service.config.dataDir, "killed.zip");
    writeFileSync(zip, Buffer.from(await (await fetch(link)).arrayBuffer()));
    const rows = py<number>("import csv, io, json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(len(list(csv.reader(io.StringIO(z.read(z.namelist()[0]).decode(), newline='')))) - 1)", zip);
    expect(rows).toBe(N);
    // The killed worker's temp file was removed by the next worker.
    expect(readdirSync(join(workerDir, "tmp")).filter((n) => n.endsWith(".part"))).toEqual([]);
    // On PostgreSQL neither serve nor the workers wrote a state file.
    expect(existsSync(join(workerDir, "stats.db"))).toBe(engine === "sqlite");
    expect(existsSync(join(app.service.config.dataDir, "stats.db"))).toBe(engine === "sqlite");
    b.kill("SIGTERM");
    const code = await new Promise((res) => b.once("exit", (c) => res(c)));
    expect(code).toBe(0);
  }, 180_000);
});
