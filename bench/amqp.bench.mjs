// AMQP -> AMQP through the core Broker (json codec, built by the Runtime from a config, as `geowatch run`
// does) against a raw amqplib pipe (consume with prefetch -> publish with confirms -> ack on confirm) over
// the same messages, in the same run. Target: broker msgs/s >= 0.8x the raw pipe's. Needs a running
// RabbitMQ (GEOWATCH_AMQP_URL, `bash .ci/servers/rabbitmq.sh start && source .servers/env/rabbitmq.env`);
// starts nothing itself. Each measurement runs in its own process (its own peak RSS) on its own freshly
// filled input queue; the clock runs from the first delivery to the last acknowledgement.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import amqplib from "amqplib";

const URL_ = process.env.GEOWATCH_AMQP_URL;
if (!URL_) {
  console.error("GEOWATCH_AMQP_URL is not set: start RabbitMQ first: bash .ci/servers/rabbitmq.sh start && source .servers/env/rabbitmq.env");
  process.exit(1);
}
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 1000);
const COUNT = Number(process.env.BENCH_COUNT ?? 100); // broker: records per receive (the core default)
const MAX_IN_FLIGHT = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 10_000);

async function withChannel(fn) {
  const conn = await amqplib.connect(URL_);
  try {
    const ch = await conn.createConfirmChannel();
    return await fn(ch);
  } finally {
    await conn.close();
  }
}

const depth = (q) => withChannel(async (ch) => (await ch.checkQueue(q)).messageCount);

async function fill(queue, n) {
  await withChannel(async (ch) => {
    await ch.assertQueue(queue, { durable: true });
    await ch.purgeQueue(queue);
    for (let i = 0; i < n; i += 5000) {
      for (let j = i; j < Math.min(n, i + 5000); j++) {
        const body = `{"metadata":{"actiontype":"update","targettype":"position"},"data":{"id":${j},"lon":${((j * 7919) % 36000) / 100 - 180},"lat":${((j * 104729) % 17000) / 100 - 85}}}`;
        if (!ch.sendToQueue(queue, Buffer.from(body), { persistent: true, contentType: "application/json" })) await new Promise((r) => ch.once("drain", r));
      }
      await ch.waitForConfirms();
    }
  });
  const d = await depth(queue);
  if (d !== n) throw new Error(`filled ${queue} with ${d} of ${n}`);
}

/** The raw pipe: consume with prefetch, republish each message on a confirm channel, ack it once confirmed. */
async function raw(q, n) {
  const conn = await amqplib.connect(URL_);
  const inCh = await conn.createChannel();
  const outCh = await conn.createConfirmChannel();
  await inCh.prefetch(PREFETCH);
  let t0 = 0;
  let acked = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  await inCh.consume(q.input, (m) => {
    if (!m) return;
    t0 ||= performance.now();
    const publish = () =>
      outCh.publish("", q.output, m.content, { persistent: true, contentType: "application/json", messageId: String(acked) }, (err) => {
        if (err) return void inCh.nack(m, false, true);
        inCh.ack(m);
        if (++acked >= n) finish();
      });
    // On socket backpressure amqplib queues the frame; prefetch bounds what is outstanding.
    publish();
  });
  await finished;
  const ms = performance.now() - t0;
  // Channel first: a connection close could overtake the acks still queued on the channel's stream.
  await inCh.close();
  await outCh.close();
  await conn.close();
  return { ms, count: acked };
}

/** The same relay as a GeoWatch config run by the core Runtime: amqp consumer -> json codec -> amqp producer. */
async function broker(q, n) {
  const { Runtime, silentLogger } = await import("@geowatch/core");
  const { amqpBackend } = await import("@geowatch/amqp");
  let t0 = 0;
  let receives = 0;
  const sizes = [];
  let acked = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  const rt = new Runtime({
    backends: [amqpBackend],
    logger: silentLogger,
    observer: () => ({
      received: (_node, k) => {
        t0 ||= performance.now();
        receives++;
        if (k > 0 && process.env.BENCH_DEBUG) sizes.push(k);
      },
      acked: (_node, k) => {
        acked += k;
        if (acked >= n) finish();
      },
    }),
  });
  const app = await rt.load({
    defaults: { amqp: { url: URL_ } },
    brokers: [
      {
        name: "bench",
        count: COUNT,
        max_in_flight: MAX_IN_FLIGHT,
        sleep_period: 0.1,
        consumers: [{ name: "in", backend: "amqp", queue: q.input, prefetch: PREFETCH, codec: "json" }],
        producers: [{ name: "out", backend: "amqp", exchange: "", routing_key: q.output, codec: "json" }],
      },
    ],
  });
  const running = app.run();
  await finished;
  const ms = performance.now() - t0;
  await app.stop();
  await running;
  if (process.env.BENCH_DEBUG) console.error(`receives ${receives}, batch sizes ${sizes.slice(0, 40).join(",")}`);
  return { ms, count: acked, receives, meanBatch: acked / receives };
}

function child(mode, q, n) {
  const prof = process.env.BENCH_PROF && mode === "broker" ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  const r = spawnSync(process.execPath, ["--expose-gc", ...prof, fileURLToPath(import.meta.url), "--child", mode, JSON.stringify(q), String(n)], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${mode} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  const [, , , mode, qJson, nText] = process.argv;
  const q = JSON.parse(qJson);
  const n = Number(nText);
  const res = mode === "raw" ? await raw(q, n) : await broker(q, n);
  console.log(JSON.stringify({ mode, n, ...res, rate: (res.count / res.ms) * 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  process.exit(0);
} else {
  const n = Number(process.env.BENCH_N ?? 50_000);
  const runs = Number(process.env.BENCH_RUNS ?? 5); // RabbitMQ fsync latency makes single runs vary by +-30%
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const q = { input: `gw.bench.in.${tag}`, output: `gw.bench.out.${tag}` };
  await withChannel(async (ch) => {
    await ch.assertQueue(q.input, { durable: true });
    await ch.assertQueue(q.output, { durable: true });
  });
  const rawRuns = [];
  const brokerRuns = [];
  try {
    // Alternate so machine noise hits both alike; report medians. Each run gets the same n messages.
    for (let r = 0; r < runs; r++) {
      for (const [mode, list] of [["raw", rawRuns], ["broker", brokerRuns]]) {
        await fill(q.input, n);
        await withChannel((ch) => ch.purgeQueue(q.output));
        list.push(child(mode, q, n));
        const [left, out] = [await depth(q.input), await depth(q.output)];
        if (left !== 0 || out !== n) throw new Error(`${mode}: ${left} left in the input, ${out} of ${n} in the output`);
      }
    }
  } finally {
    await withChannel(async (ch) => {
      await ch.deleteQueue(q.input);
      await ch.deleteQueue(q.output);
    }).catch(() => undefined);
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
  console.log(`rabbitmq ${URL_.replace(/\/\/[^@]*@/, "//")}, ${fmt(n)} persistent json messages, ${runs} alternated runs (medians); prefetch ${PREFETCH}, broker count ${COUNT}, max_in_flight ${MAX_IN_FLIGHT}`);
  if (process.env.BENCH_DEBUG) console.log(JSON.stringify(brokerRuns));
  console.log(`raw amqplib pipe  ${fmt(rawMs)} ms  ${fmt(rawRate)} msg/s  peak RSS ${rssRaw.toFixed(0)} MB   (runs: ${rawRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`geowatch broker   ${fmt(brokerMs)} ms  ${fmt(brokerRate)} msg/s  peak RSS ${rssBroker.toFixed(0)} MB   (runs: ${brokerRuns.map((x) => fmt(x.rate)).join(", ")} msg/s)`);
  console.log(`ratio broker/raw msg/s: ${ratio.toFixed(2)}x (target >= 0.8x) ${ratio >= 0.8 ? "PASS" : "FAIL"}`);
  console.log(JSON.stringify({ bench: "amqp", n, runs, prefetch: PREFETCH, count: COUNT, maxInFlight: MAX_IN_FLIGHT, rawMs, brokerMs, rawRate, brokerRate, ratio, rawRssMB: rssRaw, brokerRssMB: rssBroker }));
  if (ratio < 0.8) process.exitCode = 1;
}
