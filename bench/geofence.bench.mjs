// Geofence benchmark: the indexed geofence stage of @geowatch/spatial (built dist) against a naive loop over
// every fence with turf's booleanPointInPolygon, both keeping enter/exit state per track, in one run.
//
// Fences: the real country outlines of @geo-maps/countries-land-10km (holes included) clipped to a grid of cells
// (Sutherland-Hodgman per ring), one fence per (country, cell), 10,000 of them.
// Points: tracks doing a random walk (heading drifts, 2-10 km per step), 70% starting on a fence vertex so most
// points fall on land; the stream is step-major (every track's step 1, then step 2, ...), in batches of 1,000.
// The naive loop is far too slow for the full stream: it runs on a sample of tracks and its rate is measured there;
// the indexed stage runs the same sample too and its events must equal the naive ones. The full indexed run goes
// first: a small sample batch run before it makes V8 pretenure the message objects, which inflates peak RSS.
//
//   pnpm --filter @geowatch/spatial build && node bench/geofence.bench.mjs [--points 2000000] [--fences 10000]
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = join(root, "packages/spatial");
const dist = join(pkg, "dist/index.js");
if (!existsSync(dist)) {
  console.error("bench/geofence: build first: pnpm --filter @geowatch/spatial build");
  process.exit(1);
}
const { geofence, createFenceIndex, loadFences, sqliteGeofenceState } = await import(pathToFileURL(dist).href);
const require = createRequire(join(pkg, "package.json"));
const { booleanPointInPolygon } = await import(pathToFileURL(require.resolve("@turf/boolean-point-in-polygon")).href);

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N_POINTS = arg("points", 2_000_000);
const N_FENCES = arg("fences", 10_000);
const N_TRACKS = arg("tracks", 20_000);
const N_SQLITE = arg("sqlite-points", 200_000);
const SAMPLE_TRACKS = arg("sample-tracks", 3);
const BATCH = 1000;

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(20261123);

// ---- fences: countries clipped to grid cells ----
function clipRing(ring, x0, y0, x1, y1) {
  let pts = ring.slice(0, -1);
  const edges = [
    (p) => p[0] >= x0, (p) => p[0] <= x1, (p) => p[1] >= y0, (p) => p[1] <= y1,
  ];
  const cut = [
    (a, b) => [x0, a[1] + ((x0 - a[0]) * (b[1] - a[1])) / (b[0] - a[0])],
    (a, b) => [x1, a[1] + ((x1 - a[0]) * (b[1] - a[1])) / (b[0] - a[0])],
    (a, b) => [a[0] + ((y0 - a[1]) * (b[0] - a[0])) / (b[1] - a[1]), y0],
    (a, b) => [a[0] + ((y1 - a[1]) * (b[0] - a[0])) / (b[1] - a[1]), y1],
  ];
  for (let e = 0; e < 4 && pts.length > 0; e++) {
    const inside = edges[e];
    const out = [];
    for (let k = 0; k < pts.length; k++) {
      const a = pts[(k + pts.length - 1) % pts.length], b = pts[k];
      if (inside(b)) {
        if (!inside(a)) out.push(cut[e](a, b));
        out.push(b);
      } else if (inside(a)) out.push(cut[e](a, b));
    }
    pts = out;
  }
  if (pts.length < 3) return null;
  let area = 0;
  for (let k = 0; k < pts.length; k++) {
    const a = pts[k], b = pts[(k + 1) % pts.length];
    area += a[0] * b[1] - b[0] * a[1];
  }
  if (Math.abs(area) < 1e-9) return null;
  return [...pts, pts[0]];
}

function gridFences(countries, cell) {
  const features = [];
  for (const c of countries.features) {
    const polys = c.geometry.type === "Polygon" ? [c.geometry.coordinates] : c.geometry.coordinates;
    const byCell = new Map();
    for (const poly of polys) {
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      for (const [x, y] of poly[0]) {
        minX = Math.min(minX, x); minY = Math.min(minY, y); maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
      }
      for (let i = Math.floor(minX / cell); i * cell <= maxX; i++) {
        for (let j = Math.floor(minY / cell); j * cell <= maxY; j++) {
          const x0 = i * cell, y0 = j * cell, x1 = x0 + cell, y1 = y0 + cell;
          const outer = clipRing(poly[0], x0, y0, x1, y1);
          if (!outer) continue;
          const rings = [outer];
          for (const h of poly.slice(1)) {
            const ch = clipRing(h, x0, y0, x1, y1);
            if (ch) rings.push(ch);
          }
          const key = `${i}:${j}`;
          if (!byCell.has(key)) byCell.set(key, []);
          byCell.get(key).push(rings);
        }
      }
    }
    for (const [key, parts] of byCell) {
      features.push({
        type: "Feature",
        id: `${c.properties.A3}:${key}`,
        properties: {},
        geometry: parts.length === 1 ? { type: "Polygon", coordinates: parts[0] } : { type: "MultiPolygon", coordinates: parts },
      });
    }
  }
  return features;
}

const t0 = performance.now();
const countries = JSON.parse(readFileSync(require.resolve("@geo-maps/countries-land-10km/map.geo.json"), "utf8"));
let cell = arg("cell", 1.62);
let features = gridFences(countries, cell);
while (features.length < N_FENCES) {
  cell *= 0.9;
  features = gridFences(countries, cell);
}
// Keep exactly N_FENCES, dropping a random few so the cover stays even.
for (let k = features.length - 1; k > 0; k--) {
  const j = Math.floor(rand() * (k + 1));
  [features[k], features[j]] = [features[j], features[k]];
}
features.length = N_FENCES;
const fc = { type: "FeatureCollection", features };
let vertices = 0;
for (const f of features) {
  const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
  for (const p of polys) for (const r of p) vertices += r.length;
}
const tFences = performance.now();
const index = createFenceIndex(loadFences(fc));
const tIndex = performance.now();

// ---- points: tracks on a random walk ----
const steps = Math.ceil(N_POINTS / N_TRACKS);
const xs = new Float64Array(N_TRACKS), ys = new Float64Array(N_TRACKS), heading = new Float64Array(N_TRACKS), speed = new Float64Array(N_TRACKS);
const allVerts = features.map((f) => (f.geometry.type === "Polygon" ? f.geometry.coordinates[0][0] : f.geometry.coordinates[0][0][0]));
for (let t = 0; t < N_TRACKS; t++) {
  if (rand() < 0.7) {
    const v = allVerts[Math.floor(rand() * allVerts.length)];
    xs[t] = v[0] + (rand() - 0.5) * 0.2;
    ys[t] = v[1] + (rand() - 0.5) * 0.2;
  } else {
    xs[t] = -180 + 360 * rand();
    ys[t] = -60 + 140 * rand();
  }
  heading[t] = 2 * Math.PI * rand();
  speed[t] = 0.02 + 0.08 * rand(); // degrees per step, about 2-10 km
}
const trackIds = Array.from({ length: N_TRACKS }, (_, t) => `t${t}`);
// All positions, step-major: px[s * N_TRACKS + t].
const total = steps * N_TRACKS;
const px = new Float64Array(total), py = new Float64Array(total);
for (let s = 0; s < steps; s++) {
  for (let t = 0; t < N_TRACKS; t++) {
    heading[t] += (rand() - 0.5) * 0.6;
    xs[t] += speed[t] * Math.cos(heading[t]);
    ys[t] += speed[t] * Math.sin(heading[t]);
    if (xs[t] > 180) xs[t] -= 360;
    if (xs[t] < -180) xs[t] += 360;
    if (ys[t] > 85 || ys[t] < -85) heading[t] = -heading[t];
    ys[t] = Math.max(-85, Math.min(85, ys[t]));
    px[s * N_TRACKS + t] = xs[t];
    py[s * N_TRACKS + t] = ys[t];
  }
}
const nPoints = Math.min(total, N_POINTS);

const message = (k) => ({
  value: { type: "Feature", properties: { id: trackIds[k % N_TRACKS] }, geometry: { type: "Point", coordinates: [px[k], py[k]] } },
});

/** Positions (indices into px/py) of the sample tracks, in stream order. */
const sample = [];
for (let s = 0; s < steps; s++) for (let t = 0; t < SAMPLE_TRACKS; t++) sample.push(s * N_TRACKS + t);

// ---- naive: every fence, turf, enter/exit state in a Map ----
function naiveRun(keys, withBBox) {
  const state = new Map();
  const bboxes = features.map((f) => {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    for (const p of polys) for (const [x, y] of p[0]) {
      minX = Math.min(minX, x); minY = Math.min(minY, y); maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
    }
    return [minX, minY, maxX, maxY];
  });
  const events = [];
  const start = performance.now();
  for (const k of keys) {
    const x = px[k], y = py[k], track = trackIds[k % N_TRACKS];
    const now = [];
    for (let i = 0; i < features.length; i++) {
      if (withBBox) {
        const b = bboxes[i];
        if (x < b[0] || y < b[1] || x > b[2] || y > b[3]) continue;
      }
      if (booleanPointInPolygon([x, y], features[i])) now.push(features[i].id);
    }
    now.sort();
    const before = state.get(track) ?? [];
    for (const f of before) if (!now.includes(f)) events.push(`exit:${f}:${track}`);
    for (const f of now) if (!before.includes(f)) events.push(`enter:${f}:${track}`);
    state.set(track, now);
  }
  return { events, ms: performance.now() - start };
}

async function indexedRun(keys) {
  const stage = geofence({ fences: index, trackId: "properties.id", events: ["enter", "exit"] });
  const events = [];
  let ms = 0;
  let nEvents = 0;
  for (let b = 0; b < keys.length; b += BATCH) {
    const batch = [];
    for (let k = b; k < Math.min(keys.length, b + BATCH); k++) batch.push(message(keys[k]));
    const start = performance.now();
    const out = await stage.process(batch);
    ms += performance.now() - start;
    nEvents += out.pass.length;
    if (keys.length <= 100_000) for (const m of out.pass) events.push(`${m.metadata.actiontype}:${m.metadata.fence}:${m.metadata.track}`);
  }
  await stage.close?.();
  return { events, ms, nEvents };
}

// The index alone (no messages, no state), over the same stream.
const tQuery = performance.now();
let queryHits = 0;
for (let k = 0; k < nPoints; k++) queryHits += index.queryPoint(px[k], py[k]);
const queryRate = nPoints / ((performance.now() - tQuery) / 1000);

// The full stream through the indexed stage.
const full = await (async () => {
  const stage = geofence({ fences: index, trackId: "properties.id", events: ["enter", "exit"] });
  let ms = 0, nEvents = 0;
  const wall = performance.now();
  for (let b = 0; b < nPoints; b += BATCH) {
    const batch = [];
    for (let k = b; k < Math.min(nPoints, b + BATCH); k++) batch.push(message(k));
    const start = performance.now();
    const out = await stage.process(batch);
    ms += performance.now() - start;
    nEvents += out.pass.length;
  }
  await stage.close?.();
  return { ms, nEvents, wallMs: performance.now() - wall };
})();

// Correctness on the sample: the indexed stage's events must equal the naive loop's.
const idxSample = await indexedRun(sample);
const naive = naiveRun(sample, false);
const naiveBBox = naiveRun(sample, true);
const agree = JSON.stringify(idxSample.events) === JSON.stringify(naive.events) && JSON.stringify(naive.events) === JSON.stringify(naiveBBox.events);

// The same stage with its state in SQLite, on the first points of the stream.
const sqliteDir = mkdtempSync(join(tmpdir(), "gw-geofence-bench-"));
const sqliteRun = await (async () => {
  const stage = geofence({ fences: index, trackId: "properties.id", events: ["enter", "exit"], state: sqliteGeofenceState(join(sqliteDir, "state.db")) });
  const n = Math.min(N_SQLITE, nPoints);
  let ms = 0;
  for (let b = 0; b < n; b += BATCH) {
    const batch = [];
    for (let k = b; k < Math.min(n, b + BATCH); k++) batch.push(message(k));
    const start = performance.now();
    await stage.process(batch);
    ms += performance.now() - start;
  }
  return { n, rate: n / (ms / 1000) };
})();
rmSync(sqliteDir, { recursive: true, force: true });

const indexedRate = nPoints / (full.ms / 1000);
const naiveRate = sample.length / (naive.ms / 1000);
const naiveBBoxRate = sample.length / (naiveBBox.ms / 1000);
const rssMB = process.resourceUsage().maxRSS / 1024;
const fmt = (n) => Math.round(n).toLocaleString("en-US");

console.log(`fences: ${fmt(N_FENCES)} (countries-land-10km clipped to ${cell.toFixed(3)} deg cells, ${fmt(vertices)} vertices; built in ${fmt(tFences - t0)} ms, indexed in ${fmt(tIndex - tFences)} ms)`);
console.log(`points: ${fmt(nPoints)} from ${fmt(N_TRACKS)} tracks x ${steps} steps, batches of ${BATCH}, enter/exit state in memory; ${fmt(full.nEvents)} events`);
console.log(`indexed geofence stage: ${fmt(indexedRate)} points/s (${fmt(full.ms)} ms in process(), ${fmt(full.wallMs)} ms with building messages)`);
console.log(`indexed geofence stage with SQLite state: ${fmt(sqliteRun.rate)} points/s (first ${fmt(sqliteRun.n)} points, one transaction per batch)`);
console.log(`index alone (queryPoint, no messages or state): ${fmt(queryRate)} points/s, ${(queryHits / nPoints).toFixed(2)} fences per point`);
console.log(`naive turf loop over all fences: ${fmt(naiveRate)} points/s (sample of ${fmt(sample.length)} points from ${SAMPLE_TRACKS} tracks, ${fmt(naive.ms)} ms; scaled rate)`);
console.log(`naive turf loop with a bbox check first: ${fmt(naiveBBoxRate)} points/s (same sample)`);
console.log(`ratio indexed/naive: ${fmt(indexedRate / naiveRate)}x (indexed/naive+bbox: ${(indexedRate / naiveBBoxRate).toFixed(1)}x)`);
console.log(`sample events agree (indexed = naive = naive+bbox): ${agree} (${idxSample.events.length} events)`);
console.log(`peak RSS: ${rssMB.toFixed(0)} MB`);
console.log(JSON.stringify({
  bench: "geofence",
  fences: N_FENCES,
  vertices,
  points: nPoints,
  tracks: N_TRACKS,
  events: full.nEvents,
  indexedPointsPerSec: Math.round(indexedRate),
  indexOnlyPointsPerSec: Math.round(queryRate),
  sqliteStatePointsPerSec: Math.round(sqliteRun.rate),
  naivePointsPerSec: Math.round(naiveRate),
  naiveBBoxPointsPerSec: Math.round(naiveBBoxRate),
  naiveSamplePoints: sample.length,
  ratio: Math.round(indexedRate / naiveRate),
  sampleAgrees: agree,
  peakRssMB: Math.round(rssMB),
  targetMet: indexedRate >= 1_000_000 && rssMB < 500,
}));
if (!agree) process.exitCode = 1;
