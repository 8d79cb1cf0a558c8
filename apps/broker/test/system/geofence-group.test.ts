// Issue 14: geofence state that follows its Kafka partition. A consumer group of `geowatch run` processes
// (2, then 3 by a scale-up mid-flow, then one SIGKILLed) on a 6-partition topic keyed by track, with the state
// in PostgreSQL or in a compacted Kafka changelog: the set of enter/exit/cross events equals one uninterrupted
// process's, duplicates counted and bounded by what was in flight when partitions moved.
// Real servers: bash .ci/servers/kafka.sh start; bash .ci/servers/postgres.sh start.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { geofence } from "@geowatch/spatial";
import type { Feature, FeatureCollection } from "@geowatch/spatial";
import type { Message } from "@geowatch/core";
import { requireEnv, seededRandom } from "@geowatch/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { requireServer, sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";
import { committed, createTopics, deleteTopics, kafka } from "./kafka-peer.js";

const COUNT = 100;
const MAX_IN_FLIGHT = 500;
const TRACKS = 60;
const STEPS = 160; // 9,600 points
const topics: string[] = [];
const children: RunChild[] = [];
const databases: string[] = [];

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  if (process.env.GEOWATCH_KAFKA_BROKERS) await deleteTopics(topics);
  for (const d of databases) psql(process.env.GEOWATCH_PG_URL!, `DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
});

/** Runs one SQL statement with Debian's psql (installed with the server by .ci/servers/postgres.sh). */
function psql(url: string, sql: string): void {
  const r = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`psql ${JSON.stringify(sql)} failed: ${r.error?.message ?? r.stderr}`);
}

const square = (id: string, x0: number, y0: number, x1: number, y1: number): Feature => ({
  type: "Feature",
  id,
  properties: {},
  geometry: { type: "Polygon", coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] },
});
const FENCES: FeatureCollection = {
  type: "FeatureCollection",
  features: [square("A", 0, 0, 10, 10), square("B", 20, 0, 30, 10), square("C", 5, 5, 15, 15), square("D", 0, 20, 30, 30)],
};

/** Tracks random-walking across the fences, step-major; each input has its own date, so an event names its input. */
function positions(seed: number): Array<{ key: string; value: string }> {
  const rand = seededRandom(seed);
  const at = Array.from({ length: TRACKS }, () => [rand() * 40 - 5, rand() * 40 - 5]);
  const out: Array<{ key: string; value: string }> = [];
  const t0 = Date.UTC(2026, 0, 1);
  for (let s = 0; s < STEPS; s++) {
    for (let k = 0; k < TRACKS; k++) {
      const p = at[k]!;
      const d = rand() < 0.05 ? 15 : 2.5;
      p[0] = Math.min(40, Math.max(-10, p[0]! + (rand() * 2 - 1) * d));
      p[1] = Math.min(40, Math.max(-10, p[1]! + (rand() * 2 - 1) * d));
      const date = new Date(t0 + out.length * 1000).toISOString();
      out.push({
        key: `t${k}`,
        value: JSON.stringify({
          metadata: { actiontype: "update", targettype: "vehicle", date },
          data: { type: "Feature", properties: { id: `t${k}` }, geometry: { type: "Point", coordinates: [p[0], p[1]] } },
        }),
      });
    }
  }
  return out;
}

const keyOf = (md: Record<string, unknown>) => `${String(md.actiontype)} ${String(md.fence)} ${String(md.track)} ${String(md.date)}`;

/** One uninterrupted geofence over the input in order (per track, the order any partitioning keeps). */
async function reference(input: Array<{ key: string; value: string }>): Promise<{ events: Set<string>; maxPerInput: number }> {
  const stage = geofence({ fences: FENCES, trackId: "data.properties.id", events: ["enter", "exit", "cross"] });
  const events = new Set<string>();
  let maxPerInput = 0;
  for (const r of input) {
    const out = await stage.process([{ key: r.key, value: JSON.parse(r.value) as unknown } as Message]);
    maxPerInput = Math.max(maxPerInput, out.pass.length);
    for (const m of out.pass) events.add(keyOf((m.value as { metadata: Record<string, unknown> }).metadata));
  }
  return { events, maxPerInput };
}

async function produceKeyed(topic: string, input: Array<{ key: string; value: string }>, batch: number, paceMs: number, onProgress: (n: number) => void): Promise<void> {
  const p = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  try {
    for (let i = 0; i < input.length; i += batch) {
      await p.send({ topic, acks: -1, messages: input.slice(i, i + batch) });
      onProgress(Math.min(input.length, i + batch));
      await sleep(paceMs);
    }
  } finally {
    await p.disconnect();
  }
}

/** Every event on the output topic (a fresh group from the beginning), as `actiontype fence track date`. */
async function readEvents(topic: string, total: number): Promise<string[]> {
  const out: string[] = [];
  const c = kafka().consumer({ groupId: `verify-${topic}-${Date.now()}`, maxWaitTimeInMs: 200 });
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  await c.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) out.push(keyOf((JSON.parse(m.value!.toString("utf8")) as { metadata: Record<string, unknown> }).metadata));
    },
  });
  const deadline = Date.now() + 60_000;
  while (out.length < total && Date.now() < deadline) await sleep(200);
  await c.disconnect();
  return out;
}

async function outputSize(topic: string): Promise<number> {
  const a = kafka().admin();
  await a.connect();
  try {
    return (await a.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0);
  } finally {
    await a.disconnect();
  }
}

const joins = (c: RunChild) => c.logs().filter((l) => l.msg === "kafka: joined group");
const owned = (c: RunChild) => (joins(c).at(-1)?.partitions as string[] | undefined) ?? [];

type Engine = "postgres" | "kafka";

async function stateConfig(engine: Engine, tag: string): Promise<{ lines: string[]; env: Record<string, string> }> {
  if (engine === "kafka") {
    const changelog = unique(`geofence-changelog-${tag}`);
    topics.push(changelog);
    return { lines: [`        state: { kafka: { brokers: ["\${GEOWATCH_KAFKA_BROKERS}"], topic: ${changelog} } }`], env: {} };
  }
  const base = requireEnv("GEOWATCH_PG_URL", "Start PostgreSQL: bash .ci/servers/postgres.sh start && source .servers/env/postgres.env");
  const db = `gw_geofence_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  psql(base, `CREATE DATABASE ${db}`);
  databases.push(db);
  const url = new URL(base);
  url.pathname = `/${db}`;
  return { lines: ["        state: { postgres: { url: \"${GW_TEST_STATE_URL}\" } }"], env: { GW_TEST_STATE_URL: url.toString() } };
}

describe.each<Engine>(["postgres", "kafka"])("geofence state shared by a consumer group (%s)", (engine) => {
  it("2 processes, a third joins mid-flow, one is SIGKILLed: the events equal one uninterrupted process's", async () => {
    requireServer("GEOWATCH_KAFKA_BROKERS");
    const input = unique(`geofence-in-${engine}`);
    const output = unique(`geofence-out-${engine}`);
    const group = unique(`geofence-group-${engine}`);
    topics.push(input, output);
    await createTopics([input], 6);
    await createTopics([output], 1);
    const dir = tempDir(`geofence-group-${engine}`);
    writeFileSync(join(dir, "fences.geojson"), JSON.stringify(FENCES));
    const state = await stateConfig(engine, engine);
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: fence",
      `    count: ${COUNT}`,
      `    max_in_flight: ${MAX_IN_FLIGHT}`,
      "    sleep_period: 0.1",
      `    consumers: [{ name: in, backend: kafka, brokers: "\${GEOWATCH_KAFKA_BROKERS}", topic: ${input}, group_id: ${group}, from_beginning: true, codec: json }]`,
      "    stages:",
      "      - stage: geofence",
      "        fences: '${GEOWATCH_CONFIG_DIR}/fences.geojson'",
      "        track_id: data.properties.id",
      "        events: [enter, exit, cross]",
      ...state.lines,
      `    producers: [{ name: out, backend: kafka, brokers: "\${GEOWATCH_KAFKA_BROKERS}", topic: ${output}, codec: json }]`,
    ]);
    const data = positions(engine === "postgres" ? 14 : 41);
    const want = await reference(data);
    expect(want.events.size).toBeGreaterThan(500);

    const a = await startRun(cfg, state.env);
    children.push(a);
    await until("A to own the 6 partitions", () => (owned(a).length === 6 ? true : undefined), 60_000);
    const b = await startRun(cfg, state.env);
    children.push(b);
    await until("the group to split between A and B", () => (owned(a).length > 0 && owned(b).length > 0 && owned(a).length + owned(b).length === 6 ? true : undefined), 60_000);

    const t0 = Date.now();
    let produced = 0;
    const producing = produceKeyed(input, data, 300, 350, (n) => (produced = n));
    // Scale-up 2 -> 3 at a quarter of the input.
    await until("a quarter of the input", () => (produced >= data.length / 4 ? true : undefined), 60_000, 50);
    const c = await startRun(cfg, state.env);
    children.push(c);
    await until("C to own partitions", () => (owned(c).length > 0 && owned(a).length + owned(b).length + owned(c).length === 6 ? true : undefined), 60_000);
    console.log(`[geofence group ${engine}] scale-up at ${produced}/${data.length} (${Date.now() - t0} ms): A ${owned(a).join(",")}; B ${owned(b).join(",")}; C ${owned(c).join(",")}`);
    // SIGKILL B at half the input, while it owns partitions with work left.
    await until("half the input", () => (produced >= data.length / 2 ? true : undefined), 60_000, 50);
    const victim = owned(b).length > 0 ? b : a;
    const survivor = victim === b ? a : b;
    const victimParts = owned(victim);
    victim.proc.kill("SIGKILL");
    expect(await victim.exited).toBe(null);
    const atKill = await committed(group, input);
    console.log(`[geofence group ${engine}] SIGKILL ${victim === b ? "B" : "A"} (owned ${victimParts.join(",")}) at ${produced}/${data.length}, group committed ${atKill}`);
    await producing;
    expect(atKill).toBeLessThan(data.length);

    // The survivors take the partitions over once the coordinator expires the killed member's session (30 s).
    await until("the survivors to own all 6 partitions", () => (owned(survivor).length + owned(c).length === 6 && owned(c).length > 0 ? true : undefined), 90_000, 250);
    const tookOver = Date.now();
    await until("the group to commit every input offset", async () => ((await committed(group, input)) === data.length ? true : undefined), 90_000, 500);
    console.log(`[geofence group ${engine}] took over ${tookOver - t0} ms after the first record; all committed ${Date.now() - t0} ms after`);
    expect(await stopRun(survivor)).toBe(0);
    expect(await stopRun(c)).toBe(0);
    const restored = [a, b, c].flatMap((p) => p.logs().filter((l) => l.msg === "geofence: streams (re)started; state restored"));

    const total = await outputSize(output);
    const got = await readEvents(output, total);
    expect(got.length).toBe(total);
    const set = new Set(got);
    const missing = [...want.events].filter((e) => !set.has(e));
    const invented = [...set].filter((e) => !want.events.has(e));
    // Duplicates come only from input replayed after a partition moved: at most what a process had in flight
    // (max_in_flight + count records) per move (the kill, and every group join after a member's first),
    // times the most events one input makes.
    const laterJoins = joins(a).length + joins(b).length + joins(c).length - 3;
    const bound = (1 + laterJoins) * (MAX_IN_FLIGHT + COUNT) * want.maxPerInput;
    const duplicates = got.length - set.size;
    console.log(
      `[geofence group ${engine}] ${data.length} points, ${want.events.size} events expected; output ${got.length}, distinct ${set.size}, missing ${missing.length}, invented ${invented.length}, duplicates ${duplicates} (bound ${bound}); ${restored.length} restores`,
    );
    expect(missing.slice(0, 10)).toEqual([]);
    expect(invented.slice(0, 10)).toEqual([]);
    expect(duplicates).toBeLessThanOrEqual(bound);
    // Each process restored the partitions it started reading (first reads, the scale-up, the takeover).
    expect(restored.length).toBeGreaterThanOrEqual(6);
  }, 240_000);
});
