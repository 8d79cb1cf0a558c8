// Geofence end to end, through the broker: NDJSON point features in (the file channel, each line decoded by the
// geojson codec), the geofence stage with enter/exit and its state in SQLite (durable: written by the stage's commit
// after the batch's events are delivered) or in memory, NDJSON events out (the file producer, json codec, fsync per
// batch; the input's offset file written at most once a second: `commit_interval_ms`). Built with the Runtime from a
// config, as `geowatch run --until-idle` does, and connected before the timer starts (every mode). The geofence stage
// has `workers: 1` (a worker thread tests the points; `--workers 0` keeps everything on the main thread).
// Baseline in the same run: the bare loop that reads the same file, decodes every line with the geojson codec and
// encodes one output per point with the json codec (no stage, no state, no write).
// Targets: pipeline >= 0.5x the bare loop's rate with SQLite state, >= 0.7x with memory state; peak RSS < 500 MB.
// Also measured, to show what the stage costs: the same pipeline with a stage that passes nothing in place of the
// geofence (the broker and the file channel alone).
// Each measurement runs in its own process (its own peak RSS); bare, no-stage, memory and SQLite runs alternate (5 of
// each by default), medians. Printed per mode: wall-clock rate and ratio, CPU per point (all threads) and the main
// thread's own CPU per point (the pipeline's limit).
//
//   pnpm build && pnpm bench geofence-e2e
//   (or: node bench/geofence-e2e.bench.mjs [--points N] [--runs N] [--dir DIR] [--count N] [--chunk-bytes N] [--commit-interval-ms N] [--workers N])
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { arg, makeFences, makeTracks, rng, root, spatialRequire } from "./geofence-data.mjs";

const dists = { core: "packages/core/dist/index.js", file: "packages/file/dist/index.js", spatial: "packages/spatial/dist/index.js" };
for (const d of Object.values(dists)) {
  if (!existsSync(join(root, d))) {
    console.error(`bench/geofence-e2e: build first (missing ${d}): pnpm build`);
    process.exit(1);
  }
}
const load = (k) => import(pathToFileURL(join(root, dists[k])).href);
const BATCH = arg("count", 1000);
const CHUNK = arg("chunk-bytes", 131072);
const COMMIT_MS = arg("commit-interval-ms", 1000);
const WORKERS = arg("workers", 1);

/** Reads an NDJSON file in 1 MiB chunks and calls `line` per line (as the file consumer splits it). */
function eachLine(path, line) {
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  let rest = "";
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const text = rest + buf.toString("utf8", 0, n);
      let at = 0;
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", at)) {
        line(text.slice(at, nl));
        at = nl + 1;
      }
      rest = text.slice(at);
    }
  } finally {
    closeSync(fd);
  }
  if (rest.length > 0) line(rest);
}

async function measure(mode, dir) {
  const { getCodec, Runtime, silentLogger } = await load("core");
  const input = join(dir, "points.ndjson");
  if (mode === "bare") {
    const geojson = getCodec("geojson"), json = getCodec("json");
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let count = 0, bytes = 0;
    eachLine(input, (l) => {
      bytes += json.encode(geojson.decode(l)).length;
      count++;
    });
    const ms = performance.now() - t0;
    const cu = process.cpuUsage(c0);
    if (bytes === 0) throw new Error("nothing encoded");
    return { mode, count, ms, cpuMs: (cu.user + cu.system) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 };
  }
  const { fileBackend } = await load("file");
  const { geofenceStage } = await load("spatial");
  const { defineStage } = await load("core");
  const { z } = await import(pathToFileURL(spatialRequire.resolve("zod")).href);
  const nothing = defineStage({ name: "nothing", description: "passes nothing (bench)", options: z.strictObject({}), create: () => ({ name: "nothing", process: () => ({ pass: [] }) }) });
  const out = join(dir, `events-${mode}-${process.pid}.ndjson`);
  const work = mkdtempSync(join(dir, `${mode}-`));
  const config = {
    brokers: [{
      name: "geofence-e2e",
      count: BATCH,
      sleep_period: 0.05,
      // chunk_bytes: each receive reads one chunk and keeps only `count` lines of it (about 112 KB here), so the
      // default 1 MiB chunk reads every line about 9 times; 128 KiB holds a batch.
      // commit_interval_ms: the offset file written at most once a second instead of after every commit (each write
      // is a temp file, two fsyncs and a rename: ~0.6 ms of CPU); a crash re-reads up to a second of input, which the
      // geofence state's covered offsets skip. 0 writes every commit.
      consumers: [{ name: "points", backend: "file", path: input, offset_path: join(work, "points.offset"), codec: "geojson", chunk_bytes: CHUNK, commit_interval_ms: COMMIT_MS }],
      stages: mode === "nostage" ? [{ stage: "nothing" }] : [{
        stage: "geofence",
        fences: join(dir, "fences.geojson"),
        track_id: "properties.id",
        events: ["enter", "exit"],
        state: mode === "sqlite" ? { sqlite: join(work, "state.db") } : "memory",
        ...(WORKERS > 0 ? { workers: WORKERS } : {}),
      }],
      producers: [{ name: "events", backend: "file", path: out, codec: "json" }],
    }],
  };
  const warnings = [];
  const logger = { ...silentLogger, warn: (msg) => void warnings.push(msg) };
  const tLoad = performance.now();
  const app = await new Runtime({ backends: [fileBackend], stages: [geofenceStage, nothing], baseDir: dir, logger }).load(config, "geofence-e2e");
  const loadMs = performance.now() - tLoad;
  // Connected first (files opened, the stage's state and worker threads started): the run measures throughput.
  await app.connect();
  const c0 = process.cpuUsage();
  const m0 = process.threadCpuUsage();
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  const [stats] = await app.run({ untilIdle: true });
  await app.stop();
  const ms = performance.now() - t0;
  // Time the main thread waited for I/O (reads, the producer's disk writes): what a run loses to waiting.
  const idleMs = performance.eventLoopUtilization(elu0).idle;
  const cu = process.cpuUsage(c0);
  // The main thread's CPU alone (decoding, the stage's bookkeeping, the broker): the pipeline's limit.
  const mu = process.threadCpuUsage(m0);
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  const text = existsSync(out) ? readFileSync(out, "utf8") : "";
  const events = text.length === 0 ? 0 : text.split("\n").length - 1;
  // The events' dates come from the clock (the points carry none): compare them without it.
  const sha = createHash("sha256").update(text.replace(/"date":"[^"]*"/g, "")).digest("hex");
  let stored;
  if (mode === "sqlite") {
    const { sqliteGeofenceState } = await load("spatial");
    const s = sqliteGeofenceState(join(work, "state.db"));
    const tracks = JSON.parse(readFileSync(join(dir, "tracks.json"), "utf8"));
    stored = (await s.get(tracks)).filter((t) => t !== undefined).length;
    await s.close();
  }
  rmSync(out, { force: true });
  rmSync(work, { recursive: true, force: true });
  return { mode, count: stats.acked, received: stats.received, dead: stats.deadLettered, events, sha, stored, ms, cpuMs: (cu.user + cu.system) / 1000, mainCpuMs: (mu.user + mu.system) / 1000, idleMs, loadMs, fenceWarnings: warnings.length, maxRssMB };
}

function child(mode, dir) {
  const tuning = ["--count", "--chunk-bytes", "--commit-interval-ms", "--workers"];
  const pass = process.argv.slice(2).filter((a, i, all) => tuning.includes(a) || tuning.includes(all[i - 1]));
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--child", mode, dir, ...pass], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  console.log(JSON.stringify(await measure(process.argv[3], process.argv[4])));
} else {
  const N_POINTS = arg("points", 2_000_000);
  const N_FENCES = arg("fences", 10_000);
  const N_TRACKS = arg("tracks", 20_000);
  // Five alternated runs per mode: the machine's speed drifts over minutes, and a median of five holds against one slow run.
  const RUNS = arg("runs", 5);
  // --dir DIR keeps the generated input there (for profiling a child: --child memory DIR with --cpu-prof).
  const keep = process.argv.indexOf("--dir");
  const dir = keep >= 0 ? process.argv[keep + 1] : mkdtempSync(join(tmpdir(), "gw-geofence-e2e-"));
  try {
    // The same fences and walks as geofence.bench.mjs (same seed, same draws).
    const rand = rng(20261123);
    const { fc, cell, vertices } = makeFences(N_FENCES, rand);
    const steps = Math.ceil(N_POINTS / N_TRACKS);
    const { px, py } = makeTracks(fc.features, N_TRACKS, steps, rand);
    const n = Math.min(N_POINTS, steps * N_TRACKS);
    writeFileSync(join(dir, "fences.geojson"), JSON.stringify(fc));
    const trackIds = Array.from({ length: N_TRACKS }, (_, t) => `t${t}`);
    writeFileSync(join(dir, "tracks.json"), JSON.stringify(trackIds));
    const fd = openSync(join(dir, "points.ndjson"), "w");
    let chunk = "";
    for (let k = 0; k < n; k++) {
      chunk += `{"type":"Feature","properties":{"id":"${trackIds[k % N_TRACKS]}"},"geometry":{"type":"Point","coordinates":[${px[k].toFixed(6)},${py[k].toFixed(6)}]}}\n`;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = "";
      }
    }
    writeSync(fd, chunk);
    closeSync(fd);
    const inputMB = statSync(join(dir, "points.ndjson")).size / 1e6;

    const modes = ["bare", "nostage", "memory", "sqlite"];
    const runs = Object.fromEntries(modes.map((m) => [m, []]));
    for (let r = 0; r < RUNS; r++) for (const mode of modes) runs[mode].push(child(mode, dir));
    const med = (xs, f) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const rate = (x) => (x.count / x.ms) * 1000;
    const [bareRate, noRate, memRate, sqlRate] = modes.map((m) => med(runs[m], rate));
    // CPU time per point (user + system, all threads): on a shared machine the wall clock also measures the
    // neighbours; the CPU ratio is what the pipeline itself costs against the bare loop.
    const [bareCpu, noCpu, memCpu, sqlCpu] = modes.map((m) => med(runs[m], (x) => x.cpuMs / x.count));
    const rss = Object.fromEntries(Object.entries(runs).map(([m, xs]) => [m, Math.max(...xs.map((x) => x.maxRssMB))]));
    const all = [...runs.memory, ...runs.sqlite];
    const complete = [...runs.bare, ...runs.nostage, ...all].every((x) => x.count === n) && [...runs.nostage, ...all].every((x) => x.received === n && x.dead === 0);
    const sameEvents = all.every((x) => x.sha === all[0].sha && x.events === all[0].events) && all[0].events > 0;
    const stored = runs.sqlite[0].stored;
    const memRatio = memRate / bareRate, sqlRatio = sqlRate / bareRate;
    const peak = Math.max(rss.memory, rss.sqlite);
    const fmt = (x) => Math.round(x).toLocaleString("en-US");
    console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(", ")} (${os.cpus().length} cores)`);
    const runsOf = (m) => runs[m].map((x) => fmt(rate(x))).join(" / ");
    const idleOf = (m) => med(runs[m], (x) => x.idleMs ?? 0);
    // The main thread's own CPU per point (the bare loop has only that thread): what limits the pipeline's rate.
    const mainOf = (m) => med(runs[m], (x) => x.mainCpuMs / x.count);
    const cpuOf = (c, m) => `${(c * 1000).toFixed(2)} us CPU/point, CPU ratio ${(bareCpu / c).toFixed(2)}x; main thread ${(mainOf(m) * 1000).toFixed(2)} us CPU/point (ratio ${(bareCpu / mainOf(m)).toFixed(2)}x), idle ${fmt(idleOf(m))} ms`;
    console.log(`fences: ${fmt(N_FENCES)} (countries-land-10km in ${cell.toFixed(3)} deg cells, ${fmt(vertices)} vertices; loaded and indexed by the stage in ${fmt(runs.memory[0].loadMs)} ms; ${runs.memory[0].fenceWarnings} self-intersection warnings)`);
    console.log(`input: ${fmt(n)} points (${inputMB.toFixed(0)} MB NDJSON) from ${fmt(N_TRACKS)} tracks x ${steps} steps; count ${BATCH}, chunk_bytes ${CHUNK}, commit_interval_ms ${COMMIT_MS}, geofence workers ${WORKERS}; ${fmt(all[0].events)} enter/exit events out; ${RUNS} alternated runs, medians`);
    console.log(`bare loop (read + geojson decode + json encode):  ${fmt(bareRate)} points/s (runs ${runsOf("bare")}), peak RSS ${rss.bare.toFixed(0)} MB; ${(bareCpu * 1000).toFixed(2)} us CPU/point`);
    console.log(`without the stage (broker + file channel, a stage that passes nothing): ${fmt(noRate)} points/s (runs ${runsOf("nostage")}), peak RSS ${rss.nostage.toFixed(0)} MB: ${(noRate / bareRate).toFixed(2)}x bare; ${cpuOf(noCpu, "nostage")}`);
    console.log(`pipeline, memory state:  ${fmt(memRate)} points/s (runs ${runsOf("memory")}), peak RSS ${rss.memory.toFixed(0)} MB: ${memRatio.toFixed(2)}x bare (target >= 0.7x) ${memRatio >= 0.7 ? "PASS" : "FAIL"}; ${cpuOf(memCpu, "memory")}`);
    console.log(`pipeline, SQLite state:  ${fmt(sqlRate)} points/s (runs ${runsOf("sqlite")}), peak RSS ${rss.sqlite.toFixed(0)} MB: ${sqlRatio.toFixed(2)}x bare (target >= 0.5x) ${sqlRatio >= 0.5 ? "PASS" : "FAIL"}; ${fmt(stored)} tracks in the state after the run; ${cpuOf(sqlCpu, "sqlite")}`);
    console.log(`peak RSS ${peak.toFixed(0)} MB (target < 500 MB) ${peak < 500 ? "PASS" : "FAIL"}; every point acknowledged, none dead-lettered: ${complete}; same events in every run: ${sameEvents}`);
    console.log(JSON.stringify({
      bench: "geofence-e2e", points: n, fences: N_FENCES, tracks: N_TRACKS, runs: RUNS, events: all[0].events,
      bareRate: Math.round(bareRate), noStageRate: Math.round(noRate), noStageRatio: +(noRate / bareRate).toFixed(3), memoryRate: Math.round(memRate), sqliteRate: Math.round(sqlRate),
      memoryRatio: +memRatio.toFixed(3), sqliteRatio: +sqlRatio.toFixed(3),
      cpuUsPerPoint: { bare: +(bareCpu * 1000).toFixed(3), nostage: +(noCpu * 1000).toFixed(3), memory: +(memCpu * 1000).toFixed(3), sqlite: +(sqlCpu * 1000).toFixed(3) },
      cpuRatio: { nostage: +(bareCpu / noCpu).toFixed(3), memory: +(bareCpu / memCpu).toFixed(3), sqlite: +(bareCpu / sqlCpu).toFixed(3) },
      mainThreadCpuUsPerPoint: { nostage: +(mainOf("nostage") * 1000).toFixed(3), memory: +(mainOf("memory") * 1000).toFixed(3), sqlite: +(mainOf("sqlite") * 1000).toFixed(3) },
      idleMs: { nostage: Math.round(idleOf("nostage")), memory: Math.round(idleOf("memory")), sqlite: Math.round(idleOf("sqlite")) },
      loadAverage: os.loadavg().map((l) => +l.toFixed(2)), peakRssMB: rss, sqliteTracksStored: stored,
      complete, sameEvents, targetMet: memRatio >= 0.7 && sqlRatio >= 0.5 && peak < 500,
    }));
    if (!complete || !sameEvents || !(stored > 0)) process.exitCode = 1;
  } finally {
    if (keep < 0) rmSync(dir, { recursive: true, force: true });
  }
}
