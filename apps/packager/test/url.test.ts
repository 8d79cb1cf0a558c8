// /package_url: the resource file is fetched only through core's URL policy (allow-list from config):
// loopback refused without it, fetched with it, and a redirect to a host off the list refused.
import { createServer } from "node:http";
import type { Server } from "node:http";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { mailsTo, post, py, testConfig, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
const CONTENT = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i},"x"\n`).join(""));
let origin: Server;
let port = 0;
let open: RunningPackager;
let closed: RunningPackager;

async function job(app: RunningPackager, id: string, state: "done" | "failed") {
  return waitFor(`job ${state}`, async () => {
    const r = await post(app.url, "/job_status", { secret: SECRET, job_id: id });
    const j = r.body.job as { state: string; error: string | null; done: number; total: number | null; unit: string };
    return j.state === state ? j : undefined;
  });
}

describe("/package_url through the URL policy", () => {
  beforeAll(async () => {
    origin = createServer((req, res) => {
      if (req.url === "/data/file.csv") {
        res.writeHead(200, { "content-type": "text/csv", "content-length": CONTENT.length });
        res.end(CONTENT);
      } else if (req.url === "/to-localhost") {
        res.writeHead(302, { location: `http://localhost:${port}/data/file.csv` });
        res.end();
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    port = (origin.address() as { port: number }).port;
    open = await startPackager(testConfig({ allowHosts: ["127.0.0.1"] }));
    closed = await startPackager(testConfig({ allowHosts: [] }));
  });
  afterAll(async () => {
    await open?.close();
    await closed?.close();
    for (const a of [open, closed]) if (a) rmSync(a.service.config.dataDir, { recursive: true, force: true });
    await new Promise((r) => origin?.close(r));
  });

  it("refuses a loopback resource_url when the allow-list does not name it", async () => {
    const r = await post(closed.url, "/package_url", { secret: SECRET, resource_id: "file", resource_url: `http://127.0.0.1:${port}/data/file.csv`, email: "a@example.org" });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ success: false, status: "failed" });
    expect(String(r.body.msg)).toMatch(/refused to fetch http:\/\/127\.0\.0\.1:\d+\/data\/file\.csv: .*private, loopback/);
  });

  it("fetches it when the host is on the allow-list, zips it and mails the link", async () => {
    const to = `url-${Date.now()}@example.org`;
    const r = await post(open.url, "/package_url", { secret: SECRET, resource_id: "file", resource_url: `http://127.0.0.1:${port}/data/file.csv`, email: to });
    expect(r.body).toMatchObject({ success: true });
    const j = await job(open, String(r.body.job_id), "done");
    expect(j).toMatchObject({ unit: "bytes", done: CONTENT.length, total: CONTENT.length });
    const mail = await waitFor("mail", () => mailsTo(to)[0]);
    const link = /https?:\/\/\S+\/download\/\S+/.exec(mail.body)![0];
    const zip = join(open.service.config.dataDir, "url.zip");
    writeFileSync(zip, Buffer.from(await (await fetch(link)).arrayBuffer()));
    const out = py<{ names: string[]; size: number; head: string }>(
      "import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nd = z.read('file.csv')\nprint(json.dumps({'names': z.namelist(), 'size': len(d), 'head': d[:20].decode()}))",
      zip,
    );
    expect(out).toEqual({ names: ["file.csv"], size: CONTENT.length, head: CONTENT.subarray(0, 20).toString() });
  });

  it("refuses a redirect to a host off the allow-list (the job fails with the reason)", async () => {
    const to = `redir-${Date.now()}@example.org`;
    const r = await post(open.url, "/package_url", { secret: SECRET, resource_id: "redirected", resource_url: `http://127.0.0.1:${port}/to-localhost`, email: to });
    expect(r.body).toMatchObject({ success: true });
    const j = await job(open, String(r.body.job_id), "failed");
    expect(j.error).toMatch(/refused to fetch http:\/\/localhost:\d+\/data\/file\.csv: host "localhost" is not on the allow list/);
    const errors = (await post(open.url, "/statistics/errors", { secret: SECRET, resource_id: "redirected" })).body.errors as { email: string }[];
    expect(errors.map((e) => e.email)).toEqual([to]);
    expect(mailsTo(to)).toEqual([]);
  });
});
