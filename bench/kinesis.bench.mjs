// Kinesis -> Kinesis through the core Broker (json codec, built by the Runtime from a config, as `geowatch run`
// does; SQLite checkpoints on commit) against a raw AWS SDK pipe (GetRecords per shard -> PutRecords in chunks
// of 500 -> a checkpoint per shard in memory) over the same input, in the same run. Both read every shard of a
// 4-shard input stream from TRIM_HORIZON at most 5 GetRecords calls per second per shard (the API limit) and
// write to a fresh 4-shard output stream. Target: broker msgs/s >= 0.8x the raw pipe's. Needs a running
// kinesalite (GEOWATCH_KINESIS_ENDPOINT, `bash .ci/servers/kinesalite.sh start && source .servers/env/kinesalite.env`);
// starts nothing itself. Each measurement runs in its own process (its own peak RSS); the clock runs from the
// first record received to the last record accepted by the output stream.
// Env: BENCH_N (messages, default 50,000), BENCH_RUNS (alternated runs, default 3), BENCH_COUNT (records per receive,
// default 2000), BENCH_MAX_BATCH (the producer node's max_batch). Each run also prints its process CPU time.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// The SDK is a dependency of @geowatch/kinesis; resolve it (and the package itself) from there.
const kinesisPkg = fileURLToPath(new URL("../packages/kinesis/package.json", import.meta.url));
const requireK = createRequire(kinesisPkg);
const sdk = await import(pathToFileURL(requireK.resolve("@aws-sdk/client-kinesis")).href);
const { NodeHttpHandler } = await import(pathToFileURL(requireK.resolve("@smithy/node-http-handler")).href);
const { KinesisClient, CreateStreamCommand, DeleteStreamCommand, DescribeStreamSummaryCommand, ListShardsCommand, GetShardIteratorCommand, GetRecordsCommand, PutRecordsCommand } = sdk;

const ENDPOINT = process.env.GEOWATCH_KINESIS_ENDPOINT;
if (!ENDPOINT) {
  console.error("GEOWATCH_KINESIS_ENDPOINT is not set: start kinesalite first: bash .ci/servers/kinesalite.sh start && source .servers/env/kinesalite.env");
  process.exit(1);
}
process.env.AWS_ACCESS_KEY_ID ??= "test";
process.env.AWS_SECRET_ACCESS_KEY ??= "test";
process.env.AWS_REGION ??= "us-east-1";
const SHARDS = 4;
// 2000 = 500 records per PutRecords call x the producer's 4 parallel lanes: the sink sends what a receive produced.
const COUNT = Number(process.env.BENCH_COUNT ?? 2000);
const MAX_BATCH = process.env.BENCH_MAX_BATCH ? Number(process.env.BENCH_MAX_BATCH) : undefined;
const client = () => new KinesisClient({ endpoint: ENDPOINT, region: "us-east-1", requestHandler: new NodeHttpHandler() });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function createStream(c, name) {
  await c.send(new CreateStreamCommand({ StreamName: name, ShardCount: SHARDS }));
  for (;;) {
    const d = await c.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (d.StreamDescriptionSummary.StreamStatus === "ACTIVE") return;
    await sleep(100);
  }
}

async function shardIds(c, stream) {
  return ((await c.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? []).map((s) => s.ShardId);
}

/** Counts the records in a stream (every shard from TRIM_HORIZON to its end). */
async function countRecords(c, stream) {
  let total = 0;
  for (const shard of await shardIds(c, stream)) {
    let it = (await c.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard, ShardIteratorType: "TRIM_HORIZON" }))).ShardIterator;
    for (;;) {
      const r = await c.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
      total += r.Records.length;
      it = r.NextShardIterator;
      if (r.Records.length === 0 && r.MillisBehindLatest === 0) break;
    }
  }
  return total;
}

async function fill(c, stream, n) {
  for (let i = 0; i < n; i += 500) {
    const recs = [];
    for (let j = i; j < Math.min(n, i + 500); j++) {
      const body = `{"metadata":{"actiontype":"update","targettype":"position"},"data":{"id":${j},"lon":${((j * 7919) % 36000) / 100 - 180},"lat":${((j * 104729) % 17000) / 100 - 85}}}`;
      recs.push({ Data: Buffer.from(body), PartitionKey: `v${j % 1000}` });
    }
    const r = await c.send(new PutRecordsCommand({ StreamName: stream, Records: recs }));
    if (r.FailedRecordCount) throw new Error(`fill: ${r.FailedRecordCount} records failed`);
  }
}

/** The raw pipe: one loop per shard, GetRecords -> PutRecords (failed entries again) -> checkpoint in memory. */
async function raw(s, n) {
  const c = client();
  let t0 = 0;
  let sent = 0;
  const checkpoints = new Map();
  const shards = await shardIds(c, s.input);
  await Promise.all(
    shards.map(async (shard) => {
      let it = (await c.send(new GetShardIteratorCommand({ StreamName: s.input, ShardId: shard, ShardIteratorType: "TRIM_HORIZON" }))).ShardIterator;
      while (sent < n) {
        const called = performance.now();
        const r = await c.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
        it = r.NextShardIterator;
        if (r.Records.length > 0) {
          t0 ||= performance.now();
          for (let i = 0; i < r.Records.length; i += 500) {
            let entries = r.Records.slice(i, i + 500).map((x) => ({ Data: x.Data, PartitionKey: x.PartitionKey }));
            while (entries.length > 0) {
              const out = await c.send(new PutRecordsCommand({ StreamName: s.output, Records: entries }));
              const failed = entries.filter((_, k) => out.Records[k].ErrorCode);
              sent += entries.length - failed.length;
              entries = failed;
            }
          }
          checkpoints.set(shard, r.Records.at(-1).SequenceNumber);
        }
        // 5 GetRecords calls per second per shard, as the broker's consumer keeps.
        await sleep(Math.max(0, 200 - (performance.now() - called)));
      }
    }),
  );
  const ms = performance.now() - t0;
  c.destroy();
  return { ms, count: sent };
}

/** The same relay as a GeoWatch config run by the core Runtime: kinesis consumer -> json codec -> kinesis producer. */
async function broker(s, n) {
  const { Runtime, silentLogger } = await import("@geowatch/core");
  const { kinesisBackend } = await import(pathToFileURL(join(kinesisPkg, "..", "dist", "index.js")).href);
  const dir = mkdtempSync(join(tmpdir(), "gw-kinesis-bench-"));
  let t0 = 0;
  let acked = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  const rt = new Runtime({
    backends: [kinesisBackend],
    logger: silentLogger,
    observer: () => ({
      received: (_node, k) => {
        if (k > 0) t0 ||= performance.now();
      },
      acked: (_node, k) => {
        acked += k;
        if (acked >= n) finish();
      },
    }),
  });
  const app = await rt.load({
    brokers: [
      {
        name: "bench",
        count: COUNT,
        max_in_flight: 20_000,
        sleep_period: 0.1,
        consumers: [
          { name: "in", backend: "kinesis", stream: s.input, endpoint: ENDPOINT, shard_iterator_type: "TRIM_HORIZON", checkpoint_path: join(dir, "cp.db"), idle_time_between_reads_ms: 200, codec: "json" },
        ],
        producers: [{ name: "out", backend: "kinesis", stream: s.output, endpoint: ENDPOINT, codec: "json", ...(MAX_BATCH ? { max_batch: MAX_BATCH } : {}) }],
      },
    ],
  });
  const running = app.run();
  await finished;
  const ms = performance.now() - t0;
  await app.stop();
  await running;
  rmSync(dir, { recursive: true, force: true });
  return { ms, count: acked };
}

function child(mode, s, n) {
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--child", mode, JSON.stringify(s), String(n)], { encoding: "utf8", timeout: 600_000, env: process.env });
  if (r.status !== 0) throw new Error(`${mode} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  const [, , , mode, sJson, nText] = process.argv;
  const s = JSON.parse(sJson);
  const n = Number(nText);
  const res = mode === "raw" ? await raw(s, n) : await broker(s, n);
  const u = process.resourceUsage();
  console.log(JSON.stringify({ mode, n, ...res, rate: (res.count / res.ms) * 1000, maxRssMB: u.maxRSS / 1024, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }));
  process.exit(0);
} else {
  const n = Number(process.env.BENCH_N ?? 50_000);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const c = client();
  const input = `gw-bench-in-${tag}`;
  const streams = [input];
  const rawRuns = [];
  const brokerRuns = [];
  try {
    await createStream(c, input);
    const f0 = performance.now();
    await fill(c, input, n);
    console.error(`filled ${input} with ${n} records in ${Math.round(performance.now() - f0)} ms`);
    // Alternate so machine noise hits both alike; report medians. Each run reads the same input into a fresh output.
    for (let r = 0; r < runs; r++) {
      for (const [mode, list] of [["raw", rawRuns], ["broker", brokerRuns]]) {
        const output = `gw-bench-out-${tag}-${mode}-${r}`;
        streams.push(output);
        await createStream(c, output);
        const res = child(mode, { input, output }, n);
        const out = await countRecords(c, output);
        if (out < n) throw new Error(`${mode}: ${out} of ${n} in the output`);
        list.push(res);
        console.error(`run ${r + 1}/${runs} ${mode}: ${Math.round(res.rate)} msg/s (${Math.round(res.ms)} ms, CPU ${Math.round(res.cpuMs)} ms, peak RSS ${res.maxRssMB.toFixed(0)} MB, output ${out})`);
      }
    }
  } finally {
    for (const s of streams) await c.send(new DeleteStreamCommand({ StreamName: s })).catch(() => undefined);
    c.destroy();
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
  console.log(`kinesalite ${ENDPOINT}, ${SHARDS}-shard streams, ${fmt(n)} json messages, ${runs} alternated runs (medians); broker count ${COUNT}`);
  console.log(`raw SDK pipe      ${fmt(rawMs)} ms  ${fmt(rawRate)} msg/s  peak RSS ${rssRaw.toFixed(0)} MB   (runs: ${rawRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`geowatch broker   ${fmt(brokerMs)} ms  ${fmt(brokerRate)} msg/s  peak RSS ${rssBroker.toFixed(0)} MB   (runs: ${brokerRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`ratio broker/raw msg/s: ${ratio.toFixed(2)}x (target >= 0.8x) ${ratio >= 0.8 ? "PASS" : "FAIL"}`);
  console.log(JSON.stringify({ bench: "kinesis", n, runs, shards: SHARDS, count: COUNT, rawMs, brokerMs, rawRate, brokerRate, ratio, rawRssMB: rssRaw, brokerRssMB: rssBroker }));
  if (ratio < 0.8) process.exitCode = 1;
}
