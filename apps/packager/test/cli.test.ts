// The geowatch-packager CLI against a running service: status, queue with a progress bar, job, stats, cc,
// a defaults file, -s, exit codes.
import { execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { progressBar } from "../src/cli.js";
import { makeResource, mailsTo, searchUrl, testConfig, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
const BIN = join(import.meta.dirname, "..", "bin", "geowatch-packager.js");
let app: RunningPackager;
let defaults = "";
let rid = "";

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("geowatch-packager CLI", () => {
  beforeAll(async () => {
    rid = await makeResource(300);
    const config = testConfig();
    app = await startPackager(config);
    defaults = join(config.dataDir, "cli.json");
    writeFileSync(defaults, JSON.stringify({ secret: SECRET, api_url: searchUrl() }));
  });
  afterAll(async () => {
    await app?.close();
    if (app) rmSync(app.service.config.dataDir, { recursive: true, force: true });
  });

  it("prints help (exit 0), refuses a missing command or bad option (exit 2)", async () => {
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("queue TASK [PARAM:VALUE ...]");
    expect((await cli()).code).toBe(2);
    expect((await cli("--bogus")).code).toBe(2);
    expect((await cli("-p", app.url, "-d", defaults, "queue", "nothing")).code).toBe(2);
    expect((await cli("worker")).code).toBe(2);
  });

  it("status with the defaults file (exit 0) and with a wrong -s secret (exit 1)", async () => {
    const ok = await cli("-p", app.url, "-d", defaults, "status");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ success: true, worker_count: expect.any(Number), queue_length: expect.any(Number) });
    const bad = await cli("-p", app.url, "-d", defaults, "-s", "wrong", "status");
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ success: false });
    expect((await cli("-q", "-p", app.url, "-d", defaults, "status")).stdout).toBe("");
  });

  it("queue TASK PARAM:VALUE --wait follows the job with a progress bar to the end", async () => {
    const to = `cli-${Date.now()}@example.org`;
    const r = await cli("-p", app.url, "-d", defaults, "queue", "package_datastore", `resource_id:${rid}`, `email:${to}`, "format:tsv", "--wait");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[#{30}\] 100% 300\/300 rows done/);
    expect(r.stdout).toMatch(/done: .*\.zip/);
    await waitFor("mail", () => mailsTo(to)[0]);
    const id = /"job_id": "([^"]+)"/.exec(r.stdout)![1]!;
    const job = await cli("-p", app.url, "-d", defaults, "job", id);
    expect(JSON.parse(job.stdout)).toMatchObject({ success: true, job: { state: "done", done: 300 } });
  });

  it("stats, stats requests, cc", async () => {
    const stats = await cli("-p", app.url, "-d", defaults, "stats");
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout).totals["*"].requests).toBeGreaterThanOrEqual(1);
    const reqs = await cli("-p", app.url, "-d", defaults, "stats", "requests", `resource_id:${rid}`, "limit:5");
    expect(JSON.parse(reqs.stdout).requests[0].resource_id).toBe(rid);
    const cc = await cli("-p", app.url, "-d", defaults, "cc");
    expect(cc.code).toBe(0);
    expect(JSON.parse(cc.stdout)).toMatchObject({ success: true, cleared: 1 });
  });

  it("draws the progress bar", () => {
    expect(progressBar(50, 200, "rows", "running", 10)).toBe("[###-------]  25% 50/200 rows running");
    expect(progressBar(5, null, "bytes", "running", 4)).toBe("[????] 5 bytes running");
  });
});
