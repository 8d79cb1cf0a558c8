// The wfs writer (producer) against a raw WFS-T Transaction on the same QGIS Server layer, in the same run:
//   raw       one POST of a hand-built Transaction with one Insert per feature (no id lookup, the response not read
//             beyond its status): what the server alone costs
//   geowatch  wfsProducer.send of the same features as create envelopes with id_property uid: the id lookups
//             (GetFeature, 50 ids per request), the Transaction with handles, the TransactionResponse parsed into
//             one result per record
// Each run empties the layer first and checks afterwards that it holds exactly BENCH_N features. Runs alternate
// (BENCH_RUNS, default 2); medians. Ratio = raw time / geowatch time (1.0: the writer adds nothing).
// Needs QGIS Server (bash .ci/servers/qgis.sh start) and `pnpm -s turbo run build --filter @geowatch/wfs`.
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const WFS = join(here, "..", "packages", "wfs", "dist", "index.js");
const N = Number(process.env.BENCH_N ?? 300);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const LAYER = "bench";

function qgisUrl() {
  if (process.env.GEOWATCH_QGIS_URL) return process.env.GEOWATCH_QGIS_URL;
  const env = join(here, "..", ".servers", "env", "qgis.env");
  const m = existsSync(env) ? /GEOWATCH_QGIS_URL=(\S+)/.exec(readFileSync(env, "utf8")) : null;
  if (!m) {
    console.error("GEOWATCH_QGIS_URL is not set: bash .ci/servers/qgis.sh start");
    process.exit(1);
  }
  return m[1];
}
if (!existsSync(WFS)) {
  console.error(`${WFS} is missing: pnpm -s turbo run build --filter @geowatch/wfs`);
  process.exit(1);
}
const url = qgisUrl();
const { wfsProducer } = await import(WFS);
const NS = 'xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:gml="http://www.opengis.net/gml" xmlns:qgs="http://www.qgis.org/gml"';

async function post(body) {
  const res = await fetch(url, { method: "POST", body, headers: { "content-type": "text/xml" } });
  const text = await res.text();
  if (!res.ok || /ExceptionReport/.test(text)) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text;
}
async function ids() {
  const res = await fetch(`${url}?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME=${LAYER}&OUTPUTFORMAT=application/json&PROPERTYNAME=uid`);
  return (await res.json()).features.map((f) => f.id);
}
async function empty() {
  const all = await ids();
  // 50 FeatureIds per Delete: QGIS Server 3.22 deletes nothing above ~85.
  for (let i = 0; i < all.length; i += 50) {
    await post(`<wfs:Transaction service="WFS" version="1.1.0" ${NS}><wfs:Delete typeName="qgs:${LAYER}"><ogc:Filter>${all.slice(i, i + 50).map((x) => `<ogc:FeatureId fid="${x}"/>`).join("")}</ogc:Filter></wfs:Delete></wfs:Transaction>`);
  }
}
const feature = (i, run) => ({ uid: `b${run}-${i}`, name: `feature ${i}`, value: i / 4, count: i, lon: (i % 360) - 180 + 0.5, lat: ((i * 7) % 170) - 85 + 0.25 });

async function raw(run) {
  const acts = Array.from({ length: N }, (_, i) => {
    const f = feature(i, run);
    return `<wfs:Insert><qgs:${LAYER}><qgs:geometry><gml:Point srsName="EPSG:4326"><gml:pos>${f.lon} ${f.lat}</gml:pos></gml:Point></qgs:geometry><qgs:uid>${f.uid}</qgs:uid><qgs:name>${f.name}</qgs:name><qgs:value>${f.value}</qgs:value><qgs:count>${f.count}</qgs:count></qgs:${LAYER}></wfs:Insert>`;
  });
  const t = performance.now();
  await post(`<wfs:Transaction service="WFS" version="1.1.0" ${NS}>${acts.join("")}</wfs:Transaction>`);
  return performance.now() - t;
}

async function geowatch(run) {
  const p = wfsProducer({ url, allowPrivate: true, typeName: LAYER, idProperty: "uid", srsName: "EPSG:4326", axisOrder: "lonlat", nulls: "omit", maxBatch: N, timeoutMs: 600_000 });
  const records = Array.from({ length: N }, (_, i) => {
    const f = feature(i, run);
    return { value: JSON.stringify({ metadata: { actiontype: "create" }, data: { type: "Feature", geometry: { type: "Point", coordinates: [f.lon, f.lat] }, properties: { uid: f.uid, name: f.name, value: f.value, count: f.count } } }) };
  });
  const t = performance.now();
  const results = await p.send(records);
  const ms = performance.now() - t;
  await p.close();
  const bad = results.filter((r) => !r.ok);
  if (bad.length) throw new Error(`${bad.length} records failed: ${bad[0].error.message}`);
  return ms;
}

const times = { raw: [], geowatch: [] };
for (let run = 0; run < RUNS; run++) {
  for (const side of run % 2 === 0 ? ["raw", "geowatch"] : ["geowatch", "raw"]) {
    await empty();
    const ms = side === "raw" ? await raw(run) : await geowatch(run);
    const n = (await ids()).length;
    if (n !== N) throw new Error(`${side}: the layer holds ${n} features, expected ${N}`);
    times[side].push(ms);
    console.log(`run ${run + 1} ${side}: ${N} inserts in ${(ms / 1000).toFixed(2)} s (${Math.round((N / ms) * 1000)} features/s)`);
  }
}
await empty();
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const r = median(times.raw);
const g = median(times.geowatch);
console.log(`\nwfs writer vs raw Transaction, ${N} inserts into QGIS Server, median of ${RUNS}:`);
console.log(`  raw       ${(r / 1000).toFixed(2)} s  ${Math.round((N / r) * 1000)} features/s`);
console.log(`  geowatch  ${(g / 1000).toFixed(2)} s  ${Math.round((N / g) * 1000)} features/s`);
console.log(`  ratio (raw / geowatch): ${(r / g).toFixed(2)}x`);
console.log(`  peak RSS of the bench process (geowatch side in it): ${Math.round(process.resourceUsage().maxRSS / 1024)} MB; load average ${loadavg()[0].toFixed(1)}`);
