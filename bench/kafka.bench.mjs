// Kafka throughput of `geowatch run` against a native librdkafka client (Debian's kcat) on the same broker,
// the same input topic (BENCH_N small JSON messages, default 1M, on 6 partitions) and in the same run:
//   kcat consume        kcat -C from the beginning to the end of the topic, values to a file
//   kcat relay          kcat -C | kcat -P: topic A -> topic B (acks=all, librdkafka's default)
//   geowatch plain      `geowatch run --until-idle`: kafka -> plain codec -> kafka   target >= 0.5x kcat relay
//   geowatch json       the same with the json codec on both sides (parse + stringify) target >= 0.3x kcat relay
//   geowatch file       kafka -> plain codec -> NDJSON file (fsync per batch)           target >= 0.5x kcat consume
//   kafkajs relay       reference: kafkajs 2.2.4 as published, used directly in its own process the way the backend
//                       uses it (fetch sizes, idempotent producer with acks=all, requests of 1000 records, commit
//                       after each send): the ceiling of a relay on kafkajs, so the gap splits into client and GeoWatch
//   kafkajs fixed relay the same relay on kafkajs with @geowatch/kafka's fixes (`fixKafkajs()` before it loads):
//                       the ceiling of a relay on the client as the backend ships it
// Every geowatch run is the real CLI in its own process with a fresh consumer group, at-least-once as shipped
// (offsets committed only after the sink accepted the records); each run checks that the group committed all
// N offsets and that the output holds at least N records. Clocks are wall clocks of whole processes (start-up,
// group join and the final commit included) for kcat and geowatch alike. Runs alternate; medians are reported.
// Needs a running Kafka (GEOWATCH_KAFKA_BROKERS; `bash .ci/servers/kafka.sh start && source .servers/env/kafka.env`)
// and kcat (`apt-get install -y kcat`, installed here when missing and apt-get is usable).
// Env: BENCH_N (messages), BENCH_RUNS (alternated runs, default 3), BENCH_COUNT (broker `count`, default 5000),
// BENCH_MAX_IN_FLIGHT (broker `max_in_flight`, default 50000), BENCH_BUFFER (consumer `max_buffered_records`,
// default: the backend's), BENCH_MODES (comma list of the modes above), BENCH_PROF (a directory: geowatch runs
// write CPU profiles there), BENCH_NODE_ARGS (extra node options for the geowatch runs, space-separated, e.g. an
// `--import` hook to time another build of a backend against this one). With GNU time installed each mode also reports CPU seconds and peak RSS: on a
// shared machine the CPU cost per message is the steadier figure, since wall clocks stretch with the load.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixKafkajs } from "@geowatch/kafka";
import { GNU_TIME, timed } from "./lib/timed.mjs";

// The reference relay (`--kafkajs-relay`) runs kafkajs 2.2.4 as published; everything else in this process, and the
// `--kafkajs-relay-fixed` reference, loads it with @geowatch/kafka's fixes (which must be in place before kafkajs loads).
if (process.argv[2] !== "--kafkajs-relay") fixKafkajs();
const { Kafka, logLevel } = (await import("kafkajs")).default;
const here = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);

/**
 * The kafkajs reference relay (run as `node kafka.bench.mjs --kafkajs-relay IN OUT GROUP N`): eachBatch -> sendBatch in
 * requests of 1000 records -> commit the batch's next offset, until N records were relayed.
 */
async function rawRelay([input, output, groupId, n]) {
  const total = Number(n);
  const k = new Kafka({ clientId: "bench-raw", brokers: process.env.GEOWATCH_KAFKA_BROKERS.split(","), logLevel: logLevel.NOTHING });
  const producer = k.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const consumer = k.consumer({ groupId, maxWaitTimeInMs: 200, maxBytes: 52_428_800, maxBytesPerPartition: 4_194_304 });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [input], fromBeginning: true });
  let relayed = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const msgs = batch.messages;
      for (let i = 0; i < msgs.length; i += 1000) {
        const messages = msgs.slice(i, i + 1000).map((m) => ({ key: m.key, value: m.value }));
        await producer.sendBatch({ acks: -1, topicMessages: [{ topic: output, messages }] });
      }
      resolveOffset(batch.lastOffset());
      await consumer.commitOffsets([{ topic: input, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }]);
      relayed += msgs.length;
      if (relayed >= total) finish();
    },
  });
  await finished;
  await consumer.disconnect();
  await producer.disconnect();
}

if (process.argv[2] === "--kafkajs-relay" || process.argv[2] === "--kafkajs-relay-fixed") {
  await rawRelay(process.argv.slice(3));
  process.exit(0);
}
const CLI = join(here, "..", "apps", "broker", "bin", "geowatch.js");
const BROKERS = process.env.GEOWATCH_KAFKA_BROKERS;
if (!BROKERS) {
  console.error("GEOWATCH_KAFKA_BROKERS is not set: start Kafka first: bash .ci/servers/kafka.sh start && source .servers/env/kafka.env");
  process.exit(1);
}
const N = Number(process.env.BENCH_N ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const COUNT = Number(process.env.BENCH_COUNT ?? 5000);
const MAX_IN_FLIGHT = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 50_000);
const BUFFER = process.env.BENCH_BUFFER ? Number(process.env.BENCH_BUFFER) : undefined;
const PARTITIONS = 6;
const ALL_MODES = ["kcat-consume", "kcat-relay", "kafkajs-relay", "kafkajs-fixed-relay", "geowatch-plain", "geowatch-json", "geowatch-file"];
const MODES = process.env.BENCH_MODES ? process.env.BENCH_MODES.split(",") : ALL_MODES;
const kafka = new Kafka({ clientId: "geowatch-bench", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING });

function ensureKcat() {
  if (spawnSync("kcat", ["-V"]).status === 0) return;
  console.error("kcat not found: installing Debian's kcat (apt-get install -y kcat)");
  const r = spawnSync("apt-get", ["install", "-y", "-q", "kcat"], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0 || spawnSync("kcat", ["-V"]).status !== 0) {
    console.error("could not install kcat: run `apt-get install -y kcat` as root");
    process.exit(1);
  }
}

async function admin(fn) {
  const a = kafka.admin();
  await a.connect();
  try {
    return await fn(a);
  } finally {
    await a.disconnect();
  }
}

const ends = (topic) => admin(async (a) => (await a.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0));
const groupCommitted = (groupId, topic) =>
  admin(async (a) => ((await a.fetchOffsets({ groupId, topics: [topic] }))[0]?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0));

/** Input: N JSON messages with 1000 distinct keys, produced once by kcat (librdkafka's partitioner spreads them). */
async function setup(dir) {
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const input = `gw-bench-in-${tag}`;
  await admin((a) => a.createTopics({ waitForLeaders: true, topics: [{ topic: input, numPartitions: PARTITIONS }] }));
  const file = join(dir, "input.txt");
  const pad = "x".repeat(48);
  const lines = [];
  for (let j = 0; j < N; j++) lines.push(`v${j % 1000}\t{"id":${j},"lon":${((j * 7919) % 36000) / 100 - 180},"lat":${((j * 104729) % 17000) / 100 - 85},"pad":"${pad}"}`);
  writeFileSync(file, lines.join("\n") + "\n");
  await timed("kcat", ["-P", "-b", BROKERS, "-t", input, "-K", "\t", "-z", "none", "-X", "linger.ms=20", "-l", file]);
  const have = await ends(input);
  if (have !== N) throw new Error(`input topic holds ${have} messages, want ${N}`);
  rmSync(file);
  return input;
}

const newTopic = async (name) => {
  await admin((a) => a.createTopics({ waitForLeaders: true, topics: [{ topic: name, numPartitions: PARTITIONS }] }));
  return name;
};

const lineCount = (file) => {
  const b = readFileSync(file);
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 10) n++;
  return n;
};

async function kcatConsume(ctx, run) {
  const out = join(ctx.dir, `kcat-consume-${run}.txt`);
  const { ms, rssMB, cpuS } = await timed("kcat", ["-C", "-b", BROKERS, "-t", ctx.input, "-o", "beginning", "-e", "-q", "-f", "%s\n"], { stdout: out });
  // The write stream may still be flushing when the process exits.
  await new Promise((r) => setTimeout(r, 200));
  const got = lineCount(out);
  rmSync(out);
  if (got !== N) throw new Error(`kcat consume wrote ${got} lines, want ${N}`);
  return { ms, rssMB, cpuS };
}

async function kcatRelay(ctx, run) {
  const out = await newTopic(`${ctx.input}-kcat-${run}`);
  ctx.topics.push(out);
  const cmd = `kcat -C -b ${BROKERS} -t ${ctx.input} -o beginning -e -q -f '%k\\t%s\\n' | kcat -P -b ${BROKERS} -t ${out} -K $'\\t' -z none`;
  const { ms, rssMB, cpuS } = await timed("bash", ["-o", "pipefail", "-c", cmd]);
  const got = await ends(out);
  if (got !== N) throw new Error(`kcat relay: output topic holds ${got}, want ${N}`);
  return { ms, rssMB, cpuS };
}

async function kafkajsRelay(ctx, run, fixed = false) {
  const out = await newTopic(`${ctx.input}-kjs${fixed ? "f" : ""}-${run}`);
  ctx.topics.push(out);
  const groupId = `gw-bench-kafkajs${fixed ? "-fixed" : ""}-${run}-${Date.now()}`;
  const { ms, rssMB, cpuS } = await timed(process.execPath, [SELF, fixed ? "--kafkajs-relay-fixed" : "--kafkajs-relay", ctx.input, out, groupId, String(N)]);
  const committed = await groupCommitted(groupId, ctx.input);
  if (committed !== N) throw new Error(`kafkajs relay: the group committed ${committed} of ${N} offsets`);
  const got = await ends(out);
  if (got < N) throw new Error(`kafkajs relay: the output holds ${got} records, want >= ${N}`);
  return { ms, rssMB, cpuS };
}

async function geowatch(ctx, run, kind) {
  const groupId = `gw-bench-${kind}-${run}-${Date.now()}`;
  const codec = kind === "json" ? "json" : "plain";
  let producer;
  let check;
  if (kind === "file") {
    const path = join(ctx.dir, `geowatch-file-${run}.ndjson`);
    producer = { backend: "file", path, codec };
    check = async () => {
      const got = lineCount(path);
      rmSync(path);
      return got;
    };
  } else {
    const out = await newTopic(`${ctx.input}-gw-${kind}-${run}`);
    ctx.topics.push(out);
    producer = { backend: "kafka", brokers: BROKERS, topic: out, codec };
    check = () => ends(out);
  }
  const config = {
    brokers: [
      {
        name: "bench",
        count: COUNT,
        sleep_period: 0.1,
        max_in_flight: MAX_IN_FLIGHT,
        consumers: [{ backend: "kafka", brokers: BROKERS, topic: ctx.input, group_id: groupId, from_beginning: true, codec, ...(BUFFER ? { max_buffered_records: BUFFER } : {}) }],
        producers: [producer],
      },
    ],
  };
  const file = join(ctx.dir, `geowatch-${kind}-${run}.json`);
  writeFileSync(file, JSON.stringify(config));
  const prof = process.env.BENCH_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROF}`, `--cpu-prof-name=geowatch-${kind}-${run}.cpuprofile`] : [];
  const extra = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(" ").filter(Boolean) : [];
  const { ms, rssMB, cpuS } = await timed(process.execPath, [...extra, ...prof, CLI, "run", file, "--until-idle", "--log-level", "warn", "--no-status"]);
  rmSync(file);
  const committed = await groupCommitted(groupId, ctx.input);
  if (committed !== N) throw new Error(`geowatch ${kind}: the group committed ${committed} of ${N} offsets`);
  const got = await check();
  if (got < N) throw new Error(`geowatch ${kind}: the output holds ${got} records, want >= ${N}`);
  return { ms, rssMB, cpuS, duplicates: got - N };
}

const RUNNERS = {
  "kcat-consume": kcatConsume,
  "kcat-relay": kcatRelay,
  "kafkajs-relay": (ctx, run) => kafkajsRelay(ctx, run),
  "kafkajs-fixed-relay": (ctx, run) => kafkajsRelay(ctx, run, true),
  "geowatch-plain": (ctx, run) => geowatch(ctx, run, "plain"),
  "geowatch-json": (ctx, run) => geowatch(ctx, run, "json"),
  "geowatch-file": (ctx, run) => geowatch(ctx, run, "file"),
};

ensureKcat();
const dir = mkdtempSync(join(tmpdir(), "gw-kafka-bench-"));
const ctx = { dir, input: "", topics: [] };
const results = Object.fromEntries(MODES.map((m) => [m, []]));
const load0 = loadavg();
try {
  ctx.input = await setup(dir);
  ctx.topics.push(ctx.input);
  // Alternate so machine noise hits every mode alike; report medians.
  for (let run = 0; run < RUNS; run++) {
    for (const mode of MODES) {
      const r = await RUNNERS[mode](ctx, run);
      results[mode].push(r);
      console.error(`run ${run + 1}/${RUNS} ${mode}: ${Math.round((N / r.ms) * 1000).toLocaleString("en-US")} msg/s (${Math.round(r.ms)} ms, load ${loadavg()[0].toFixed(2)})`);
    }
  }
} finally {
  await admin((a) => a.deleteTopics({ topics: ctx.topics })).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
const load1 = loadavg();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = {};
for (const m of MODES) rate[m] = (N / median(results[m].map((r) => r.ms))) * 1000;
const fmt = (x) => Math.round(x).toLocaleString("en-US");
console.log(`kafka ${BROKERS}, ${PARTITIONS} partitions, ${fmt(N)} JSON messages (~100 B), ${RUNS} alternated runs (medians of wall clocks); geowatch count ${COUNT}, max_in_flight ${MAX_IN_FLIGHT}`);
console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
const cpu = {};
const rss = {};
for (const m of MODES) {
  if (GNU_TIME) {
    cpu[m] = median(results[m].map((r) => r.cpuS));
    rss[m] = median(results[m].map((r) => r.rssMB));
  }
  const usage = GNU_TIME ? `  cpu ${cpu[m].toFixed(2)} s (${((cpu[m] * 1e6) / N).toFixed(1)} us/msg)  peak RSS ${rss[m].toFixed(0)} MB` : "";
  console.log(`${m.padEnd(20)} ${fmt(rate[m]).padStart(9)} msg/s${usage}   (runs: ${results[m].map((r) => fmt((N / r.ms) * 1000)).join(", ")})`);
}
const targets = [
  ["geowatch-plain", "kcat-relay", 0.5],
  ["geowatch-json", "kcat-relay", 0.3],
  ["geowatch-file", "kcat-consume", 0.5],
  ["kafkajs-relay", "kcat-relay", undefined],
  ["kafkajs-fixed-relay", "kcat-relay", undefined],
  ["geowatch-plain", "kafkajs-relay", undefined],
  ["geowatch-plain", "kafkajs-fixed-relay", undefined],
].filter(([a, b]) => rate[a] !== undefined && rate[b] !== undefined);
let failed = false;
const ratios = {};
for (const [a, b, want] of targets) {
  const ratio = rate[a] / rate[b];
  ratios[`${a}/${b}`] = ratio;
  if (want === undefined) {
    console.log(`ratio ${a} / ${b}: ${ratio.toFixed(2)}x (reference)`);
    continue;
  }
  const ok = ratio >= want;
  failed ||= !ok;
  console.log(`ratio ${a} / ${b}: ${ratio.toFixed(2)}x (target >= ${want}x) ${ok ? "PASS" : "FAIL"}`);
}
console.log(JSON.stringify({ bench: "kafka", n: N, runs: RUNS, partitions: PARTITIONS, count: COUNT, maxInFlight: MAX_IN_FLIGHT, rate, cpuSeconds: cpu, peakRssMB: rss, ratios, load: { before: load0, after: load1 } }));
if (failed) process.exitCode = 1;
