// Registry benchmarks (issue 12), each against a baseline or target measured in the same run:
//   parse+index   a WMS 1.3.0 capabilities document with BENCH_LAYERS (10,000) layers: the registry's parse
//                 (fast-xml-parser, no entity expansion) plus writing every layer into the SQLite index (FTS5 +
//                 R*Tree), against OWSLib 0.35 only parsing the same bytes (WebMapService(xml=...), every layer's
//                 name, title, bbox and keywords read) in its own Python process; target >= 5x faster
//   search        p50/p95 of BENCH_QUERIES (300) searches with text + bbox + time filters (and the count) on
//                 BENCH_ROWS (100,000) layers, on SQLite and on PostgreSQL + PostGIS; target p95 < 50 ms
//   /api/search   the HTTP Search API (a `geowatch-registry serve` process on the SQLite index) at BENCH_RATE
//                 (200) requests/s for BENCH_SECONDS (10) s, open loop, on loopback: errors, p95, achieved rate
// Needs: the registry built (pnpm -s turbo run build --filter @geowatch/registry), OWSLib
// (GEOWATCH_REGISTRY_OWSLIB_PYTHON from `bash .ci/servers/registry-py.sh start`), PostgreSQL (GEOWATCH_PG_URL from
// `bash .ci/servers/postgres.sh start`). BENCH_SKIP_PG=1 skips PostGIS; BENCH_PARSE_ONLY=1 runs parse+index alone. BENCH_WARMUP (default 1) untimed parse+index runs come first.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const registryDir = join(here, "..", "apps", "registry");
const { parseWmsCapabilities, sqliteStorage, postgresStorage } = await import(join(registryDir, "dist", "index.js"));
const pg = (await import(join(registryDir, "node_modules", "pg", "lib", "index.js"))).default;

const LAYERS = Number(process.env.BENCH_LAYERS ?? 10_000);
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const dir = mkdtempSync(join(tmpdir(), "registry-bench-"));
let peakRss = 0;
const sampleRss = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
const rssTimer = setInterval(sampleRss, 50);

// A fixed pseudo-random sequence, so every run measures the same data and queries.
let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const WORDS = "river road lake forest flood census soil water rain snow ice glacier coast port rail bridge city town farm crop wheat rice corn cattle fish reef coral wind solar power grid mine oil gas pipeline border park trail hill valley canyon desert dune delta marsh wetland bay island cape peak volcano quake fault storm cyclone drought fire smoke air noise traffic bus tram metro school hospital clinic church market zone parcel building roof street address district county state nation region basin aquifer well spring dam canal levee sewer drain heat cold temperature pressure humidity cloud radar satellite imagery elevation slope aspect contour bathymetry depth tide current wave salinity plankton bird mammal insect plant tree species habitat range migration population density income housing employment health disease vaccine".split(" ");
const pick = () => WORDS[Math.floor(rand() * WORDS.length)];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const fmt = (n, d = 1) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

function capabilities(n) {
  const layers = [];
  for (let i = 0; i < n; i++) {
    const x = rand() * 340 - 170;
    const y = rand() * 160 - 80;
    const w = rand() * 10;
    layers.push(`<Layer queryable="1"><Name>layer_${i}</Name><Title>${pick()} ${pick()} ${i}</Title><Abstract>${pick()} ${pick()} ${pick()} of the ${pick()}</Abstract><KeywordList><Keyword>${pick()}</Keyword><Keyword>${pick()}</Keyword></KeywordList><CRS>EPSG:4326</CRS><CRS>EPSG:3857</CRS><EX_GeographicBoundingBox><westBoundLongitude>${x.toFixed(4)}</westBoundLongitude><eastBoundLongitude>${(x + w).toFixed(4)}</eastBoundLongitude><southBoundLatitude>${y.toFixed(4)}</southBoundLatitude><northBoundLatitude>${Math.min(90, y + w).toFixed(4)}</northBoundLatitude></EX_GeographicBoundingBox><BoundingBox CRS="EPSG:4326" minx="${y.toFixed(4)}" miny="${x.toFixed(4)}" maxx="${Math.min(90, y + w).toFixed(4)}" maxy="${(x + w).toFixed(4)}"/><Dimension name="time" units="ISO8601" default="2013-06-01">2013-01-01/2013-12-31/P1D</Dimension><Style><Name>default</Name><Title>default</Title></Style></Layer>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink"><Service><Name>WMS</Name><Title>Bench WMS</Title><Abstract>generated</Abstract><OnlineResource xlink:href="http://bench.test/wms"/></Service><Capability><Request><GetCapabilities><Format>text/xml</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://bench.test/wms?"/></Get></HTTP></DCPType></GetCapabilities><GetMap><Format>image/png</Format><Format>image/jpeg</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://bench.test/wms?"/></Get></HTTP></DCPType></GetMap></Request><Exception><Format>XML</Format></Exception><Layer><Title>root</Title><CRS>EPSG:4326</CRS>${layers.join("")}</Layer></Capability></WMS_Capabilities>`;
}

const OWSLIB = `
import sys, time
from owslib.wms import WebMapService
data = open(sys.argv[1], "rb").read()
t = time.perf_counter()
c = time.process_time()
w = WebMapService("http://bench.test/wms", version="1.3.0", xml=data)
rows = [(n, l.title, l.boundingBoxWGS84, l.keywords) for n, l in w.contents.items()]
print(len(rows), (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
`;

async function parseIndex() {
  const xml = capabilities(LAYERS);
  const file = join(dir, "caps.xml");
  writeFileSync(file, xml);
  const py = process.env.GEOWATCH_REGISTRY_OWSLIB_PYTHON;
  if (!py) throw new Error("GEOWATCH_REGISTRY_OWSLIB_PYTHON is not set: bash .ci/servers/registry-py.sh start && source .servers/env/registry-py.env");
  writeFileSync(join(dir, "owslib_parse.py"), OWSLIB);
  const ours = [];
  const parseOnly = [];
  const owslib = [];
  const oursCpu = [];
  const owslibCpu = [];
  const cpuMs = (u) => (u.user + u.system) / 1000;
  // One untimed parse+index first (BENCH_WARMUP=0 turns it off): a harvest worker parses document after document,
  // so the timed runs are the compiled code's, as OWSLib's are (its imports are outside its timer too).
  for (let w = 0; w < Number(process.env.BENCH_WARMUP ?? 1); w++) {
    const storage = sqliteStorage(join(dir, `warmup-${w}.db`));
    await storage.init();
    const svc = await storage.addService({ url: "http://bench.test/wms", type: "OGC:WMS" });
    await storage.recordHarvest(svc.id, { ok: true, layers: parseWmsCapabilities(xml, "http://bench.test/wms").layers });
    await storage.close();
  }
  for (let run = 0; run < RUNS; run++) {
    const storage = sqliteStorage(join(dir, `parse-${run}.db`));
    await storage.init();
    const svc = await storage.addService({ url: "http://bench.test/wms", type: "OGC:WMS" });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const h = parseWmsCapabilities(xml, "http://bench.test/wms");
    const t1 = performance.now();
    const n = await storage.recordHarvest(svc.id, { ok: true, layers: h.layers });
    const t2 = performance.now();
    oursCpu.push(cpuMs(process.cpuUsage(c0)));
    sampleRss();
    if (n !== LAYERS + 0 || h.layers.length !== LAYERS) throw new Error(`indexed ${n} of ${LAYERS} layers`);
    await storage.close();
    ours.push(t2 - t0);
    parseOnly.push(t1 - t0);
    const r = spawnSync(py, [join(dir, "owslib_parse.py"), file], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`OWSLib failed: ${r.stderr}`);
    const [count, ms, cpu] = r.stdout.trim().split(/\s+/).map(Number);
    if (count < LAYERS) throw new Error(`OWSLib read ${count} layers`);
    owslib.push(ms);
    owslibCpu.push(cpu);
  }
  const ratio = median(owslib) / median(ours);
  console.log(`parse+index ${LAYERS} layers (${fmt(xml.length / 1e6)} MB): registry ${fmt(median(ours))} ms (parse ${fmt(median(parseOnly))} ms + index ${fmt(median(ours) - median(parseOnly))} ms; runs ${ours.map((x) => fmt(x, 0)).join(" / ")}), OWSLib parse only ${fmt(median(owslib))} ms (runs ${owslib.map((x) => fmt(x, 0)).join(" / ")}): ${fmt(ratio, 2)}x faster (target >= 5x) ${ratio >= 5 ? "MET" : "NOT MET"}; CPU (steadier on a loaded machine; process-wide, GC threads included): registry ${fmt(median(oursCpu), 0)} ms vs OWSLib ${fmt(median(owslibCpu), 0)} ms = ${fmt(median(owslibCpu) / median(oursCpu), 2)}x`);
}

function layerRows(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = rand() * 340 - 170;
    const y = rand() * 160 - 80;
    const w = rand() * 8 + 0.1;
    const start = Date.UTC(2000, 0, 1) + Math.floor(rand() * 20 * 365) * 86_400_000;
    out.push({
      identifier: `urn:bench:${i}`,
      name: `l${i}`,
      title: `${pick()} ${pick()} ${pick()}`,
      abstract: `${pick()} ${pick()} ${pick()} ${pick()} ${pick()} ${pick()}`,
      keywords: [pick(), pick()],
      bbox: [x, y, Math.min(180, x + w), Math.min(90, y + w)],
      crs: ["EPSG:4326"],
      timeStart: start,
      timeEnd: start + Math.floor(rand() * 365) * 86_400_000,
      type: "OGC:WMS",
      url: "http://bench.test/wms",
      owner: `user${i % 50}`,
    });
  }
  return out;
}

function queries(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = rand() * 300 - 150;
    const y = rand() * 120 - 60;
    const y0 = 2000 + Math.floor(rand() * 18);
    out.push({ text: pick(), bbox: [x, y, x + 30, y + 20], timeFrom: Date.UTC(y0, 0, 1), timeTo: Date.UTC(y0 + 2, 0, 1), limit: 10, offset: 0 });
  }
  return out;
}

async function searchBench(name, storage, rows, qs) {
  await storage.init();
  const svc = await storage.addService({ url: "http://bench.test/wms", type: "OGC:WMS" });
  const t0 = performance.now();
  await storage.recordHarvest(svc.id, { ok: true, layers: rows });
  const loadMs = performance.now() - t0;
  for (const q of qs.slice(0, 20)) await storage.search(q); // warm caches
  const times = [];
  let matched = 0;
  for (const q of qs) {
    const s = performance.now();
    const r = await storage.search(q);
    times.push(performance.now() - s);
    matched += r.total;
    sampleRss();
  }
  const p95 = pct(times, 95);
  console.log(`search ${name}: ${ROWS.toLocaleString("en-US")} layers loaded in ${fmt(loadMs / 1000)} s; ${qs.length} queries text+bbox+time (+count), ${fmt(matched / qs.length)} matches on average: p50 ${fmt(pct(times, 50), 2)} ms, p95 ${fmt(p95, 2)} ms, max ${fmt(Math.max(...times), 2)} ms (target p95 < 50 ms) ${p95 < 50 ? "MET" : "NOT MET"}`);
}

async function loadTest(dbPath, qs) {
  const bin = join(registryDir, "bin", "geowatch-registry.js");
  const child = spawn(process.execPath, [bin, "serve", "--db", dbPath, "--port", "0", "--workers", "0", "--no-scheduler", "--quiet"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, GEOWATCH_REGISTRY_JOBS: join(dir, "jobs.db") },
  });
  const base = await new Promise((resolve, reject) => {
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]);
    });
    child.on("exit", (c) => reject(new Error(`serve exited ${c}: ${err}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const get = (path) =>
    new Promise((resolve) => {
      const s = performance.now();
      const req = http.get(`${base}${path}`, { agent }, (res) => {
        let n = 0;
        res.on("data", (c) => (n += c.length));
        res.on("end", () => resolve({ ok: res.statusCode === 200 && n > 0, ms: performance.now() - s }));
      });
      req.on("error", () => resolve({ ok: false, ms: performance.now() - s }));
      req.setTimeout(10_000, () => req.destroy());
    });
  const paths = qs.map((q) => {
    const p = new URLSearchParams({ "q.text": q.text, "q.geo": `[${q.bbox[1]},${q.bbox[0]} TO ${q.bbox[3]},${q.bbox[2]}]`, "q.time": `[${new Date(q.timeFrom).toISOString().slice(0, 10)} TO ${new Date(q.timeTo).toISOString().slice(0, 10)}]`, "d.docs.limit": "10" });
    return `/api/search?${p}`;
  });
  // The server's CPU seconds (utime + stime from /proc), so its cost per request shows apart from the machine's load.
  const cpu = () => {
    const f = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const cpu0 = cpu();
  const total = RATE * SECONDS;
  const results = [];
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(get(paths[i % paths.length]).then((r) => results.push(r)));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  const serverCpu = cpu() - cpu0;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  agent.destroy();
  const errors = results.filter((r) => !r.ok).length;
  const ms = results.map((r) => r.ms);
  console.log(`/api/search at ${RATE} req/s for ${SECONDS} s on ${ROWS.toLocaleString("en-US")} layers (SQLite, a serve process, loopback): ${results.length} requests in ${fmt(elapsed, 2)} s = ${fmt(results.length / elapsed)} req/s, ${errors} errors, p50 ${fmt(pct(ms, 50), 2)} ms, p95 ${fmt(pct(ms, 95), 2)} ms, max ${fmt(Math.max(...ms), 2)} ms; server CPU ${fmt(serverCpu, 2)} s = ${fmt((serverCpu * 1000) / results.length, 2)} ms per request ${errors === 0 && results.length / elapsed >= RATE * 0.95 ? "MET" : "NOT MET"}`);
}

console.log(`registry bench: ${new Date().toISOString()}, load avg ${loadavg().map((x) => x.toFixed(1)).join(" ")}, node ${process.version}`);
try {
  await parseIndex();
  if (process.env.BENCH_PARSE_ONLY) {
    clearInterval(rssTimer);
    rmSync(dir, { recursive: true, force: true });
    console.log(`peak RSS of the bench process: ${Math.round(peakRss / 1e6)} MB`);
    process.exit(0);
  }
  const rows = layerRows(ROWS);
  const qs = queries(QUERIES);
  const dbPath = join(dir, "search.db");
  await searchBench("SQLite (FTS5 + R*Tree)", sqliteStorage(dbPath), rows, qs);
  if (!process.env.BENCH_SKIP_PG) {
    const base = process.env.GEOWATCH_PG_URL;
    if (!base) throw new Error("GEOWATCH_PG_URL is not set: bash .ci/servers/postgres.sh start && source .servers/env/postgres.env (or BENCH_SKIP_PG=1)");
    const name = `registry_bench_${process.pid}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const storage = postgresStorage(base.replace(/\/[^/]*$/, `/${name}`));
    try {
      await searchBench("PostgreSQL 15 + PostGIS (tsvector GIN + GiST)", storage, rows, qs);
    } finally {
      await storage.close();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  }
  await loadTest(dbPath, qs);
  console.log(`peak RSS of the bench process: ${Math.round(peakRss / 1e6)} MB`);
} finally {
  clearInterval(rssTimer);
  rmSync(dir, { recursive: true, force: true });
}
