// Geofence benchmark, the stage alone: the indexed geofence stage of @geowatch/spatial (built dist) calling
// `process()` on already decoded messages, against a naive loop over every fence with turf's booleanPointInPolygon,
// both keeping enter/exit state per track, in one run. Through the broker (NDJSON in, events out, durable state):
// geofence-e2e.bench.mjs.
//
// Fences and points: bench/geofence-data.mjs (10,000 fences cut from country outlines, 20,000 tracks on a random
// walk), in batches of 1,000. After each batch the stage's `commit` runs, as the broker runs it once the batch's
// events are delivered: that is when the state is written (to SQLite in the "SQLite state" figure).
// The naive loop is far too slow for the full stream: it runs on a sample of tracks and its rate is measured there;
// the indexed stage runs the same sample too and its events must equal the naive ones. The sample also holds short
// tracks through points that lie inside two overlapping parts of one MultiPolygon fence (a point inside any part is
// inside). The full indexed run goes first: a small sample batch run before it makes V8 pretenure the message
// objects, which inflates peak RSS.
//
//   pnpm --filter @geowatch/spatial build && node bench/geofence.bench.mjs [--points 2000000] [--fences 10000]
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { arg, makeFences, makeTracks, rng, root, spatialRequire as require } from "./geofence-data.mjs";

const dist = join(root, "packages/spatial/dist/index.js");
if (!existsSync(dist)) {
  console.error("bench/geofence: build first: pnpm --filter @geowatch/spatial build");
  process.exit(1);
}
const { geofence, createFenceIndex, loadFences, sqliteGeofenceState } = await import(pathToFileURL(dist).href);
const { booleanPointInPolygon } = await import(pathToFileURL(require.resolve("@turf/boolean-point-in-polygon")).href);

const N_POINTS = arg("points", 2_000_000);
const N_FENCES = arg("fences", 10_000);
const N_TRACKS = arg("tracks", 20_000);
const N_SQLITE = arg("sqlite-points", 200_000);
const SAMPLE_TRACKS = arg("sample-tracks", 3);
const OVERLAP_TRACKS = arg("overlap-tracks", 6);
const BATCH = 1000;
const rand = rng(20261123);

const t0 = performance.now();
const { fc, cell, vertices } = makeFences(N_FENCES, rand, arg("cell", 1.62));
const features = fc.features;
const tFences = performance.now();
const index = createFenceIndex(loadFences(fc));
const tIndex = performance.now();

const steps = Math.ceil(N_POINTS / N_TRACKS);
const { px: walkX, py: walkY } = makeTracks(features, N_TRACKS, steps, rand);
const total = steps * N_TRACKS;
const nPoints = Math.min(total, N_POINTS);

// Tracks through the overlap of two parts of one MultiPolygon fence: a point inside both parts, found with turf,
// and a straight walk west to east through it (40 steps of 0.01 degree). Appended after the random walks.
const overlapPoints = [];
const ovRand = rng(31337);
for (const f of features) {
  if (overlapPoints.length >= OVERLAP_TRACKS || f.geometry.type !== "MultiPolygon") continue;
  const parts = f.geometry.coordinates.map((p) => ({ p, bb: p[0].reduce((b, [x, y]) => [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)], [Infinity, Infinity, -Infinity, -Infinity]) }));
  search: for (let a = 0; a < parts.length; a++) for (let b = a + 1; b < parts.length; b++) {
    const A = parts[a].bb, B = parts[b].bb;
    const x0 = Math.max(A[0], B[0]), y0 = Math.max(A[1], B[1]), x1 = Math.min(A[2], B[2]), y1 = Math.min(A[3], B[3]);
    if (x0 > x1 || y0 > y1) continue;
    for (let k = 0; k < 200; k++) {
      const x = x0 + (x1 - x0) * ovRand(), y = y0 + (y1 - y0) * ovRand();
      const inA = booleanPointInPolygon([x, y], { type: "Polygon", coordinates: parts[a].p });
      if (inA && booleanPointInPolygon([x, y], { type: "Polygon", coordinates: parts[b].p })) {
        overlapPoints.push({ fence: f.id, x, y });
        break search;
      }
    }
  }
}
const OV_STEPS = 40;
const nOverlap = overlapPoints.length;
// Positions k < total are the walks; the overlap tracks follow (kept apart: copying 2M positions costs peak RSS).
const ovX = new Float64Array(nOverlap * OV_STEPS), ovY = new Float64Array(nOverlap * OV_STEPS);
overlapPoints.forEach((o, t) => {
  for (let s = 0; s < OV_STEPS; s++) {
    ovX[t * OV_STEPS + s] = o.x + (s - OV_STEPS / 2) * 0.01;
    ovY[t * OV_STEPS + s] = o.y;
  }
});
const trackIds = Array.from({ length: N_TRACKS }, (_, t) => `t${t}`);
const overlapIds = overlapPoints.map((_, t) => `overlap${t}`);
const xOf = (k) => (k < total ? walkX[k] : ovX[k - total]);
const yOf = (k) => (k < total ? walkY[k] : ovY[k - total]);
const trackOf = (k) => (k < total ? trackIds[k % N_TRACKS] : overlapIds[Math.floor((k - total) / OV_STEPS)]);

const message = (k) => ({
  value: { type: "Feature", properties: { id: trackOf(k) }, geometry: { type: "Point", coordinates: [xOf(k), yOf(k)] } },
});

/** Positions (k, as xOf/yOf read them) of the sample tracks, in stream order, then the overlap tracks. */
const sample = [];
for (let s = 0; s < steps; s++) for (let t = 0; t < SAMPLE_TRACKS; t++) sample.push(s * N_TRACKS + t);
for (let k = total; k < total + nOverlap * OV_STEPS; k++) sample.push(k);

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
    const x = xOf(k), y = yOf(k), track = trackOf(k);
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
    await out.commit?.();
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
for (let k = 0; k < nPoints; k++) queryHits += index.queryPoint(walkX[k], walkY[k]);
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
    await out.commit?.();
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
  const stage = geofence({ fences: index, trackId: "properties.id", events: ["enter", "exit"], state: { sqlite: join(sqliteDir, "state.db") } });
  await stage.open?.();
  const n = Math.min(N_SQLITE, nPoints);
  let ms = 0;
  for (let b = 0; b < n; b += BATCH) {
    const batch = [];
    for (let k = b; k < Math.min(n, b + BATCH); k++) batch.push(message(k));
    const start = performance.now();
    const out = await stage.process(batch);
    await out.commit?.();
    ms += performance.now() - start;
  }
  await stage.close?.();
  // The commits wrote the state: read back how many tracks it holds.
  const state = sqliteGeofenceState(join(sqliteDir, "state.db"));
  const stored = (await state.get(trackIds)).filter((t) => t !== undefined).length;
  await state.close?.();
  if (stored === 0) throw new Error("the SQLite state holds no track after the run: commits wrote nothing");
  return { n, rate: n / (ms / 1000), stored };
})();
rmSync(sqliteDir, { recursive: true, force: true });

const indexedRate = nPoints / (full.ms / 1000);
const naiveRate = sample.length / (naive.ms / 1000);
const naiveBBoxRate = sample.length / (naiveBBox.ms / 1000);
const rssMB = process.resourceUsage().maxRSS / 1024;
const fmt = (n) => Math.round(n).toLocaleString("en-US");

console.log(`fences: ${fmt(N_FENCES)} (countries-land-10km clipped to ${cell.toFixed(3)} deg cells, ${fmt(vertices)} vertices; built in ${fmt(tFences - t0)} ms, indexed in ${fmt(tIndex - tFences)} ms)`);
console.log(`points: ${fmt(nPoints)} from ${fmt(N_TRACKS)} tracks x ${steps} steps, batches of ${BATCH}, enter/exit state in memory; ${fmt(full.nEvents)} events`);
console.log(`stage only, indexed geofence: ${fmt(indexedRate)} points/s (${fmt(full.ms)} ms in process() + commit(), ${fmt(full.wallMs)} ms with building messages)`);
console.log(`stage only, indexed geofence with SQLite state: ${fmt(sqliteRun.rate)} points/s (first ${fmt(sqliteRun.n)} points, one transaction per batch commit; ${fmt(sqliteRun.stored)} tracks stored)`);
console.log(`index alone (queryPoint, no messages or state): ${fmt(queryRate)} points/s, ${(queryHits / nPoints).toFixed(2)} fences per point`);
console.log(`naive turf loop over all fences: ${fmt(naiveRate)} points/s (sample of ${fmt(sample.length)} points from ${SAMPLE_TRACKS} tracks, ${fmt(naive.ms)} ms; scaled rate)`);
console.log(`naive turf loop with a bbox check first: ${fmt(naiveBBoxRate)} points/s (same sample)`);
console.log(`ratio indexed/naive: ${fmt(indexedRate / naiveRate)}x (indexed/naive+bbox: ${(indexedRate / naiveBBoxRate).toFixed(1)}x)`);
console.log(`sample events agree (indexed = naive = naive+bbox): ${agree} (${idxSample.events.length} events; the sample includes ${nOverlap} tracks through points inside two overlapping parts of one fence: ${overlapPoints.map((o) => o.fence).join(", ") || "none found"})`);
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
  stageOnly: true,
  sqliteStatePointsPerSec: Math.round(sqliteRun.rate),
  sqliteTracksStored: sqliteRun.stored,
  naivePointsPerSec: Math.round(naiveRate),
  naiveBBoxPointsPerSec: Math.round(naiveBBoxRate),
  naiveSamplePoints: sample.length,
  ratio: Math.round(indexedRate / naiveRate),
  sampleAgrees: agree,
  overlapTracks: nOverlap,
  peakRssMB: Math.round(rssMB),
  targetMet: indexedRate >= 1_000_000 && rssMB < 500,
}));
if (!agree || nOverlap === 0) process.exitCode = 1;
