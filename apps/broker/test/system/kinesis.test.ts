// Kinesis (kinesalite) -> `geowatch run` -> NDJSON files, with the DynamoDB lease table on moto.
// Servers: bash .ci/servers/kinesalite.sh start; bash .ci/servers/moto.sh start (then source .servers/env/*.env).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createStream, deleteStream, dynamoEndpoint, fresh, kinesisEndpoint, leasesByOwner, putRaw, splitShard, tcpProxy } from "../../../../packages/kinesis/test/server.js";
import { APP_DIR, BIN, sleep, startRun, stopRun, tempDir, until, writeConfig, type RunChild } from "./helpers.js";

const streams: string[] = [];
const children: RunChild[] = [];

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  await Promise.all(streams.map((s) => deleteStream(s)));
});

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with GEOWATCH_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function config(dir: string, stream: string, table: string, out: string): string {
  return writeConfig(dir, [
    "brokers:",
    "  - name: relay",
    "    count: 500",
    "    sleep_period: 0.2",
    "    consumers:",
    `      - { name: in, backend: kinesis, stream: ${stream}, endpoint: "${kinesisEndpoint()}", shard_iterator_type: TRIM_HORIZON,`,
    `          lease_table: ${table}, dynamodb_endpoint: "${dynamoEndpoint()}", lease_duration_ms: 3000, shard_sync_ms: 1000,`,
    "          idle_time_between_reads_ms: 200, codec: json }",
    `    producers: [{ name: out, backend: file, path: ${out}, codec: json }]`,
  ]);
}

interface Row {
  id: number;
  key: string;
  n: number;
}

function rows(path: string): Row[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);
}

/** `count` records over `keys` partition keys, `n` counting up per key so order is checkable. */
function input(from: number, count: number, keys: number): Array<{ value: string; key: string }> {
  return Array.from({ length: count }, (_, j) => {
    const id = from + j;
    const key = `k${id % keys}`;
    return { value: JSON.stringify({ id, key, n: Math.floor(id / keys) }), key };
  });
}

async function produce(stream: string, total: number, keys: number, batch: number, paceMs: number): Promise<void> {
  for (let i = 0; i < total; i += batch) {
    await putRaw(stream, input(i, Math.min(batch, total - i), keys));
    await sleep(paceMs);
  }
}

/** `geowatch run <config> --until-idle`: resolves with the exit code and log, or fails after `timeoutMs` (then kills it). */
function runUntilIdle(config: string, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, [BIN, "run", config, "--until-idle", "--no-status"], { cwd: APP_DIR, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`geowatch run --until-idle did not end within ${timeoutMs} ms; log tail:\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe("kinesis system", () => {
  it("two processes share a 4-shard stream through the lease table; one is SIGKILLed, the other takes its shards; 0 missing", async () => {
    const seed = Number(process.env.GEOWATCH_SEED ?? Date.now() % 1_000_000);
    const random = prng(seed);
    const N = 20_000;
    const stream = fresh("sys-kill");
    const table = fresh("sys-leases");
    streams.push(stream);
    await createStream(stream, 4);
    const dir = tempDir("kinesis-kill");
    const outA = join(dir, "a.ndjson");
    const outB = join(dir, "b.ndjson");
    const a = await startRun(config(dir, stream, table, outA));
    children.push(a);
    await until("A to hold the 4 leases", async () => ((await leasesByOwner(table)).size === 1 && [...(await leasesByOwner(table)).values()][0]!.length === 4 ? true : undefined), 60_000, 250);
    const b = await startRun(writeConfig(tempDir("kinesis-kill-b"), [readFileSync(join(dir, "geowatch.yaml"), "utf8").replace(outA, outB)]));
    children.push(b);
    await until("A and B to hold 2 leases each", async () => {
      const l = await leasesByOwner(table);
      return l.size === 2 && [...l.values()].every((s) => s.length === 2) ? true : undefined;
    }, 60_000, 250);

    const producing = produce(stream, N, 40, 500, 25);
    // Kill A at a seeded point between 20% and 60% of the input delivered by both.
    const killAt = Math.round(N * (0.2 + 0.4 * random()));
    await until("the kill point", async () => ((await a.metric("geowatch_sent_total")) ?? 0) + ((await b.metric("geowatch_sent_total")) ?? 0) >= killAt ? true : undefined, 90_000, 25);
    const sentA = (await a.metric("geowatch_sent_total")) ?? 0;
    a.proc.kill("SIGKILL");
    expect(await a.exited).toBe(null);
    console.log(`[kinesis kill] seed ${seed}: SIGKILL A (pid ${a.pid}) after ${sentA} sent by A, kill point ${killAt} of ${N}`);
    await producing;

    await until("B to hold all 4 leases", async () => {
      const l = await leasesByOwner(table);
      return l.size === 1 && l.get([...l.keys()][0]!)!.length === 4 ? true : undefined;
    }, 60_000, 250);
    await until("every input record in the outputs", () => (new Set([...rows(outA), ...rows(outB)].map((r) => r.id)).size === N ? true : undefined), 120_000, 500);
    const all = [...rows(outA), ...rows(outB)];
    const ids = new Set(all.map((r) => r.id));
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !ids.has(i));
    console.log(`[kinesis kill] ${all.length} delivered for ${N} distinct (duplicates ${all.length - ids.size}: what A had read but not checkpointed)`);
    expect(missing).toEqual([]);
    expect(all.length - ids.size, "duplicates are bounded by what one process reads ahead").toBeLessThanOrEqual(sentA + 10_000);
    expect(await stopRun(b)).toBe(0);
  }, 300_000);

  it("a SplitShard mid-flow: 0 missing and order kept per partition key", async () => {
    const N = 6000;
    const KEYS = 30;
    const stream = fresh("sys-split");
    const table = fresh("sys-split-leases");
    streams.push(stream);
    await createStream(stream, 2);
    const dir = tempDir("kinesis-split");
    const out = join(dir, "out.ndjson");
    const p = await startRun(config(dir, stream, table, out));
    children.push(p);
    await until("the process to hold both leases", async () => ([...(await leasesByOwner(table)).values()][0]?.length === 2 ? true : undefined), 60_000, 250);
    const producing = produce(stream, N, KEYS, 200, 50);
    await until("a third of the input delivered", () => (rows(out).length >= N / 3 ? true : undefined), 60_000, 50);
    const children2 = await splitShard(stream, "shardId-000000000000");
    console.log(`[kinesis split] split shardId-000000000000 into ${children2.join(", ")} after ${rows(out).length} delivered`);
    await producing;
    await until("every input record in the output", () => (new Set(rows(out).map((r) => r.id)).size === N ? true : undefined), 120_000, 500);
    const got = rows(out);
    const ids = new Set(got.map((r) => r.id));
    expect(Array.from({ length: N }, (_, i) => i).filter((i) => !ids.has(i))).toEqual([]);
    // Order per key: the first delivery of each record comes in the order it was written.
    const seen = new Set<number>();
    const perKey = new Map<string, number[]>();
    for (const r of got) {
      if (seen.has(r.id)) continue;
      seen.add(r.id);
      perKey.set(r.key, [...(perKey.get(r.key) ?? []), r.n]);
    }
    for (const [key, ns] of perKey) expect(ns, `order of ${key}`).toEqual([...ns].sort((x, y) => x - y));
    const l = await leasesByOwner(table);
    expect([...l.values()][0], "the process reads the two children and the untouched shard").toEqual([...children2, "shardId-000000000001"].sort());
    expect(await stopRun(p)).toBe(0);
  }, 300_000);

  it("the Kinesis endpoint is unreachable for 10 s mid-flow: /ready answers 503 during the cut, then 0 missing", async () => {
    const N = 3000;
    const stream = fresh("sys-cut");
    streams.push(stream);
    await createStream(stream, 2);
    const proxy = await tcpProxy(Number(new URL(kinesisEndpoint()).port));
    const dir = tempDir("kinesis-cut");
    const out = join(dir, "out.ndjson");
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: relay",
      "    count: 500",
      "    sleep_period: 0.2",
      "    consumers:",
      `      - { name: in, backend: kinesis, stream: ${stream}, endpoint: "http://127.0.0.1:${proxy.port}", shard_iterator_type: TRIM_HORIZON,`,
      `          checkpoint_path: ${join(dir, "checkpoints.db")}, idle_time_between_reads_ms: 200, codec: json }`,
      `    producers: [{ name: out, backend: file, path: ${out}, codec: json }]`,
    ]);
    const p = await startRun(cfg);
    children.push(p);
    try {
      await until("the process to be ready", async () => ((await p.ready())?.status === 200 ? true : undefined), 60_000, 200);
      const producing = produce(stream, N, 20, 100, 100);
      await until("a quarter of the input delivered", () => (rows(out).length >= N / 4 ? true : undefined), 60_000, 50);
      await proxy.cut();
      const cutAt = Date.now();
      const during: number[] = [];
      let state = "";
      while (Date.now() - cutAt < 10_000) {
        const r = await p.ready();
        if (r) {
          during.push(r.status);
          if (r.status === 503) state = r.body.nodes.find((n) => n.node === "in")?.state ?? state;
        }
        await sleep(250);
      }
      const deliveredInCut = rows(out).length;
      await proxy.restore();
      console.log(`[kinesis cut] 10 s cut: /ready answered ${during.filter((s) => s === 503).length} x 503 of ${during.length}; node state ${state}; ${deliveredInCut} delivered by the end of the cut`);
      expect(during.filter((s) => s === 503).length, "/ready answers 503 while the endpoint is unreachable").toBeGreaterThan(0);
      expect(state).toBe("reconnecting");
      await producing;
      await until("every input record in the output", () => (new Set(rows(out).map((r) => r.id)).size === N ? true : undefined), 120_000, 500);
      await until("/ready to answer 200 again", async () => ((await p.ready())?.status === 200 ? true : undefined), 30_000, 250);
      expect(await stopRun(p)).toBe(0);
    } finally {
      await proxy.cut();
    }
  }, 300_000);

  it("--until-idle reads a split stream to its end (children after the parent) and stops; a second run finds nothing new", async () => {
    const N = 2000;
    const stream = fresh("sys-idle");
    streams.push(stream);
    await createStream(stream, 2);
    await putRaw(stream, input(0, N / 2, 10));
    await splitShard(stream, "shardId-000000000001");
    await putRaw(stream, input(N / 2, N / 2, 10));
    const dir = tempDir("kinesis-idle");
    const out = join(dir, "out.ndjson");
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: drain",
      "    count: 500",
      "    sleep_period: 0.2",
      "    consumers:",
      `      - { name: in, backend: kinesis, stream: ${stream}, endpoint: "${kinesisEndpoint()}", shard_iterator_type: TRIM_HORIZON,`,
      `          checkpoint_path: ${join(dir, "checkpoints.db")}, idle_time_between_reads_ms: 200, shard_sync_ms: 1000, codec: json }`,
      `    producers: [{ name: out, backend: file, path: ${out}, codec: json }]`,
    ]);
    const first = await runUntilIdle(cfg, 120_000);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    const got = rows(out);
    expect(new Set(got.map((r) => r.id)).size, "every record, the split shard's children included").toBe(N);
    expect(got.length, "no duplicates in one uninterrupted run").toBe(N);
    const second = await runUntilIdle(cfg, 120_000);
    expect(second.code).toBe(0);
    expect(rows(out).length, "the checkpoints cover everything: nothing is read again").toBe(N);
  }, 300_000);
});
