// Kafka -> Kafka through the core Broker (json codec, built by the Runtime from a config, as `geowatch run`
// does) against a raw kafkajs pipe (eachBatch -> producer.send -> commit) over the same input topic, in the
// same run. Target: broker msgs/s >= 0.8x the raw pipe's. Needs a running Kafka (GEOWATCH_KAFKA_BROKERS,
// `bash .ci/servers/kafka.sh start && source .servers/env/kafka.env`); starts nothing itself.
// Each measurement runs in its own process (its own peak RSS) with a fresh consumer group reading the
// input from the beginning; the clock runs from the first record received to the last offset committed.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import kafkajs from "kafkajs";

const { Kafka, logLevel, CompressionTypes } = kafkajs;
const BROKERS = process.env.GEOWATCH_KAFKA_BROKERS;
if (!BROKERS) {
  console.error("GEOWATCH_KAFKA_BROKERS is not set: start Kafka first: bash .ci/servers/kafka.sh start && source .servers/env/kafka.env");
  process.exit(1);
}
const kafka = new Kafka({ clientId: "geowatch-bench", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING });
const PARTITIONS = 6;
const COUNT = Number(process.env.BENCH_COUNT ?? 1000); // broker: records per receive
const MAX_IN_FLIGHT = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 10_000);

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

async function setup(n) {
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const t = { input: `gw-bench-in-${tag}`, rawOut: `gw-bench-raw-${tag}`, brokerOut: `gw-bench-broker-${tag}` };
  await admin((a) => a.createTopics({ waitForLeaders: true, topics: Object.values(t).map((topic) => ({ topic, numPartitions: PARTITIONS })) }));
  const p = kafka.producer();
  await p.connect();
  const pad = "x".repeat(48);
  for (let i = 0; i < n; i += 10_000) {
    const messages = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) messages.push({ key: `v${j % 1000}`, value: `{"id":${j},"lon":${((j * 7919) % 36000) / 100 - 180},"lat":${((j * 104729) % 17000) / 100 - 85},"pad":"${pad}"}` });
    await p.send({ topic: t.input, acks: 1, compression: CompressionTypes.None, messages });
  }
  await p.disconnect();
  return t;
}

/** The raw pipe: what a hand-written kafkajs relay does, with the same delivery guarantee (commit after send). */
async function raw(t, n) {
  const groupId = `gw-bench-raw-${Date.now()}`;
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [t.input], fromBeginning: true });
  let t0 = 0;
  let done = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
      if (!isRunning() || isStale() || batch.messages.length === 0) return;
      t0 ||= performance.now();
      await producer.send({ topic: t.rawOut, acks: -1, messages: batch.messages.map((m) => ({ key: m.key, value: m.value })) });
      const last = batch.lastOffset();
      resolveOffset(last);
      await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
      done += batch.messages.length;
      if (done >= n) finish();
    },
  });
  await finished;
  const ms = performance.now() - t0;
  await consumer.disconnect();
  await producer.disconnect();
  return { ms, count: done, committed: await groupCommitted(groupId, t.input) };
}

/** The same relay as a GeoWatch config run by the core Runtime: kafka consumer -> json codec -> kafka producer. */
async function broker(t, n) {
  const { Runtime, silentLogger } = await import("@geowatch/core");
  const { kafkaBackend } = await import("@geowatch/kafka");
  const groupId = `gw-bench-broker-${Date.now()}`;
  let t0 = 0;
  let acked = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  const rt = new Runtime({
    backends: [kafkaBackend],
    logger: silentLogger,
    observer: () => ({
      received: () => (t0 ||= performance.now()),
      acked: (_node, k) => {
        acked += k;
        if (acked >= n) finish();
      },
    }),
  });
  const app = await rt.load({
    defaults: { kafka: { brokers: BROKERS } },
    brokers: [
      {
        name: "bench",
        count: COUNT,
        max_in_flight: MAX_IN_FLIGHT,
        sleep_period: 0.1,
        consumers: [{ name: "in", backend: "kafka", topic: t.input, group_id: groupId, from_beginning: true, codec: "json", ...(process.env.BENCH_BUFFER ? { max_buffered_records: Number(process.env.BENCH_BUFFER) } : {}) }],
        producers: [{ name: "out", backend: "kafka", topic: t.brokerOut, codec: "json" }],
      },
    ],
  });
  const running = app.run();
  await finished;
  const ms = performance.now() - t0;
  await app.stop();
  const [stats] = await running;
  return { ms, count: acked, sent: stats.sent, committed: await groupCommitted(groupId, t.input) };
}

async function child(mode, topicsJson, n) {
  const r = spawnSync(process.execPath, ["--expose-gc", ...(process.env.BENCH_PROF && mode === "broker" ? ["--cpu-prof", "--cpu-prof-dir=" + process.env.BENCH_PROF] : []), fileURLToPath(import.meta.url), "--child", mode, topicsJson, String(n)], {
    encoding: "utf8",
    env: process.env,
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`${mode} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  const [, , , mode, topicsJson, nText] = process.argv;
  const t = JSON.parse(topicsJson);
  const n = Number(nText);
  const res = mode === "raw" ? await raw(t, n) : await broker(t, n);
  if (res.committed !== n) throw new Error(`${mode}: group committed ${res.committed} of ${n}`);
  console.log(JSON.stringify({ mode, n, ...res, rate: (res.count / res.ms) * 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  process.exit(0);
} else {
  const n = Number(process.env.BENCH_N ?? 200_000);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const t = await setup(n);
  const rawRuns = [];
  const brokerRuns = [];
  try {
    // Alternate so machine noise hits both alike; report medians.
    for (let r = 0; r < runs; r++) {
      rawRuns.push(await child("raw", JSON.stringify(t), n));
      brokerRuns.push(await child("broker", JSON.stringify(t), n));
    }
    const rawOut = await ends(t.rawOut);
    const brokerOut = await ends(t.brokerOut);
    if (rawOut < n * runs || brokerOut < n * runs) throw new Error(`output short: raw ${rawOut}, broker ${brokerOut}, want >= ${n * runs} each`);
  } finally {
    await admin((a) => a.deleteTopics({ topics: Object.values(t) })).catch(() => undefined);
  }
  const med = (xs, f) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rawMs = med(rawRuns, (x) => x.ms);
  const brokerMs = med(brokerRuns, (x) => x.ms);
  const rawRate = (n / rawMs) * 1000;
  const brokerRate = (n / brokerMs) * 1000;
  const ratio = brokerRate / rawRate;
  const fmt = (x) => Math.round(x).toLocaleString("en-US");
  const rssRaw = med(rawRuns, (x) => x.maxRssMB);
  const rssBroker = med(brokerRuns, (x) => x.maxRssMB);
  console.log(`kafka ${BROKERS}, ${PARTITIONS} partitions, ${fmt(n)} json messages, ${runs} alternated runs (medians); broker count ${COUNT}, max_in_flight ${MAX_IN_FLIGHT}`);
  console.log(`raw kafkajs pipe  ${fmt(rawMs)} ms  ${fmt(rawRate)} msg/s  peak RSS ${rssRaw.toFixed(0)} MB   (runs: ${rawRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`geowatch broker   ${fmt(brokerMs)} ms  ${fmt(brokerRate)} msg/s  peak RSS ${rssBroker.toFixed(0)} MB   (runs: ${brokerRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`ratio broker/raw msg/s: ${ratio.toFixed(2)}x (target >= 0.8x) ${ratio >= 0.8 ? "PASS" : "FAIL"}`);
  console.log(JSON.stringify({ bench: "kafka", n, runs, partitions: PARTITIONS, count: COUNT, maxInFlight: MAX_IN_FLIGHT, rawMs, brokerMs, rawRate, brokerRate, ratio, rawRssMB: rssRaw, brokerRssMB: rssBroker }));
  if (ratio < 0.8) process.exitCode = 1;
}
