// A job whose workers keep dying mid-job (its lease expires again and again) ends `failed` with the reason,
// not stuck at `running`: learnt from the attempt count (the default queue node) or from the queue's
// dead-letter destination (a node whose own max_receives gives up first).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import type { PackagerConfigInput } from "../src/config.js";
import { ckanToken, makeResource, post, searchUrl, smtpEnv, testConfig, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
const BIN = join(import.meta.dirname, "..", "bin", "geowatch-packager.js");
const N = 400;
let rid = "";
const children: ChildProcess[] = [];
const apps: RunningPackager[] = [];

beforeAll(async () => {
  rid = await makeResource(N);
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const app of apps) {
    await app.close();
    rmSync(app.service.config.dataDir, { recursive: true, force: true });
  }
});

async function setup(extra: PackagerConfigInput, fileExtra: Record<string, unknown>) {
  const config = testConfig({ workers: { fast: 0, slow: 0 }, slowRequest: 1, pageSize: 10, ...extra });
  const app = await startPackager(config);
  apps.push(app);
  const s = smtpEnv();
  const file = join(config.dataDir, "packager.json");
  writeFileSync(
    file,
    JSON.stringify({
      secret: SECRET,
      data_dir: config.dataDir,
      public_url: app.url,
      allow_hosts: ["127.0.0.1"],
      page_size: 10,
      log_level: "warn",
      email: { host: s.host, port: s.port, user: s.user, password_file: s.passwordFile, ca: s.ca, from: "portal@example.org" },
      ...fileExtra,
    }),
  );
  const worker = () => {
    const child = spawn(process.execPath, [BIN, "worker", "--queue", "slow", "-c", file], { stdio: ["ignore", "ignore", "ignore"] });
    children.push(child);
    return child;
  };
  const job = async (id: string) => (await post(app.url, "/job_status", { secret: SECRET, job_id: id })).body.job as { state: string; done: number; attempts: number; error: string | null };
  const queue = async () => {
    const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: `dead-${Date.now()}@example.org`, key: ckanToken() });
    expect(r.body).toMatchObject({ success: true, queue: "slow" });
    return String(r.body.job_id);
  };
  /** Starts a worker, waits until it is mid-job on attempt `n`, SIGKILLs it. */
  const killMidJob = async (id: string, n: number) => {
    const w = worker();
    await waitFor(`attempt ${n} mid-job`, async () => {
      const j = await job(id);
      return j.state === "running" && j.attempts === n && j.done > 0 && j.done < N ? j : undefined;
    }, 60_000);
    w.kill("SIGKILL");
    await new Promise((res) => w.once("exit", res));
  };
  return { app, worker, job, queue, killMidJob };
}

describe("a job the channel gives up on", () => {
  it("ends failed with the reason once its deliveries pass max_attempts (the default queue node)", async () => {
    const t = await setup({ maxAttempts: 2, visibilityTimeoutMs: 1500 }, { max_attempts: 2, visibility_timeout_ms: 1500 });
    const id = await t.queue();
    await t.killMidJob(id, 1);
    await t.killMidJob(id, 2);
    expect((await t.job(id)).state).toBe("running"); // what it used to stay at
    const last = t.worker();
    const failed = await waitFor("failed", async () => {
      const j = await t.job(id);
      return j.state === "failed" ? j : undefined;
    }, 30_000);
    expect(failed.error).toMatch(/gave up after 2 attempts: the worker was lost mid-job/);
    expect(failed.attempts).toBe(3);
    const stats = (await post(t.app.url, "/statistics/errors", { secret: SECRET })).body;
    expect(JSON.stringify(stats)).toContain("gave up after 2 attempts");
    last.kill("SIGTERM");
    await new Promise((res) => last.once("exit", res));
  }, 120_000);

  it("ends failed with the queue's reason when the queue dead-letters it first (its own max_receives)", async () => {
    const node = (path: string) => ({ backend: "queue", path, queue: "packager.slow", visibility_timeout_ms: 1500, max_receives: 2, max_leased: 1, poll_interval_ms: 100 });
    const base = testConfig();
    const path = join(base.dataDir, "custom-jobs.db");
    const t = await setup({ jobs: { slow: node(path) }, dataDir: base.dataDir }, { jobs: { slow: node(path) } });
    const id = await t.queue();
    await t.killMidJob(id, 1);
    await t.killMidJob(id, 2);
    // The next claim finds the lease expired a second time: the queue moves the job to packager.slow.dead.
    const last = t.worker();
    const failed = await waitFor("failed", async () => {
      const j = await t.job(id);
      return j.state === "failed" ? j : undefined;
    }, 30_000);
    expect(failed.error).toMatch(/^dead-lettered after 2 attempt\(s\): .+/);
    expect(failed.attempts).toBe(2); // no worker ran it a third time
    // /status is a snapshot refreshed every 200 ms: it catches up within that.
    await expect.poll(async () => (await post(t.app.url, "/status", { secret: SECRET })).body, { timeout: 2000, interval: 50 }).toMatchObject({ queue_length: 0 });
    last.kill("SIGTERM");
    await new Promise((res) => last.once("exit", res));
  }, 120_000);
});
