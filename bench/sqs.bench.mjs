// SQS -> SQS relay throughput of `geowatch run` against a raw AWS SDK pipe doing the same work, on the same
// server and in the same run:
//   raw pipe   a Node process with @aws-sdk/client-sqs (the version @geowatch/sqs uses): RECEIVERS long-polling
//              ReceiveMessage loops (10 messages each); per receive one SendMessageBatch to the output queue,
//              then one DeleteMessageBatch, until N messages are relayed
//   geowatch   `geowatch run --until-idle`: sqs consumer -> json codec -> sqs producer, at-least-once as
//              shipped (deleted only after the output accepted them)                    target >= 0.8x raw
// Each run gets its own input queue, filled with N small JSON messages before the clock starts, and its own
// output queue; each checks that the input is empty and the output holds N messages. Clocks are wall clocks
// of whole processes (start-up included); runs alternate and medians are reported. Peak RSS and CPU seconds
// come from GNU time when installed.
// Needs the moto server (or another SQS endpoint): `bash .ci/servers/moto.sh start && source .servers/env/moto.env`.
// Env: BENCH_N (messages, default 3000), BENCH_RUNS (alternated runs, default 3), BENCH_RECEIVERS (receives in
// flight, both sides, default 3), GEOWATCH_MOTO_ENDPOINT or AWS_ENDPOINT_URL_SQS (the endpoint).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { GNU_TIME, timed } from "./lib/timed.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, "..", "apps", "broker", "bin", "geowatch.js");
// The SDK as @geowatch/sqs resolves it, so both sides run the same client code.
const SDK = createRequire(join(here, "..", "packages", "sqs", "package.json")).resolve("@aws-sdk/client-sqs");
const ENDPOINT = process.env.GEOWATCH_MOTO_ENDPOINT ?? process.env.AWS_ENDPOINT_URL_SQS;
if (!ENDPOINT) {
  console.error("GEOWATCH_MOTO_ENDPOINT is not set: start the server first: bash .ci/servers/moto.sh start && source .servers/env/moto.env");
  process.exit(1);
}
const REGION = process.env.AWS_REGION ?? "us-east-1";
const N = Number(process.env.BENCH_N ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RECEIVERS = Number(process.env.BENCH_RECEIVERS ?? 3);
const { SQSClient, CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } = await import(pathToFileURL(SDK).href);
const sqs = new SQSClient({ endpoint: ENDPOINT, region: REGION });

const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const queues = [];

async function newQueue(name) {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `gw-bench-${tag}-${name}` }));
  queues.push(QueueUrl);
  return QueueUrl;
}

async function counts(url) {
  const a = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }))).Attributes;
  return { visible: Number(a.ApproximateNumberOfMessages), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible) };
}

/** N JSON messages (~100 B) into a fresh queue, 8 batches in flight. */
async function fill(url) {
  const pad = "x".repeat(48);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < N) {
        const from = next;
        next += 10;
        const entries = [];
        for (let j = from; j < Math.min(N, from + 10); j++) {
          entries.push({ Id: String(j - from), MessageBody: `{"id":${j},"lon":${((j * 7919) % 36000) / 100 - 180},"lat":${((j * 104729) % 17000) / 100 - 85},"pad":"${pad}"}` });
        }
        const out = await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
        if (out.Failed?.length) throw new Error(`fill: ${JSON.stringify(out.Failed)}`);
      }
    }),
  );
  const c = await counts(url);
  if (c.visible !== N) throw new Error(`input holds ${c.visible} messages, want ${N}`);
}

/** The raw pipe, run as its own process so its clock and RSS compare with geowatch's. */
const RAW = `
const { SQSClient, ReceiveMessageCommand, SendMessageBatchCommand, DeleteMessageBatchCommand } = await import(process.env.SDK_URL);
const sqs = new SQSClient({ endpoint: process.env.ENDPOINT, region: process.env.REGION });
const [input, output, n, receivers] = [process.env.IN, process.env.OUT, Number(process.env.N), Number(process.env.RECEIVERS)];
let relayed = 0;
await Promise.all(Array.from({ length: receivers }, async () => {
  while (relayed < n) {
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: input, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }));
    if (Messages.length === 0) continue;
    const sent = await sqs.send(new SendMessageBatchCommand({ QueueUrl: output, Entries: Messages.map((m, i) => ({ Id: String(i), MessageBody: m.Body })) }));
    if (sent.Failed?.length) throw new Error("send failed: " + JSON.stringify(sent.Failed));
    const del = await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: input, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
    if (del.Failed?.length) throw new Error("delete failed: " + JSON.stringify(del.Failed));
    relayed += Messages.length;
  }
}));
sqs.destroy();
`;

async function check(mode, input, output) {
  const i = await counts(input);
  const o = await counts(output);
  if (i.visible !== 0 || i.inFlight !== 0) throw new Error(`${mode}: input still holds ${JSON.stringify(i)}`);
  if (o.visible < N) throw new Error(`${mode}: output holds ${o.visible} messages, want >= ${N}`);
  return o.visible - N;
}

async function raw(dir, run) {
  const input = await newQueue(`raw-in-${run}`);
  const output = await newQueue(`raw-out-${run}`);
  await fill(input);
  const file = join(dir, "raw.mjs");
  writeFileSync(file, RAW);
  const env = { ...process.env, SDK_URL: pathToFileURL(SDK).href, ENDPOINT, REGION, IN: input, OUT: output, N: String(N), RECEIVERS: String(RECEIVERS) };
  const r = await timed(process.execPath, [file], { env });
  return { ...r, duplicates: await check("raw", input, output) };
}

async function geowatch(dir, run) {
  const input = await newQueue(`gw-in-${run}`);
  const output = await newQueue(`gw-out-${run}`);
  await fill(input);
  const name = (url) => url.slice(url.lastIndexOf("/") + 1);
  const common = { backend: "sqs", endpoint: ENDPOINT, region: REGION, codec: "json" };
  const config = {
    brokers: [
      {
        name: "bench",
        count: 100,
        sleep_period: 0.1,
        consumers: [{ ...common, queue: name(input), wait_time_seconds: 1, receivers: RECEIVERS }],
        producers: [{ ...common, queue: name(output) }],
      },
    ],
  };
  const file = join(dir, "geowatch.json");
  writeFileSync(file, JSON.stringify(config));
  const r = await timed(process.execPath, [CLI, "run", file, "--until-idle", "--log-level", "warn", "--no-status"]);
  return { ...r, duplicates: await check("geowatch", input, output) };
}

const MODES = { raw, geowatch };
const dir = mkdtempSync(join(tmpdir(), "gw-sqs-bench-"));
const results = { raw: [], geowatch: [] };
const load0 = loadavg();
try {
  for (let run = 0; run < RUNS; run++) {
    for (const [mode, fn] of Object.entries(MODES)) {
      const r = await fn(dir, run);
      results[mode].push(r);
      console.error(`run ${run + 1}/${RUNS} ${mode}: ${Math.round((N / r.ms) * 1000)} msg/s (${Math.round(r.ms)} ms, load ${loadavg()[0].toFixed(2)})`);
    }
  }
} finally {
  for (const q of queues) await sqs.send(new DeleteQueueCommand({ QueueUrl: q })).catch(() => undefined);
  sqs.destroy();
  rmSync(dir, { recursive: true, force: true });
}
const load1 = loadavg();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString("en-US");
const rate = {};
const cpu = {};
const rss = {};
console.log(`sqs ${ENDPOINT}, ${fmt(N)} JSON messages (~100 B), ${RUNS} alternated runs (medians of wall clocks), ${RECEIVERS} receives in flight on both sides`);
console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
for (const m of Object.keys(MODES)) {
  rate[m] = (N / median(results[m].map((r) => r.ms))) * 1000;
  if (GNU_TIME) {
    cpu[m] = median(results[m].map((r) => r.cpuS));
    rss[m] = median(results[m].map((r) => r.rssMB));
  }
  const usage = GNU_TIME ? `  cpu ${cpu[m].toFixed(2)} s  peak RSS ${rss[m].toFixed(0)} MB` : "  (no GNU time: install Debian's `time` for CPU and peak RSS)";
  console.log(`${m.padEnd(9)} ${fmt(rate[m]).padStart(7)} msg/s${usage}   (runs: ${results[m].map((r) => fmt((N / r.ms) * 1000)).join(", ")}; duplicates ${results[m].map((r) => r.duplicates).join(", ")})`);
}
const ratio = rate.geowatch / rate.raw;
console.log(`ratio geowatch / raw: ${ratio.toFixed(2)}x (target >= 0.8x) ${ratio >= 0.8 ? "PASS" : "FAIL"}`);
console.log(JSON.stringify({ bench: "sqs", endpoint: ENDPOINT, n: N, runs: RUNS, receivers: RECEIVERS, rate, cpuSeconds: cpu, peakRssMB: rss, ratio, load: { before: load0, after: load1 } }));
if (ratio < 0.8) process.exitCode = 1;
