// Memory-to-memory broker (geojson decode -> json encode) against a bare loop doing the same decode
// and encode, in the same run. Target: broker time <= 1.5x bare over 1M small GeoJSON points, and
// peak RSS flat (within 10%) between 1M and 5M messages. Each measurement runs in its own process so
// peak RSS is its own.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Broker, getCodec, silentLogger } from "@geowatch/core";

const BATCH = 1000;

/** A source that makes payloads as it goes, so the benchmark holds no message list in memory. */
function pointSource(n) {
  let i = 0;
  const make = (k) =>
    `{"type":"Feature","geometry":{"type":"Point","coordinates":[${(((k * 7919) % 36000) / 100 - 180).toFixed(2)},${(((k * 104729) % 17000) / 100 - 85).toFixed(2)}]},"properties":{"id":${k},"speed":${k % 120}}}`;
  return {
    capabilities: { acks: true, batching: true },
    async receive(max) {
      const m = Math.min(max, n - i);
      const out = new Array(m);
      for (let j = 0; j < m; j++) out[j] = { value: make(i + j) };
      i += m;
      return out;
    },
    async ack() {},
    next(max) {
      const m = Math.min(max, n - i);
      const out = new Array(m);
      for (let j = 0; j < m; j++) out[j] = make(i + j);
      i += m;
      return out;
    },
  };
}

function countingSink() {
  const sink = {
    count: 0,
    bytes: 0,
    capabilities: { batching: true },
    async send(records) {
      const res = new Array(records.length);
      for (let k = 0; k < records.length; k++) {
        sink.bytes += records[k].value.length;
        res[k] = OK;
      }
      sink.count += records.length;
      return res;
    },
  };
  return sink;
}
const OK = { ok: true };

async function measure(mode, n) {
  const geojson = getCodec("geojson");
  const json = getCodec("json");
  const src = pointSource(n);
  const t0 = performance.now();
  let count = 0;
  if (mode === "bare") {
    let bytes = 0;
    for (;;) {
      const batch = src.next(BATCH);
      if (batch.length === 0) break;
      for (const p of batch) bytes += json.encode(geojson.decode(p)).length;
      count += batch.length;
      await Promise.resolve();
    }
    if (bytes === 0) throw new Error("nothing encoded");
  } else {
    const sink = countingSink();
    const broker = new Broker({
      name: "bench",
      consumers: [{ name: "in", consumer: src, codec: geojson, count: BATCH }],
      producers: [{ name: "out", producer: sink, codec: json }],
      logger: silentLogger,
      receiveWaitMs: 0,
      sleepPeriodMs: 0,
    });
    const stats = await broker.run({ untilIdle: true });
    if (sink.count !== n || stats.acked !== n) throw new Error(`lost messages: sent ${sink.count}, acked ${stats.acked}, want ${n}`);
    count = sink.count;
  }
  const ms = performance.now() - t0;
  return { mode, n, count, ms, rate: (count / ms) * 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 };
}

function child(mode, n) {
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--child", mode, String(n)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${mode} ${n} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

if (process.argv[2] === "--child") {
  const res = await measure(process.argv[3], Number(process.argv[4]));
  console.log(JSON.stringify(res));
} else {
  const n = Number(process.env.BENCH_N ?? 1_000_000);
  // Warm both paths, then alternate so machine noise hits both alike; report medians.
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const bare = [], broker = [];
  for (let r = 0; r < runs; r++) {
    bare.push(child("bare", n));
    broker.push(child("broker", n));
  }
  const med = (xs) => xs.map((x) => x.ms).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const bareMs = med(bare), brokerMs = med(broker);
  const big = child("broker", n * 5);
  const small = broker.map((b) => b.maxRssMB).sort((a, b) => a - b)[Math.floor(broker.length / 2)];
  const ratio = brokerMs / bareMs;
  const rssGrowth = big.maxRssMB / small - 1;
  const fmt = (x) => Math.round(x).toLocaleString("en-US");
  console.log(`bare loop      ${fmt(n)} msgs  ${fmt(bareMs)} ms  ${fmt((n / bareMs) * 1000)} msg/s  peak RSS ${bare[0].maxRssMB.toFixed(0)} MB`);
  console.log(`broker         ${fmt(n)} msgs  ${fmt(brokerMs)} ms  ${fmt((n / brokerMs) * 1000)} msg/s  peak RSS ${small.toFixed(0)} MB`);
  console.log(`broker         ${fmt(n * 5)} msgs  ${fmt(big.ms)} ms  ${fmt(big.rate)} msg/s  peak RSS ${big.maxRssMB.toFixed(0)} MB`);
  console.log(`ratio broker/bare time: ${ratio.toFixed(2)}x (target <= 1.5x) ${ratio <= 1.5 ? "PASS" : "FAIL"}`);
  console.log(`peak RSS 5M vs 1M: ${(rssGrowth * 100).toFixed(1)}% (target within 10%) ${Math.abs(rssGrowth) <= 0.1 ? "PASS" : "FAIL"}`);
  console.log(JSON.stringify({ bench: "broker-memory", n, runs, bareMs, brokerMs, ratio, bareRate: (n / bareMs) * 1000, brokerRate: (n / brokerMs) * 1000, rss1MB: small, rss5MB: big.maxRssMB, rssGrowth }));
}
