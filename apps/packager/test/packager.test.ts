// End to end against the real CKAN and the real SMTP server: HTTP request -> queue -> worker -> ZIP -> mail with
// a link -> download, read back with independent readers (Python csv/zipfile/openpyxl, GDAL's ogrinfo).
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { STATE_ENGINES, createPgDatabase, ckanToken, makeResource, mailsTo, post, py, python, row, searchUrl, stateFor, testConfig, waitFor } from "./helpers.js";

const N = 1200;
const SECRET = "test-secret-0123456789";
let rid = "";
let app: RunningPackager;
let tmp = "";
let pgDb: Awaited<ReturnType<typeof createPgDatabase>> | undefined;

async function jobDone(id: string) {
  return waitFor(`job ${id} done`, async () => {
    const r = await post(app.url, "/job_status", { secret: SECRET, job_id: id });
    const job = r.body.job as { state: string; error: string | null };
    if (job.state === "failed") throw new Error(`job failed: ${job.error}`);
    return job.state === "done" ? (r.body.job as Record<string, unknown>) : undefined;
  }, 90_000);
}

/** Waits for the mail to `to`, follows its link and saves the ZIP; returns the path and the mail. */
async function download(to: string, count = 1) {
  const mails = await waitFor(`mail to ${to}`, () => {
    const m = mailsTo(to);
    return m.length >= count ? m : undefined;
  });
  const mail = mails.at(-1)!;
  const link = /https?:\/\/\S+\/download\/\S+/.exec(mail.body)?.[0];
  expect(link, mail.body).toBeDefined();
  const res = await fetch(link!);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/zip");
  const path = join(tmp, `${to}-${count}.zip`);
  writeFileSync(path, Buffer.from(await res.arrayBuffer()));
  return { path, mail, link: link! };
}

async function packageAs(format: string | undefined, to: string, extra: Record<string, unknown> = {}) {
  const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, key: ckanToken(), ...(format ? { format } : {}), ...extra });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body).toMatchObject({ success: true, status: "success" });
  await jobDone(String(r.body.job_id));
  return download(to);
}

const PY_ZIP_CSV = `
import csv, io, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None
name = [n for n in z.namelist() if n.endswith(sys.argv[2])][0]
text = z.read(name).decode('utf-8')
rows = list(csv.reader(io.StringIO(text, newline=''), delimiter='\\t' if sys.argv[2] == '.tsv' else ','))
print(json.dumps({'names': z.namelist(), 'header': rows[0], 'rows': rows[1:]}))
`;

// The whole suite runs once per state engine: /status, /job_status, progress, the cache and the statistics come
// from node:sqlite (stats.db under data_dir) or from a PostgreSQL database of this run's own.
describe.each(STATE_ENGINES)("packager service against CKAN 2.12 and SMTP, state on %s", (engine) => {
  beforeAll(async () => {
    rid = await makeResource(N);
    pgDb = engine === "postgres" ? await createPgDatabase() : undefined;
    const config = testConfig({ workers: { fast: 1, slow: 1 }, ...stateFor(engine, pgDb?.url) });
    tmp = config.dataDir;
    app = await startPackager(config);
  });
  afterAll(async () => {
    await app?.close();
    rmSync(tmp, { recursive: true, force: true });
    await pgDb?.drop();
  });

  it("keeps its state in the configured engine", () => {
    expect(app.service.db.engine).toBe(engine);
    // On PostgreSQL no state file is written under data_dir.
    expect(existsSync(join(tmp, "stats.db"))).toBe(engine === "sqlite");
  });

  it("refuses a wrong or missing secret before looking at the request", async () => {
    const bad = await post(app.url, "/package_datastore", { secret: "wrong", resource_id: rid });
    expect(bad.status).toBe(403);
    expect(bad.body).toMatchObject({ success: false, status: "failed" });
    expect((await post(app.url, "/status", {})).status).toBe(403);
    const invalid = await post(app.url, "/package_datastore", { secret: SECRET, resource_id: rid, email: "not-an-email", api_url: searchUrl() });
    expect(invalid.status).toBe(400);
    expect(String(invalid.body.msg)).toMatch(/email/);
  });

  it("answers /status with worker_count, queue_length, processed_requests and per-queue depth", async () => {
    const r = await waitFor("workers registered", async () => {
      const s = await post(app.url, "/status", { secret: SECRET });
      return (s.body.worker_count as number) >= 2 ? s : undefined;
    });
    expect(r.body).toMatchObject({ success: true, status: "success", worker_count: 2, queue_length: expect.any(Number), processed_requests: expect.any(Number) });
    expect(r.body.queues).toMatchObject({ fast: { workers: 1, length: expect.any(Number) }, slow: { workers: 1, length: expect.any(Number) } });
    const root = await post(app.url, "/", `secret=${SECRET}`, "application/x-www-form-urlencoded");
    expect(root.body).toMatchObject({ success: true, worker_count: 2 });
  });

  it("packages the DataStore rows as CSV (form-encoded request), mails a link, and Python's csv reads every row back", async () => {
    const to = `csv-${Date.now()}@example.org`;
    const form = new URLSearchParams({ secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, key: ckanToken() }).toString();
    const r = await post(app.url, "/package_datastore", form, "application/x-www-form-urlencoded");
    expect(r.body).toMatchObject({ success: true, queue: "fast", rows: N });
    const job = await jobDone(String(r.body.job_id));
    expect(job).toMatchObject({ done: N, total: N, unit: "rows", state: "done" });
    const { path, mail } = await download(to);
    expect(mail.subject).toBe("Resource from 127.0.0.1:25000".replace("25000", new URL(searchUrl()).port));
    expect(mail.from).toContain("portal@example.org");
    const out = py<{ names: string[]; header: string[]; rows: string[][] }>(PY_ZIP_CSV, path, ".csv");
    expect(out.names).toEqual([`${rid}.csv`]);
    expect(out.header).toEqual(["_id", "name", "count", "latitude", "longitude", "Scientific name", "Catalog number", "Habitat type", "associatedMedia", "notes"]);
    expect(out.rows).toHaveLength(N);
    const notes = out.header.indexOf("notes");
    expect(out.rows[7]![notes]).toBe(row(7).notes);
    expect(out.rows.map((x) => Number(x[2])).reduce((a, b) => a + b, 0)).toBe((N * (N - 1)) / 2);
  });

  it("accepts ckanpackager's quoted-JSON body, with filters as a JSON string, q, offset and limit; TSV", async () => {
    const to = `tsv-${Date.now()}@example.org`;
    const doc = JSON.stringify({ secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, filters: JSON.stringify({ "Habitat type": "wetland" }), offset: 10, limit: 100, format: "tsv" });
    const r = await post(app.url, "/package_datastore", encodeURIComponent(doc), "application/x-www-form-urlencoded");
    expect(r.body, JSON.stringify(r.body)).toMatchObject({ success: true, rows: 100 });
    await jobDone(String(r.body.job_id));
    const { path } = await download(to);
    const out = py<{ header: string[]; rows: string[][] }>(PY_ZIP_CSV, path, ".tsv");
    expect(out.rows).toHaveLength(100);
    const habitat = out.header.indexOf("Habitat type");
    expect(new Set(out.rows.map((x) => x[habitat]))).toEqual(new Set(["wetland"]));
    expect(out.rows[0]![out.header.indexOf("count")]).toBe("30");
    const notes = out.header.indexOf("notes");
    expect(out.rows.every((x) => !x[notes]!.includes("\t") && !x[notes]!.includes("\n"))).toBe(true);
  });

  it("reuses a cached ZIP for the same data parameters (other email and key) and only sends the mail", async () => {
    const a = `cache-a-${Date.now()}@example.org`;
    const b = `cache-b-${Date.now()}@example.org`;
    const first = await packageAs("geojson", a, { q: "Parus" });
    const before = (await post(app.url, "/statistics", { secret: SECRET, resource_id: rid })).body.totals as Record<string, { requests: number; emails: number }>;
    const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: b, format: "geojson", q: "Parus" });
    expect(r.body).toMatchObject({ success: true, cached: true, queue: "fast" });
    const job = await jobDone(String(r.body.job_id));
    expect(job.done).toBe(0); // nothing fetched again
    const second = await download(b);
    expect(second.link.split("?")[0]).toBe(first.link.split("?")[0]);
    const after = (await post(app.url, "/statistics", { secret: SECRET, resource_id: rid })).body.totals as Record<string, { requests: number; emails: number }>;
    expect(after[rid]!.requests).toBe(before[rid]!.requests + 1);
    const fc = py<{ n: number; first: { geometry: { type: string; coordinates: number[] }; properties: Record<string, unknown> } }>(
      `import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nd = json.loads(z.read(z.namelist()[0]))\nprint(json.dumps({'n': len(d['features']), 'first': d['features'][0]}))`,
      first.path,
    );
    expect(fc.n).toBe(N / 2);
    expect(fc.first.geometry).toEqual({ type: "Point", coordinates: [row(1).longitude, row(1).latitude] });
    expect(fc.first.properties["Scientific name"]).toBe("Parus major");

    const cleared = await post(app.url, "/clear_caches", { secret: SECRET });
    expect(cleared.body).toMatchObject({ success: true, cleared: expect.any(Number) });
    expect(cleared.body.cleared as number).toBeGreaterThanOrEqual(1);
    const again = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: b, format: "geojson", q: "Parus" });
    expect(again.body.cached).toBe(false);
    const job2 = await jobDone(String(again.body.job_id));
    expect(job2.done).toBe(N / 2);
    const old = await fetch(first.link);
    expect(old.status).toBe(200); // rebuilt under the same name
  });

  it("writes an XLSX that openpyxl reads", async () => {
    const { path } = await packageAs("xlsx", `xlsx-${Date.now()}@example.org`, { limit: 500 });
    const out = py<{ sheets: string[]; header: unknown[]; rows: unknown[][] }>(
      `import io, json, sys, zipfile, openpyxl
z = zipfile.ZipFile(sys.argv[1])
wb = openpyxl.load_workbook(io.BytesIO(z.read(z.namelist()[0])), read_only=True)
ws = wb[wb.sheetnames[0]]
rows = [list(r) for r in ws.iter_rows(values_only=True)]
print(json.dumps({'sheets': wb.sheetnames, 'header': rows[0], 'rows': rows[1:]}, default=str))`,
      path,
    );
    expect(out.sheets).toEqual(["data"]);
    expect(out.header).toContain("Scientific name");
    expect(out.rows).toHaveLength(500);
    const c = out.header.indexOf("count");
    expect(out.rows[499]![c]).toBe(499); // a number cell, not text
    expect(out.rows[7]![out.header.indexOf("notes")]).toBe(row(7).notes);
  });

  it("writes a GeoPackage that GDAL's ogrinfo opens", async () => {
    const { path } = await packageAs("gpkg", `gpkg-${Date.now()}@example.org`);
    const dir = join(tmp, "gpkg-out");
    execFileSync(python(), ["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", path, dir]);
    const gpkg = join(dir, `${rid}.gpkg`);
    const info = execFileSync("ogrinfo", ["-so", "-al", gpkg], { encoding: "utf8" });
    expect(info).toContain(`Feature Count: ${N}`);
    expect(info).toMatch(/Geometry: Point/);
    expect(info).toMatch(/Scientific name: String/);
    const one = execFileSync("ogrinfo", ["-al", "-where", "count = 7", gpkg], { encoding: "utf8" });
    expect(one).toContain(`POINT (${row(7).longitude} ${row(7).latitude})`);
  });

  it("packages a Darwin Core Archive: meta.xml, eml.xml, occurrence core, multimedia extension, dynamicProperties", async () => {
    const to = `dwc-${Date.now()}@example.org`;
    const r = await post(app.url, "/package_dwc_archive", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, limit: 100 });
    expect(r.body).toMatchObject({ success: true });
    await jobDone(String(r.body.job_id));
    const { path } = await download(to);
    const out = py<{ names: string[]; core: { fields: string[]; rowType: string }; ext: { rowType: string; fields: string[] }; header: string[]; rows: string[][]; media: string[][] }>(
      `import csv, io, json, sys, zipfile
import xml.etree.ElementTree as ET
z = zipfile.ZipFile(sys.argv[1])
ns = {'d': 'http://rs.tdwg.org/dwc/text/'}
meta = ET.fromstring(z.read('meta.xml'))
ET.fromstring(z.read('eml.xml'))
core = meta.find('d:core', ns); ext = meta.find('d:extension', ns)
rd = lambda n: list(csv.reader(io.StringIO(z.read(n).decode('utf-8')), delimiter='\\t', quoting=csv.QUOTE_NONE))
occ = rd(core.find('d:files/d:location', ns).text)
media = rd(ext.find('d:files/d:location', ns).text)
print(json.dumps({'names': sorted(z.namelist()),
  'core': {'rowType': core.get('rowType'), 'fields': [f.get('term') for f in core.findall('d:field', ns)]},
  'ext': {'rowType': ext.get('rowType'), 'fields': [f.get('term') for f in ext.findall('d:field', ns)]},
  'header': occ[0], 'rows': occ[1:], 'media': media}))`,
      path,
    );
    expect(out.names).toEqual(["eml.xml", "meta.xml", "multimedia.txt", "occurrence.txt"]);
    expect(out.core.rowType).toBe("http://rs.tdwg.org/dwc/terms/Occurrence");
    expect(out.core.fields).toEqual(expect.arrayContaining(["http://rs.tdwg.org/dwc/terms/scientificName", "http://rs.tdwg.org/dwc/terms/catalogNumber", "http://rs.tdwg.org/dwc/terms/dynamicProperties"]));
    expect(out.ext.rowType).toBe("http://rs.gbif.org/terms/1.0/Multimedia");
    expect(out.rows).toHaveLength(100);
    const dyn = out.header.indexOf("dynamicProperties");
    expect(JSON.parse(out.rows[0]![dyn]!)).toMatchObject({ "Habitat type": "wetland", name: "site 0" });
    expect(out.media).toHaveLength(10); // rows 0, 10, ..., 90 carry one image each
    expect(out.media[1]).toEqual([out.rows[10]![0], "StillImage", "image/jpeg", "http://img.example.org/10.jpg", "image 10", "http://creativecommons.org/licenses/by/4.0/", ""]);
  });

  it("keeps statistics: totals per resource with the * grand total, requests and errors lists", async () => {
    const to = `err-${Date.now()}@example.org`;
    const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: "no-such-resource", email: to });
    expect(r.body).toMatchObject({ success: true, queue: "slow" }); // unknown count: slow
    await waitFor("the job to fail", async () => {
      const s = await post(app.url, "/job_status", { secret: SECRET, job_id: r.body.job_id });
      return (s.body.job as { state: string }).state === "failed" ? true : undefined;
    });
    const totals = (await post(app.url, "/statistics", { secret: SECRET })).body.totals as Record<string, { requests: number; errors: number; emails: number }>;
    expect(totals["no-such-resource"]).toEqual({ requests: 1, errors: 1, emails: 1 });
    expect(totals["*"]!.requests).toBe(Object.entries(totals).filter(([k]) => k !== "*").reduce((a, [, t]) => a + t.requests, 0));
    expect(totals["*"]!.errors).toBeGreaterThanOrEqual(1);
    const errors = (await post(app.url, "/statistics/errors", { secret: SECRET, email: to })).body.errors as { email: string; resource_id: string; timestamp: number; message: string }[];
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ email: to, resource_id: "no-such-resource" });
    expect(errors[0]!.message).toMatch(/404/);
    const reqs = (await post(app.url, "/statistics/requests", { secret: SECRET, resource_id: rid, limit: 2 })).body.requests as { timestamp: number }[];
    expect(reqs).toHaveLength(2);
    expect(reqs[0]!.timestamp).toBeGreaterThanOrEqual(reqs[1]!.timestamp);
    // /status is a snapshot refreshed every 200 ms: it catches up within that.
    await expect.poll(async () => (await post(app.url, "/status", { secret: SECRET })).body.processed_requests as number, { timeout: 2000, interval: 50 }).toBeGreaterThanOrEqual(6);
  });

  it("serves a download only with a valid, unexpired signature", async () => {
    const name = "x.zip";
    expect((await fetch(`${app.url}/download/${name}?expires=9999999999&signature=00`)).status).toBe(403);
    const expired = app.service.link(name, Date.now() - 8 * 86400_000);
    expect((await fetch(expired.url.replace(app.service.config.publicUrl, app.url))).status).toBe(410);
  });
});
