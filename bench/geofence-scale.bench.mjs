// Geofence across processes (issue 14): throughput of 1, 2 and 3 `geowatch run` processes in one consumer group on
// the same 6-partition topic, with the geofence state shared through a compacted Kafka changelog or PostgreSQL, and
// the time to restore one partition's state. Baseline in the same run: 1 process; 2 and 3 are reported as ratios.
//
// Input: BENCH_N points (default 300,000) of BENCH_TRACKS tracks (default 6,000) random-walking over the bench's
// 10,000 fences (geofence-data.mjs, the same seed as the other geofence benches), keyed by track, produced once.
// Each run: a fresh group and fresh state (changelog topic / table), N processes started together, timed from the
// spawn of the first to the moment the group has committed every input offset (group joins included, so the
// figure is what a user waits for); every run checks that all N offsets were committed and that the runs of one
// engine wrote the same set of events. Restore: a fresh process (kafkaGeofenceState) replays one partition of the
// changelog the last run wrote; PostgreSQL needs no replay (reads go to the table), its figure is one SELECT of
// that partition's tracks.
//
//   pnpm build && pnpm bench geofence-scale
// Needs Kafka (GEOWATCH_KAFKA_BROKERS) and PostgreSQL (GEOWATCH_PG_URL): bash .ci/servers/kafka.sh start;
// bash .ci/servers/postgres.sh start; source .servers/env/*.env. Env: BENCH_N, BENCH_TRACKS, BENCH_ENGINES
// (comma list of kafka,postgres), BENCH_PROCS (comma list, default 1,2,3), BENCH_CHAOS=0 to leave out the
// exactness run (2 processes, a third joins at a third of the input, the first is SIGKILLed at half; its events
// must equal the 1-process run's, duplicates counted). This machine has 2 cores: a third process shares them, so
// 3 processes cannot beat 2 here; what scales is the state, not the CPU.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import kafkajs from "kafkajs";
import { makeFences, makeTracks, rng, root } from "./geofence-data.mjs";

const { Kafka, logLevel } = kafkajs;
const BROKERS = process.env.GEOWATCH_KAFKA_BROKERS;
const PG_URL = process.env.GEOWATCH_PG_URL;
if (!BROKERS || !PG_URL) {
  console.error("bench/geofence-scale: needs GEOWATCH_KAFKA_BROKERS and GEOWATCH_PG_URL: bash .ci/servers/kafka.sh start; bash .ci/servers/postgres.sh start; source .servers/env/kafka.env .servers/env/postgres.env");
  process.exit(1);
}
const N = Number(process.env.BENCH_N ?? 300_000);
const TRACKS = Number(process.env.BENCH_TRACKS ?? 6_000);
const ENGINES = (process.env.BENCH_ENGINES ?? "kafka,postgres").split(",");
const PROCS = (process.env.BENCH_PROCS ?? "1,2,3").split(",").map(Number);
const CHAOS = process.env.BENCH_CHAOS !== "0";
const PARTITIONS = 6;
const TIME = existsSync("/usr/bin/time");
const CLI = join(root, "apps/broker/bin/geowatch.js");
const kafka = new Kafka({ clientId: "bench-geofence-scale", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const tag = Date.now().toString(36);
const topics = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const psql = (url, sql) => {
  const r = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
};
const db = `gw_bench_scale_${tag}`;
psql(PG_URL, `CREATE DATABASE ${db}`);
const dbUrl = Object.assign(new URL(PG_URL), { pathname: `/${db}` }).toString();
const dir = mkdtempSync(join(tmpdir(), "gw-geofence-scale-"));

/** The group's committed offsets summed; -1 while Kafka cannot answer (a coordinator moving, a busy broker). */
async function committed(group, topic) {
  try {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (t?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
  } catch {
    return -1;
  }
}

async function readAll(topic) {
  const total = (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0);
  const set = new Set();
  let seen = 0;
  const c = kafka.consumer({ groupId: `bench-verify-${topic}`, maxWaitTimeInMs: 200 });
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  await c.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        // The points carry no date (an event's is the record's timestamp, shared by a batch): the position names the input.
        const { metadata: md, data } = JSON.parse(m.value.toString("utf8"));
        set.add(`${md.actiontype} ${md.fence} ${md.track} ${data.geometry.coordinates.join(",")}`);
        seen++;
      }
    },
  });
  while (seen < total) await sleep(100);
  await c.disconnect();
  return { total, set };
}

function config(input, output, group, engine, run) {
  const state = engine === "kafka"
    ? `{ kafka: { brokers: ["${BROKERS.split(",")[0]}"], topic: gw-bench-scale-changelog-${tag}-${run} } }`
    : `{ postgres: { url: "${dbUrl}", table: state_${engine}_${run.split("-")[1]} } }`;
  const path = join(dir, `geowatch-${run}.yaml`);
  writeFileSync(path, [
    "brokers:",
    "  - name: scale",
    "    count: 1000",
    "    max_in_flight: 5000",
    "    sleep_period: 0.05",
    `    consumers: [{ name: in, backend: kafka, brokers: "${BROKERS}", topic: ${input}, group_id: ${group}, from_beginning: true, codec: json }]`,
    "    stages:",
    "      - stage: geofence",
    `        fences: ${join(dir, "fences.geojson")}`,
    "        track_id: properties.id",
    "        events: [enter, exit]",
    `        state: ${state}`,
    `    producers: [{ name: out, backend: kafka, brokers: "${BROKERS}", topic: ${output}, codec: json }]`,
  ].join("\n") + "\n");
  return path;
}

/** Starts `procs` geowatch processes on a fresh group; resolves when every input offset is committed. */
function startProcess(cfg) {
  const cmd = [process.execPath, CLI, "run", cfg, "--no-status"];
  // GNU time reports each process's CPU and peak RSS (without it, those columns read 0).
  const child = spawn(TIME ? "/usr/bin/time" : cmd[0], TIME ? ["-f", "%e %U %S %M", ...cmd] : cmd.slice(1), { cwd: join(root, "apps/broker"), env: { ...process.env, GEOWATCH_LOG_LEVEL: "info" }, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((r) => child.once("exit", r));
  // Signals go to geowatch itself (GNU time does not pass them on).
  const signal = (sig) => {
    let node;
    try {
      node = TIME ? readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/)[0] : undefined;
    } catch {
      node = undefined;
    }
    try {
      if (node) process.kill(Number(node), sig);
      else child.kill(sig);
    } catch {
      // already gone
    }
  };
  return { child, err: () => err, exited, signal };
}

/**
 * Starts `procs` geowatch processes on a fresh group; resolves when every input offset is committed. With
 * `chaos`, 2 processes start, a third joins at a third of the input and the first is SIGKILLed at half of it.
 */
async function measure(engine, procs, input, chaos = false) {
  const run = chaos ? `${engine}-chaos` : `${engine}-${procs}`;
  const output = `gw-bench-scale-out-${tag}-${run}`;
  const group = `gw-bench-scale-${tag}-${run}`;
  topics.push(output);
  if (engine === "kafka") topics.push(`gw-bench-scale-changelog-${tag}-${run}`);
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: output, numPartitions: 1 }] });
  const cfg = config(input, output, group, engine, run);
  const children = [];
  const t0 = performance.now();
  for (let i = 0; i < procs; i++) children.push(startProcess(cfg));
  let done = 0;
  let scaledAt, killedAt;
  const deadline = Date.now() + 900_000;
  // A failure here must not leave the processes running.
  const orphans = () => {
    for (const c of children) c.signal("SIGKILL");
  };
  process.once("exit", orphans);
  while ((done = await committed(group, input)) < N && Date.now() < deadline) {
    if (chaos && scaledAt === undefined && done >= N / 3) {
      children.push(startProcess(cfg));
      scaledAt = done;
    }
    if (chaos && killedAt === undefined && done >= N / 2) {
      children[0].signal("SIGKILL");
      killedAt = done;
    }
    await sleep(100);
  }
  const ms = performance.now() - t0;
  for (const c of children) c.signal("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  process.off("exit", orphans);
  let cpu = 0, rss = 0, restores = 0;
  for (const c of children) {
    const lines = c.err().trim().split("\n");
    if (TIME) {
      const [, user, sys, maxKb] = lines.at(-1).split(" ").map(Number);
      cpu += (user + sys) * 1000;
      rss = Math.max(rss, maxKb / 1024);
    }
    restores += lines.filter((l) => l.includes("state restored")).length;
  }
  if (done < N) throw new Error(`${run}: committed ${done} of ${N} in ${ms} ms`);
  const { total, set } = await readAll(output);
  return { engine, procs: chaos ? "2->3, 1 SIGKILLed" : procs, scaledAt, killedAt, ms, rate: (N / ms) * 1000, cpuUsPerPoint: (cpu / N) * 1000, peakRssMB: rss, events: set.size, outputRecords: total, set, restores, changelog: `gw-bench-scale-changelog-${tag}-${run}` };
}

try {
  // The same fences and walks as the other geofence benches (same seed, same draws).
  const rand = rng(20261123);
  const { fc } = makeFences(10_000, rand);
  const steps = Math.ceil(N / TRACKS);
  const { px, py } = makeTracks(fc.features, TRACKS, steps, rand);
  writeFileSync(join(dir, "fences.geojson"), JSON.stringify(fc));
  const input = `gw-bench-scale-in-${tag}`;
  topics.push(input);
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: input, numPartitions: PARTITIONS }] });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let k = 0; k < N; k += 5000) {
    const messages = [];
    for (let j = k; j < Math.min(N, k + 5000); j++) {
      const id = `t${j % TRACKS}`;
      messages.push({ key: id, value: `{"type":"Feature","properties":{"id":"${id}"},"geometry":{"type":"Point","coordinates":[${px[j].toFixed(6)},${py[j].toFixed(6)}]}}` });
    }
    await producer.send({ topic: input, acks: -1, messages });
  }
  await producer.disconnect();

  const results = [];
  for (const engine of ENGINES) for (const procs of PROCS) {
    const r = await measure(engine, procs, input);
    results.push(r);
    console.log(`${engine} state, ${procs} process(es): ${Math.round(r.rate).toLocaleString("en-US")} points/s (${(r.ms / 1000).toFixed(1)} s, joins included), ${r.cpuUsPerPoint.toFixed(2)} us CPU/point (all processes), peak RSS per process ${r.peakRssMB.toFixed(0)} MB, ${r.events} distinct events (${r.outputRecords - r.events} duplicates), ${r.restores} restores`);
  }
  const fmt = (x) => Math.round(x).toLocaleString("en-US");
  // Exactness under a scale-up and a SIGKILL, against the 1-process run of the same engine.
  const chaos = [];
  if (CHAOS) for (const engine of ENGINES) {
    const r = await measure(engine, 2, input, true);
    const base = results.find((x) => x.engine === engine && x.procs === 1) ?? results.find((x) => x.engine === engine);
    const missing = base ? [...base.set].filter((e) => !r.set.has(e)).length : undefined;
    const invented = base ? [...r.set].filter((e) => !base.set.has(e)).length : undefined;
    chaos.push({ engine, missing, invented, duplicates: r.outputRecords - r.events, events: r.events, restores: r.restores, scaledAt: r.scaledAt, killedAt: r.killedAt, ms: Math.round(r.ms) });
    console.log(`${engine} state, 2 processes, a third at ${fmt(r.scaledAt)} committed, one SIGKILLed at ${fmt(r.killedAt)}: ${r.events} distinct events, missing ${missing}, invented ${invented} against 1 process, ${r.outputRecords - r.events} duplicates, ${r.restores} restores, ${(r.ms / 1000).toFixed(1)} s (the killed member's partitions wait for its session to expire, 30 s)`);
  }
  let same = chaos.every((c) => c.missing === 0 && c.invented === 0);
  for (const engine of ENGINES) {
    const rs = results.filter((r) => r.engine === engine);
    const base = rs.find((r) => r.procs === 1) ?? rs[0];
    same &&= rs.every((r) => r.events === base.events && [...r.set].every((e) => base.set.has(e)));
    console.log(`${engine}: ${rs.map((r) => `${r.procs}p ${fmt(r.rate)}/s (${(r.rate / base.rate).toFixed(2)}x of 1 process)`).join(", ")}`);
  }
  // Restore of one partition's state by a fresh process, from what the last kafka run wrote.
  const restore = {};
  const spatial = await import(pathToFileURL(join(root, "packages/spatial/dist/index.js")).href);
  const lastKafka = results.filter((r) => r.engine === "kafka").at(-1);
  if (lastKafka) {
    const s = await spatial.kafkaGeofenceState({ brokers: BROKERS.split(","), topic: lastKafka.changelog });
    const offsets = await admin.fetchTopicOffsets(lastKafka.changelog);
    const t0 = performance.now();
    await s.restore([`${input}:0`]);
    restore.kafka = { ms: performance.now() - t0, tracks: s.size, changelogRecords: Number(offsets.find((p) => p.partition === 0).high) };
    await s.close();
    console.log(`restore of one partition (Kafka changelog replay, fresh process): ${restore.kafka.ms.toFixed(0)} ms for ${fmt(restore.kafka.tracks)} tracks from ${fmt(restore.kafka.changelogRecords)} changelog records`);
  }
  const lastPg = results.filter((r) => r.engine === "postgres").at(-1);
  if (lastPg) {
    const tracks = Array.from({ length: TRACKS / PARTITIONS }, (_, i) => `t${i * PARTITIONS}`);
    const t0 = performance.now();
    const n = Number(psql(dbUrl, `SELECT count(*) FROM (SELECT * FROM state_postgres_${lastPg.procs} WHERE track = ANY(ARRAY[${tracks.map((t) => `'${t}'`).join(",")}])) s`));
    restore.postgres = { ms: performance.now() - t0, tracks: n };
    console.log(`postgres: no replay; reading ${fmt(tracks.length)} tracks in one SELECT (through psql, connection included): ${restore.postgres.ms.toFixed(0)} ms`);
  }
  console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(", ")} (${os.cpus().length} cores)`);
  console.log(JSON.stringify({
    bench: "geofence-scale", points: N, tracks: TRACKS, partitions: PARTITIONS,
    runs: results.map(({ set: _s, changelog: _c, ...r }) => ({ ...r, rate: Math.round(r.rate), ms: Math.round(r.ms), cpuUsPerPoint: +r.cpuUsPerPoint.toFixed(2), peakRssMB: Math.round(r.peakRssMB) })),
    chaos, restore, sameEvents: same, loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
  }));
  if (!same) process.exitCode = 1;
} finally {
  await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
  psql(PG_URL, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  rmSync(dir, { recursive: true, force: true });
}
