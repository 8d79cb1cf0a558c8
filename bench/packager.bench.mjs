// The packager (issue 11): BENCH_ROWS rows (default 3,000,000) x 20 columns from a CKAN DataStore table to a zipped
// CSV, against a baseline in the same run that does only fetch + CSV + zip (the same datastore_search cursor pages,
// the same yazl ZIP, no queue, cache, statistics or progress bookkeeping, no mail):
//   baseline       this process: datastore_search pages (include_next_page cursor, records_format lists) -> CSV -> ZIP
//   packager       `geowatch-packager serve` in its own process (one in-process slow worker); POST /package_datastore,
//                  timed from the POST to the job's `done` in /job_status; the mail goes to the real SMTP server
//   packager 1M    the same with limit 1,000,000, for the peak-RSS comparison (flat within 10% from 1M to 3M)
//   /status load   BENCH_STATUS_RPS (default 1000) POST /status per second for BENCH_STATUS_S (default 5) seconds on
//                  loopback, bounded (at most 200 in flight); counts errors and the achieved rate
// The table is filled with PostgreSQL COPY after datastore_create made it (CKAN's API loads only ~2k rows/s).
// Needs CKAN and SMTP: bash .ci/servers/postgres.sh start && bash .ci/servers/ckan.sh start && bash .ci/servers/smtp.sh start,
// then source .servers/env/{ckan,smtp}.env. Builds nothing: run `pnpm -s turbo run build --filter @geowatch/packager...` first.
// Env: BENCH_STATUS_ONLY=1 (only the /status load test), BENCH_ROWS, BENCH_RUNS (alternated baseline/packager runs, default 1), BENCH_PAGE (page size, default 5000,
// the packager's PAGE_SIZE default).
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgRequire = createRequire(join(here, "..", "apps", "packager", "package.json"));
const yazl = pkgRequire("yazl");
const BIN = join(here, "..", "apps", "packager", "bin", "geowatch-packager.js");

const need = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`${k} is not set: bash .ci/servers/ckan.sh start && bash .ci/servers/smtp.sh start && source .servers/env/ckan.env && source .servers/env/smtp.env`);
    process.exit(1);
  }
  return v;
};
const CKAN = need("GEOWATCH_CKAN_URL");
const TOKEN = need("GEOWATCH_CKAN_TOKEN");
const DS_URL = need("GEOWATCH_CKAN_DATASTORE_URL");
const SMTP = { host: need("GEOWATCH_SMTP_HOST"), port: Number(need("GEOWATCH_SMTP_PORT")), user: need("GEOWATCH_SMTP_USER"), password_file: need("GEOWATCH_SMTP_PASSWORD_FILE"), ca: need("GEOWATCH_SMTP_CA") };
const ROWS = Number(process.env.BENCH_ROWS ?? 3_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const PAGE = Number(process.env.BENCH_PAGE ?? 5000);
const RPS = Number(process.env.BENCH_STATUS_RPS ?? 1000);
const LOAD_S = Number(process.env.BENCH_STATUS_S ?? 5);
const SEARCH = `${CKAN}/api/3/action/datastore_search`;
const SECRET = "bench-secret-0123456789";
const work = mkdtempSync(join(tmpdir(), "gw-packager-bench-"));

async function ckan(action, body) {
  const res = await fetch(`${CKAN}/api/3/action/${action}`, { method: "POST", headers: { "content-type": "application/json", authorization: TOKEN }, body: JSON.stringify(body) });
  const j = await res.json();
  if (!j.success) throw new Error(`${action}: ${JSON.stringify(j.error)}`);
  return j.result;
}

const FIELDS = Array.from({ length: 20 }, (_, i) => ({ id: `c${String(i + 1).padStart(2, "0")}`, type: i < 5 ? "int" : i < 10 ? "float" : "text" }));

/** The table: datastore_create with no rows, then COPY from a generated CSV stream through psql. */
async function fill() {
  await ckan("organization_create", { name: "geowatch-packager-bench" }).catch(() => undefined);
  const pkg = await ckan("package_create", { name: `bench-${Date.now()}`, owner_org: "geowatch-packager-bench" });
  const { resource_id: rid } = await ckan("datastore_create", { resource: { package_id: pkg.id, name: "bench" }, fields: FIELDS, records: [] });
  const t0 = Date.now();
  const cols = FIELDS.map((f) => `"${f.id}"`).join(", ");
  // The full-text trigger (CKAN's _full_text column) would make COPY ~6k rows/s here; the bench never uses q.
  const psql = spawn(
    "psql",
    ["-X", "-q", "-v", "ON_ERROR_STOP=1", DS_URL, "-c", `ALTER TABLE "${rid}" DISABLE TRIGGER USER`, "-c", `COPY "${rid}" (${cols}) FROM STDIN WITH (FORMAT csv)`, "-c", `ALTER TABLE "${rid}" ENABLE TRIGGER USER`, "-c", `ANALYZE "${rid}"`],
    { stdio: ["pipe", "inherit", "inherit"] },
  );
  const done = new Promise((res, rej) => psql.on("exit", (c) => (c === 0 ? res() : rej(new Error(`psql COPY exited ${c}`)))));
  for (let i = 0; i < ROWS; i += 10_000) {
    let chunk = "";
    for (let r = i; r < Math.min(ROWS, i + 10_000); r++) {
      chunk += `${r},${r % 1000},${r * 7},${r % 13},${-r},${r / 3},${(r % 360) - 180},${(r % 180) - 90},${r * 0.001},${Math.sqrt(r)},`;
      chunk += `name ${r},"text, with comma ${r % 97}",category ${r % 11},${r.toString(36)},x${r % 5},description of row ${r},${r % 2 ? "yes" : "no"},code-${r % 1234},"q""uote ${r % 7}",end ${r}\n`;
    }
    if (!psql.stdin.write(chunk)) await new Promise((r) => psql.stdin.once("drain", r));
  }
  psql.stdin.end();
  await done;
  console.log(`filled ${ROWS.toLocaleString("en")} rows x 20 columns by COPY in ${((Date.now() - t0) / 1000).toFixed(1)} s (resource ${rid})`);
  return rid;
}

const NEEDS_QUOTE = /[",\r\n]/;
const cell = (v) => {
  if (v === null || v === undefined) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return NEEDS_QUOTE.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** The baseline: fetch + CSV + zip, nothing else. Returns rows and seconds. */
async function baseline(rid, limit) {
  const t0 = process.hrtime.bigint();
  const zip = new yazl.ZipFile();
  const out = createWriteStream(join(work, `baseline-${Date.now()}.zip`));
  zip.outputStream.pipe(out);
  const entry = new PassThrough({ highWaterMark: 1 << 20 });
  zip.addReadStream(entry, `${rid}.csv`, { compressionLevel: 6 });
  let filters = {};
  let rows = 0;
  let header = false;
  for (;;) {
    const size = Math.min(PAGE, limit - rows);
    if (size <= 0) break;
    const res = await fetch(SEARCH, { method: "POST", headers: { "content-type": "application/json", authorization: TOKEN }, body: JSON.stringify({ resource_id: rid, filters, limit: size, sort: "_id", include_next_page: true, records_format: "lists" }) });
    const r = (await res.json()).result;
    if (!header) {
      entry.write(r.fields.filter((f) => f.id !== "_full_text").map((f) => cell(f.id)).join(",") + "\r\n");
      header = true;
    }
    const keep = r.fields.map((f, i) => (f.id === "_full_text" ? -1 : i)).filter((i) => i >= 0);
    let text = "";
    for (const row of r.records) text += keep.map((i) => cell(row[i])).join(",") + "\r\n";
    if (!entry.write(text)) await new Promise((res2) => entry.once("drain", res2));
    rows += r.records.length;
    if (r.records.length < size) break;
    filters = r.next_page;
  }
  entry.end();
  zip.end();
  await finished(out);
  return { rows, s: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function post(base, path, body) {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return res.json();
}

/** A `geowatch-packager serve` process with one slow worker; resolves with its URL and pid. */
// Loaded into the serve process for the /status load (main thread only): its event-loop delay and its GC pauses,
// written to a file at exit, so a stall can be put on the server's loop (work in a handler, GC) or elsewhere.
const SERVER_PROBE = `import { isMainThread } from "node:worker_threads";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { writeFileSync } from "node:fs";
if (isMainThread && process.env.GW_BENCH_PROBE) {
  const h = monitorEventLoopDelay({ resolution: 10 }); h.enable();
  let gcMax = 0, gcMs = 0;
  new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcMs += e.duration; gcMax = Math.max(gcMax, e.duration); } }).observe({ entryTypes: ["gc"] });
  globalThis.__gwProbeReset = () => { h.reset(); gcMax = 0; gcMs = 0; };
  process.on("SIGUSR2", () => globalThis.__gwProbeReset());
  process.on("SIGTERM", () => writeFileSync(process.env.GW_BENCH_PROBE, JSON.stringify({ eldMax: h.max / 1e6, eldP99: h.percentile(99) / 1e6, gcMax, gcMs })));
}`;

async function startServe(tag, probe) {
  const dataDir = join(work, `serve-${tag}`);
  const cfg = join(work, `packager-${tag}.json`);
  writeFileSync(cfg, JSON.stringify({ secret: SECRET, port: 0, data_dir: dataDir, allow_hosts: ["127.0.0.1"], page_size: PAGE, log_level: "warn", workers: { fast: 1, slow: 1 }, email: { ...SMTP, from: "bench@example.org" } }));
  const args = probe ? ["--import", `data:text/javascript,${encodeURIComponent(SERVER_PROBE)}`] : [];
  const child = spawn(process.execPath, [...args, BIN, "serve", "-c", cfg], { stdio: ["ignore", "pipe", "inherit"], env: probe ? { ...process.env, GW_BENCH_PROBE: probe } : process.env });
  const url = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const m = /listening on (http:\/\/\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    child.once("exit", (c) => reject(new Error(`serve exited ${c}`)));
  });
  return { child, url, dataDir };
}

async function stopServe(s) {
  s.child.kill("SIGTERM");
  await new Promise((r) => s.child.once("exit", r));
}

async function packager(rid, limit, tag) {
  const s = await startServe(tag);
  try {
    const t0 = process.hrtime.bigint();
    const r = await post(s.url, "/package_datastore", { secret: SECRET, api_url: SEARCH, resource_id: rid, email: "bench@example.org", key: TOKEN, ...(limit < ROWS ? { limit } : {}) });
    if (!r.success) throw new Error(JSON.stringify(r));
    let job;
    let rssAt1M = NaN;
    for (;;) {
      job = (await post(s.url, "/job_status", { secret: SECRET, job_id: r.job_id })).job;
      if (job.done >= 1_000_000 && Number.isNaN(rssAt1M)) rssAt1M = peakRss(s.child.pid);
      if (job.state === "done" || job.state === "failed") break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (job.state !== "done") throw new Error(`job failed: ${job.error}`);
    const zipBytes = statSync(join(s.dataDir, "store", job.zip_file_name)).size;
    return { rows: job.done, s: secs, rss: peakRss(s.child.pid), rssAt1M, zipBytes };
  } finally {
    await stopServe(s);
  }
}

/** /status at RPS for LOAD_S seconds, at most 200 in flight: sent, errors, achieved rate, p99 latency. */
async function statusLoad() {
  const probe = join(work, "probe.json");
  const s = await startServe("load", probe);
  try {
    // Steady state: the worker thread has started and the route is warm (200 requests, not counted).
    await new Promise((r) => setTimeout(r, 2000));
    for (let i = 0; i < 200; i++) await post(s.url, "/status", { secret: SECRET });
    const lat = [];
    let errors = 0;
    let inflight = 0;
    let skipped = 0;
    const total = RPS * LOAD_S;
    // Both event loops from here on: the server's (probe, reset by SIGUSR2) and this client's.
    s.child.kill("SIGUSR2");
    const clientLoop = monitorEventLoopDelay({ resolution: 10 });
    clientLoop.enable();
    const t0 = performance.now();
    const pending = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / RPS;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      if (inflight >= 200) {
        skipped++;
        continue;
      }
      inflight++;
      const start = performance.now();
      pending.push(
        fetch(`${s.url}/status`, { method: "POST", headers: { "content-type": "application/json" }, body: `{"secret":"${SECRET}"}` })
          .then(async (res) => {
            const j = await res.json();
            if (res.status !== 200 || j.success !== true) errors++;
          })
          .catch(() => errors++)
          .finally(() => {
            inflight--;
            lat.push(performance.now() - start);
          }),
      );
    }
    await Promise.all(pending);
    const secs = (performance.now() - t0) / 1000;
    clientLoop.disable();
    lat.sort((a, b) => a - b);
    const rss = peakRss(s.child.pid);
    await stopServe(s);
    const server = JSON.parse(readFileSync(probe, "utf8"));
    return {
      sent: total - skipped,
      skipped,
      errors,
      rate: (total - skipped) / secs,
      p50: lat[Math.floor(lat.length * 0.5)],
      p99: lat[Math.floor(lat.length * 0.99)],
      rss,
      loops: `server loop delay max ${server.eldMax.toFixed(0)} ms (p99 ${server.eldP99.toFixed(0)} ms), server GC ${server.gcMs.toFixed(0)} ms in all (longest pause ${server.gcMax.toFixed(0)} ms), client loop delay max ${(clientLoop.max / 1e6).toFixed(0)} ms`,
    };
  } finally {
    if (s.child.exitCode === null && s.child.signalCode === null) await stopServe(s);
  }
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (process.env.BENCH_STATUS_ONLY === "1") {
  const load = await statusLoad();
  console.log(`/status load: ${load.sent} requests at ${load.rate.toFixed(0)}/s (target ${RPS}/s), ${load.errors} errors, ${load.skipped} not sent (200 in flight), p50 ${load.p50.toFixed(1)} ms, p99 ${load.p99.toFixed(1)} ms, server peak RSS ${load.rss.toFixed(0)} MB, ${load.loops}, load avg ${loadavg()[0].toFixed(1)}`);
  rmSync(work, { recursive: true, force: true });
  process.exit(load.errors === 0 && load.skipped === 0 ? 0 : 1);
}
console.log(`packager bench: ${ROWS.toLocaleString("en")} rows, page ${PAGE}, load avg ${loadavg()[0].toFixed(1)}`);
const rid = await fill();
const base = [];
const pack = [];
for (let run = 0; run < RUNS; run++) {
  const b = await baseline(rid, ROWS);
  console.log(`baseline run ${run + 1}: ${b.rows} rows in ${b.s.toFixed(1)} s = ${Math.round(b.rows / b.s).toLocaleString("en")} rows/s`);
  base.push(b);
  const p = await packager(rid, ROWS, `full-${run}`);
  console.log(`packager run ${run + 1}: ${p.rows} rows in ${p.s.toFixed(1)} s = ${Math.round(p.rows / p.s).toLocaleString("en")} rows/s, peak RSS ${p.rss.toFixed(0)} MB (at 1M rows: ${p.rssAt1M.toFixed(0)} MB), ZIP ${(p.zipBytes / 1e6).toFixed(1)} MB`);
  if (b.rows !== ROWS || p.rows !== ROWS) throw new Error(`row count mismatch: baseline ${b.rows}, packager ${p.rows}, table ${ROWS}`);
  pack.push(p);
}
const oneM = Math.min(1_000_000, ROWS);
const small = await packager(rid, oneM, "1m");
console.log(`packager ${oneM.toLocaleString("en")} rows: ${small.s.toFixed(1)} s, peak RSS ${small.rss.toFixed(0)} MB`);
const baseRate = med(base.map((b) => b.rows / b.s));
const packRate = med(pack.map((p) => p.rows / p.s));
const ratio = packRate / baseRate;
const rssFull = med(pack.map((p) => p.rss));
const flat = rssFull / small.rss;
const load = await statusLoad();
console.log(`/status load: ${load.sent} requests at ${load.rate.toFixed(0)}/s (target ${RPS}/s), ${load.errors} errors, ${load.skipped} not sent (200 in flight), p50 ${load.p50.toFixed(1)} ms, p99 ${load.p99.toFixed(1)} ms, server peak RSS ${load.rss.toFixed(0)} MB, ${load.loops}`);
console.log(
  `RESULT rows=${ROWS} baseline=${Math.round(baseRate)} rows/s packager=${Math.round(packRate)} rows/s ratio=${ratio.toFixed(2)}x (target >= 0.7x: ${ratio >= 0.7 ? "PASS" : "FAIL"}) ` +
    `peakRSS=${rssFull.toFixed(0)} MB (<= 200: ${rssFull <= 200 ? "PASS" : "FAIL"}) 1M->${ROWS / 1e6}M RSS ${small.rss.toFixed(0)} -> ${rssFull.toFixed(0)} MB = ${((flat - 1) * 100).toFixed(1)}% (within 10%: ${Math.abs(flat - 1) <= 0.1 ? "PASS" : "FAIL"}) ` +
    `status ${load.rate.toFixed(0)}/s errors=${load.errors} (${load.errors === 0 && load.skipped === 0 && load.rate >= RPS * 0.95 ? "PASS" : "FAIL"}) load avg ${loadavg()[0].toFixed(1)}`,
);
await ckan("datastore_delete", { resource_id: rid, force: true }).catch(() => undefined);
rmSync(work, { recursive: true, force: true });
