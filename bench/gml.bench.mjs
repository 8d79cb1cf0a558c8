// GML encode + decode against GDAL's ogr2ogr (Debian gdal-bin) on the same data, in the same run:
//   geowatch   one process: read input.geojson, JSON.parse, the gml codec's pack (GML 3.2, WFS 2.0 collection,
//              EPSG:4326 URI, lat lon) to out.gml; then read out.gml, decodeFeatures (parseXml: DOCTYPE check,
//              well-formedness validation, fast-xml-parser) and JSON.stringify a FeatureCollection to back.geojson
//   ogr2ogr    two processes: `ogr2ogr -f GML out.gml input.geojson -dsco FORMAT=GML3.2` and
//              `ogr2ogr -f GeoJSON back.geojson out.gml` (the second parses the GML twice: GDAL scans it for its
//              schema first, as it does for any GML without an .xsd beside it; here it has the .xsd it wrote)
// Input: BENCH_N (default 100,000) mixed-geometry features from gml-data.mjs. Both outputs are checked: the same
// number of features back, and geowatch's back.geojson equal to the input (ids, geometries, property values).
// Runs alternate (BENCH_RUNS, default 3); medians of wall clocks of whole processes. Peak RSS and CPU from GNU time.
// Target: geowatch faster than ogr2ogr (ratio > 1). Needs `pnpm -s turbo run build --filter @geowatch/wfs`.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeFeatures } from "./gml-data.mjs";
import { GNU_TIME, timed } from "./lib/timed.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const WFS = join(here, "..", "packages", "wfs", "dist", "index.js");
const N = Number(process.env.BENCH_N ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

if (process.argv[2] === "--worker") {
  // The geowatch side, in its own process so that its RSS and CPU are its own.
  const [input, gml, back] = process.argv.slice(3);
  const { gmlCodec, decodeFeatures } = await import(WFS);
  const parsed = gmlCodec.parse({ version: "3.2", feature_type: "mixed" });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const codec = gmlCodec.create(parsed.options);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  // Each phase in its own scope, so the encode side's objects are garbage by the time the decode side runs.
  const encode = () => writeFileSync(gml, codec.pack(JSON.parse(readFileSync(input, "utf8")).features));
  encode();
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  const features = decodeFeatures(readFileSync(gml), { maxBytes: 2 ** 31 });
  writeFileSync(back, JSON.stringify({ type: "FeatureCollection", features }));
  const t2 = performance.now();
  const c2 = process.cpuUsage();
  const cpu = (a, b) => (b.user - a.user + b.system - a.system) / 1e6;
  process.stdout.write(JSON.stringify({ encodeMs: t1 - t0, decodeMs: t2 - t1, encodeCpuS: cpu(c0, c1), decodeCpuS: cpu(c1, c2) }));
  process.exit(0);
}

if (!existsSync(WFS)) {
  console.error(`${WFS} is missing: build it first: pnpm -s turbo run build --filter @geowatch/wfs`);
  process.exit(1);
}
if (spawnSync("ogr2ogr", ["--version"]).status !== 0) {
  console.error("ogr2ogr is not installed: apt-get install -y gdal-bin");
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), "gw-gml-bench-"));
const input = join(dir, "input.geojson");
const source = makeFeatures(N);
writeFileSync(input, JSON.stringify({ type: "FeatureCollection", features: source }));
const inputMB = statSync(input).size / 1e6;

function checkOurs(back) {
  const got = JSON.parse(readFileSync(back, "utf8")).features;
  if (got.length !== N) throw new Error(`geowatch: ${got.length} features back, want ${N}`);
  for (let i = 0; i < N; i++) {
    const a = JSON.stringify(got[i]);
    const b = JSON.stringify(source[i]);
    if (a !== b) throw new Error(`geowatch: feature ${i} differs after the round trip:\n${a}\n${b}`);
  }
}

function checkGdal(back) {
  const got = JSON.parse(readFileSync(back, "utf8")).features;
  if (got.length !== N) throw new Error(`ogr2ogr: ${got.length} features back, want ${N}`);
}

async function ours(run) {
  const gml = join(dir, `ours-${run}.gml`);
  const back = join(dir, `ours-${run}.geojson`);
  const r = await timed(process.execPath, [fileURLToPath(import.meta.url), "--worker", input, gml, back], { stdout: "capture" });
  const phases = JSON.parse(r.out);
  const gmlMB = statSync(gml).size / 1e6;
  checkOurs(back);
  rmSync(gml);
  rmSync(back);
  return { ms: r.ms, rssMB: r.rssMB, cpuS: r.cpuS, gmlMB, ...phases };
}

async function gdal(run) {
  const gml = join(dir, `gdal-${run}.gml`);
  const back = join(dir, `gdal-${run}.geojson`);
  const a = await timed("ogr2ogr", ["-f", "GML", gml, input, "-dsco", "FORMAT=GML3.2"]);
  const b = await timed("ogr2ogr", ["-f", "GeoJSON", back, gml]);
  const gmlMB = statSync(gml).size / 1e6;
  checkGdal(back);
  for (const f of [gml, back, gml.replace(/\.gml$/, ".xsd"), gml.replace(/\.gml$/, ".gfs")]) rmSync(f, { force: true });
  return { ms: a.ms + b.ms, rssMB: Math.max(a.rssMB ?? 0, b.rssMB ?? 0), cpuS: (a.cpuS ?? 0) + (b.cpuS ?? 0), gmlMB, encodeMs: a.ms, decodeMs: b.ms, encodeCpuS: a.cpuS, decodeCpuS: b.cpuS };
}

const results = { geowatch: [], ogr2ogr: [] };
const load0 = loadavg();
try {
  for (let run = 0; run < RUNS; run++) {
    for (const [name, fn] of [["geowatch", ours], ["ogr2ogr", gdal]]) {
      const r = await fn(run);
      results[name].push(r);
      console.error(`run ${run + 1}/${RUNS} ${name}: ${Math.round(r.ms)} ms (encode ${Math.round(r.encodeMs)}, decode ${Math.round(r.decodeMs)}), load ${loadavg()[0].toFixed(2)}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const load1 = loadavg();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString("en-US");
console.log(`${fmt(N)} mixed-geometry features (input GeoJSON ${inputMB.toFixed(1)} MB), GeoJSON -> GML 3.2 -> GeoJSON, ${RUNS} alternated runs (medians of wall clocks)`);
console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
const med = {};
for (const name of ["geowatch", "ogr2ogr"]) {
  const rs = results[name];
  const m = (k) => median(rs.map((r) => r[k]));
  med[name] = { ms: m("ms"), encodeMs: m("encodeMs"), decodeMs: m("decodeMs") };
  const usage = GNU_TIME ? `  cpu ${m("cpuS").toFixed(2)} s  peak RSS ${m("rssMB").toFixed(0)} MB` : "";
  console.log(
    `${name.padEnd(9)} ${fmt((N / med[name].ms) * 1000).padStart(8)} features/s round trip  (encode ${fmt((N / med[name].encodeMs) * 1000)}/s, decode ${fmt((N / med[name].decodeMs) * 1000)}/s; GML ${m("gmlMB").toFixed(1)} MB)${usage}   (runs: ${rs.map((r) => Math.round(r.ms)).join(", ")} ms)`,
  );
}
if (GNU_TIME) {
  // On a shared machine wall clocks stretch with the load; CPU seconds are the steadier comparison.
  const c = (name, k) => median(results[name].map((r) => r[k]));
  console.log(
    `cpu seconds geowatch / ogr2ogr: round trip ${c("geowatch", "cpuS").toFixed(2)} / ${c("ogr2ogr", "cpuS").toFixed(2)} = ${(c("ogr2ogr", "cpuS") / c("geowatch", "cpuS")).toFixed(2)}x; ` +
      `encode ${c("geowatch", "encodeCpuS").toFixed(2)} / ${c("ogr2ogr", "encodeCpuS").toFixed(2)} = ${(c("ogr2ogr", "encodeCpuS") / c("geowatch", "encodeCpuS")).toFixed(2)}x; ` +
      `decode ${c("geowatch", "decodeCpuS").toFixed(2)} / ${c("ogr2ogr", "decodeCpuS").toFixed(2)} = ${(c("ogr2ogr", "decodeCpuS") / c("geowatch", "decodeCpuS")).toFixed(2)}x (geowatch's phases measured in-process, node start-up not included)`,
  );
}
const ratio = med.ogr2ogr.ms / med.geowatch.ms;
console.log(`ratio geowatch/ogr2ogr (features/s): ${ratio.toFixed(2)}x (encode ${(med.ogr2ogr.encodeMs / med.geowatch.encodeMs).toFixed(2)}x, decode ${(med.ogr2ogr.decodeMs / med.geowatch.decodeMs).toFixed(2)}x) target > 1: ${ratio > 1 ? "PASS" : "FAIL"}`);
process.exit(ratio > 1 ? 0 : 1);
