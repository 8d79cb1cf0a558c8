// Tile requests into memcached through `geowatch run` against a raw memjs pipe, same server, same input, same run:
//   raw memjs    one process: read the file, parse every line (split, Number), group each chunk of COUNT lines by key
//                `requests/<source>/<z>`, APPEND each group's lines to its key (ADD when new) with memjs 1.3.2 directly,
//                up to 50 keys at once: the least a program doing this job does, with no delivery bookkeeping
//   geowatch     the CLI, `run --until-idle`: file channel (committed offsets) -> tilerequest codec (every field checked)
//                -> memcached store_out `requests/{source}/{z}` (append mode, flush_count COUNT), at-least-once as
//                shipped: the offset is committed only after memcached took the flush
// Both check afterwards that memcached holds every line (the sum of the keys' line counts is N). Wall clocks of
// whole processes (start-up included), alternated runs, medians; CPU time and peak RSS of each process from its own
// resourceUsage (on a loaded machine the CPU per line is the steadier figure).
// Starts its own memcached (-m 1024 -I 2m) on a free port from GEOWATCH_MEMCACHED_BIN (`bash .ci/servers/memcached.sh start
// && source .servers/env/memcached.env` sets it) and kills it by pid at the end. Needs a build (`pnpm build`). Env: BENCH_N (lines, default 200000), BENCH_RUNS (default 3), BENCH_COUNT (default 2000).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer, Socket } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const CLI = join(here, "..", "apps", "broker", "bin", "geowatch.js");
const PKG = join(here, "..", "packages", "memcached");
const memjs = createRequire(join(PKG, "package.json"))("memjs");
const BIN = process.env.GEOWATCH_MEMCACHED_BIN;
if (!BIN) {
  console.error("GEOWATCH_MEMCACHED_BIN is not set: bash .ci/servers/memcached.sh start && source .servers/env/memcached.env");
  process.exit(1);
}
const N = Number(process.env.BENCH_N ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const COUNT = Number(process.env.BENCH_COUNT ?? 2000);
const SOURCES = ["osm", "terrain", "satellite", "hillshade"];

/** The raw pipe, in its own process: `node memcached.bench.mjs --raw FILE PREFIX`. */
async function raw(file, prefix, servers) {
  const client = memjs.Client.create(servers, { retries: 1, logger: { log() {} }, keepAlive: true });
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  // memjs answers a failed APPEND (missing key: NOT_STORED) and a failed ADD (key exists) with an error.
  const put = async (key, body) => {
    for (let i = 0; i < 20; i++) {
      if (await client.append(key, body).catch(() => false)) return;
      if (await client.add(key, body).catch(() => false)) return;
    }
    throw new Error(`${key}: no append after 20 tries`);
  };
  for (let i = 0; i < lines.length; i += COUNT) {
    const groups = new Map();
    for (const line of lines.slice(i, i + COUNT)) {
      const [, rest] = line.split(";");
      const [source, z, x, y, ext] = rest.split(",");
      if (!source || Number.isNaN(Number(z) + Number(x) + Number(y)) || !ext) throw new Error(`bad line ${line}`);
      const key = `${prefix}requests/${source}/${z}`;
      groups.set(key, (groups.get(key) ?? "") + line + "\n");
    }
    const entries = [...groups];
    for (let j = 0; j < entries.length; j += 50) await Promise.all(entries.slice(j, j + 50).map(([k, v]) => put(k, v)));
  }
  client.close();
}

if (process.argv[2] === "--raw") {
  await raw(process.argv[3], process.argv[4], process.argv[5]);
  process.exit(0);
}

// A memcached of the bench's own (the test server's binary) with room for every run: the 64 MB test server evicts
// large appended items once its slab pages are spread over the size classes, and other suites share it.
const port = await new Promise((resolve) => {
  const srv = createServer().listen(0, "127.0.0.1", () => {
    const p = srv.address().port;
    srv.close(() => resolve(p));
  });
});
const SERVERS = `127.0.0.1:${port}`;
const daemon = spawn(BIN, [...(process.getuid?.() === 0 ? ["-u", "root"] : []), "-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "1024", "-I", "2m"], { stdio: "ignore" });
process.on("exit", () => daemon.kill("SIGKILL"));
for (let i = 0; ; i++) {
  const up = await new Promise((resolve) => {
    const so = new Socket();
    so.once("error", () => resolve(false));
    so.connect(port, "127.0.0.1", () => (so.destroy(), resolve(true)));
  });
  if (up) break;
  if (i > 100) throw new Error(`memcached did not start on ${SERVERS}`);
  await new Promise((r) => setTimeout(r, 50));
}
const work = mkdtempSync(join(tmpdir(), "geowatch-bench-memcached-"));
const input = join(work, "requests.log");
{
  let seed = 7;
  const rand = (k) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % k;
  };
  const t0 = Date.UTC(2026, 11, 1);
  const out = [];
  for (let i = 0; i < N; i++) {
    const z = rand(19);
    const side = 2 ** z;
    out.push(`${new Date(t0 + i * 10).toISOString()};${SOURCES[rand(SOURCES.length)]},${z},${rand(side)},${rand(side)},png`);
  }
  writeFileSync(input, out.join("\n") + "\n");
}
const rssFile = join(work, "rss");
const preload = join(work, "rss.mjs");
writeFileSync(preload, `import { writeFileSync } from "node:fs";\nprocess.on("exit", () => { const u = process.resourceUsage(); writeFileSync(${JSON.stringify(rssFile)}, JSON.stringify({ rss: u.maxRSS, cpu: u.userCPUTime + u.systemCPUTime })); });\n`);

/** Lines memcached holds under a run's prefix; the keys are deleted after counting (the test server has 64 MB). */
async function held(prefix) {
  const client = memjs.Client.create(SERVERS, { retries: 1, logger: { log() {} } });
  let lines = 0;
  for (const s of SOURCES) {
    for (let z = 0; z < 19; z++) {
      const { value } = await client.get(`${prefix}requests/${s}/${z}`);
      if (value) lines += value.toString().split("\n").filter(Boolean).length;
      await client.delete(`${prefix}requests/${s}/${z}`).catch(() => false);
    }
  }
  client.close();
  return lines;
}

function timed(args, env = {}) {
  rmSync(rssFile, { force: true });
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ["--import", preload, ...args], { cwd: join(here, "..", "apps", "broker"), encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  const u = JSON.parse(readFileSync(rssFile, "utf8"));
  return { s, rss: u.rss / 1024, cpu: u.cpu / 1e6 };
}

const modes = {
  "raw memjs": (prefix) => timed([SELF, "--raw", input, prefix, SERVERS]),
  geowatch: (prefix) => {
    const dir = mkdtempSync(join(work, "run-"));
    const cfg = join(dir, "geowatch.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: bench",
        `    count: ${COUNT}`,
        "    sleep_period: 0.05",
        "    consumers:",
        `      - { backend: file, path: ${input}, offset_path: ${join(dir, "offset")}, codec: tilerequest }`,
        "    stores_out:",
        `      - { backend: memcached, servers: "${SERVERS}", key_prefix: "${prefix}", key: "requests/{source}/{z}", codec: tilerequest, flush_count: ${COUNT}, flush_ms: 200 }`,
      ].join("\n") + "\n",
    );
    return timed([CLI, "run", cfg, "--until-idle", "--no-status", "--log-level", "warn"]);
  },
};

const results = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
console.log(`${N} tile request lines, ${SOURCES.length} sources x 19 zoom levels = up to ${SOURCES.length * 19} keys; count ${COUNT}; load average ${loadavg()[0].toFixed(1)}`);
for (let run = 0; run < RUNS; run++) {
  for (const [name, fn] of Object.entries(modes)) {
    const prefix = `bench-${Date.now().toString(36)}-${run}-${name.replace(/\W/g, "")}:`;
    const r = fn(prefix);
    const got = await held(prefix);
    if (got !== N) throw new Error(`${name}: memcached holds ${got} of ${N} lines`);
    results[name].push(r);
    console.log(`run ${run + 1} ${name.padEnd(10)} ${r.s.toFixed(2)} s  ${Math.round(N / r.s).toLocaleString("en")} lines/s  CPU ${r.cpu.toFixed(2)} s  peak RSS ${r.rss.toFixed(0)} MB`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const rate = (m) => N / median(results[m].map((r) => r.s));
const peak = (m) => Math.max(...results[m].map((r) => r.rss));
const cpu = (m) => median(results[m].map((r) => r.cpu));
for (const m of Object.keys(modes)) console.log(`${m.padEnd(10)} median ${Math.round(rate(m)).toLocaleString("en")} lines/s, CPU ${cpu(m).toFixed(2)} s (${((cpu(m) / N) * 1e6).toFixed(1)} us/line), peak RSS ${peak(m).toFixed(0)} MB`);
console.log(`ratio geowatch / raw memjs: ${(rate("geowatch") / rate("raw memjs")).toFixed(2)}x by wall clock, ${(cpu("raw memjs") / cpu("geowatch")).toFixed(2)}x by CPU (load average now ${loadavg()[0].toFixed(1)})`);
rmSync(work, { recursive: true, force: true });
daemon.kill("SIGKILL");
process.exit(0);
