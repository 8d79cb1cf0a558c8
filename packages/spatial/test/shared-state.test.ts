// Geofence state shared by the processes of a consumer group (PostgreSQL and a Kafka changelog), against the
// real servers: partitions move between stages ("processes"), batches are replayed, commits land late, and the
// events must equal those of one uninterrupted stage.
import { randomUUID } from "node:crypto";
import type { Message, Stage } from "@geowatch/core";
import { requireEnv } from "@geowatch/testkit";
import { fixKafkajs } from "@geowatch/kafka";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GeoWatchError } from "@geowatch/core";
import { geofence, memoryGeofenceState } from "../src/index.js";
import type { FeatureCollection, GeofenceState } from "../src/index.js";
import { fenceFeature, rng } from "./helpers.js";

// kafkajs 2.2.4 with the kafka backend's fixes, loaded after them (no TimeoutNegativeWarning from its request queue).
fixKafkajs();
const { default: kafkajs } = await import("kafkajs");

const square = (x0: number, y0: number, x1: number, y1: number) => [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]];
const FENCES: FeatureCollection = {
  type: "FeatureCollection",
  features: [fenceFeature("A", square(0, 0, 10, 10)), fenceFeature("B", square(20, 0, 30, 10)), fenceFeature("C", square(5, 5, 15, 15))],
};

const PARTITIONS = 2;
const PER_PARTITION = 60;

/** Keyed positions of random-walking tracks, split into partitions by track, with offsets per partition. */
function partitionsOf(topic: string, seed: number): Message[][] {
  const rand = rng(seed);
  const tracks = 12;
  const at = Array.from({ length: tracks }, () => [rand() * 30, rand() * 12]);
  const parts: Message[][] = Array.from({ length: PARTITIONS }, () => []);
  let date = Date.UTC(2026, 0, 1);
  while (parts.some((p) => p.length < PER_PARTITION)) {
    const k = Math.floor(rand() * tracks);
    const part = parts[k % PARTITIONS]!;
    if (part.length >= PER_PARTITION) continue;
    const p = at[k]!;
    p[0] = Math.min(32, Math.max(-2, p[0]! + (rand() * 2 - 1) * 6));
    p[1] = Math.min(14, Math.max(-2, p[1]! + (rand() * 2 - 1) * 6));
    const offset = String(part.length);
    part.push({
      key: `t${k}`,
      value: {
        metadata: { actiontype: "update", date: new Date((date += 1000)).toISOString() },
        data: { type: "Feature", properties: { id: `t${k}` }, geometry: { type: "Point", coordinates: [p[0], p[1]] } },
      },
      position: { stream: `${topic}:${k % PARTITIONS}`, offset, next: String(part.length + 1) },
    });
  }
  return parts;
}

const eventKey = (m: Message): string => {
  const md = (m.value as { metadata: Record<string, unknown> }).metadata;
  return `${String(md.actiontype)} ${String(md.fence)} ${String(md.track)} ${String(md.date)}`;
};

/** What the broker does with a batch: process, deliver (collect the events), then commit the state. */
async function deliver(stage: Stage, batch: Message[], into: string[], commit = true): Promise<(() => void | Promise<void>) | undefined> {
  const out = await stage.process(batch);
  for (const m of out.pass) into.push(eventKey(m));
  expect(out.dead ?? []).toEqual([]);
  if (commit) await out.commit?.();
  return out.commit;
}

/**
 * Moves partition 0 between stages: A reads both partitions, delivers a batch of partition 0 whose commit
 * lands only after B took the partition over (and replayed from the committed offset), then A gets the
 * partition back at B's committed offset; C, a fresh process, takes partition 1 over at the end.
 */
async function scenario(parts: Message[][], make: () => Promise<Stage>): Promise<{ got: string[]; want: Set<string> }> {
  const ref = geofence({ fences: FENCES, events: ["enter", "exit", "cross"] });
  const want: string[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i += 10) await deliver(ref, p.slice(i, i + 10), want);

  const got: string[] = [];
  const [p0, p1] = parts as [Message[], Message[]];
  const a = await make();
  const b = await make();
  await deliver(a, p0.slice(0, 30), got);
  await deliver(a, p1.slice(0, 30), got);
  // A delivers p0 30..40, its state commit is late; the group moves p0 to B, which starts at the committed 30.
  const late = await deliver(a, p0.slice(30, 40), got, false);
  await deliver(b, p0.slice(30, 40), got);
  await deliver(b, p0.slice(40, 50), got);
  await late?.();
  // p0 comes back to A at 50: what A remembers of p0's tracks (their state at 40) is stale.
  await deliver(a, p0.slice(50, 60), got);
  await deliver(a, p1.slice(30, 45), got);
  await a.close?.();
  // A is gone without committing p1 45..: C starts there from the shared state.
  const c = await make();
  await deliver(c, p1.slice(45, 60), got);
  await b.close?.();
  await c.close?.();
  return { got, want: new Set(want) };
}

function expectSameEvents({ got, want }: { got: string[]; want: Set<string> }): void {
  expect(want.size).toBeGreaterThan(20);
  const set = new Set(got);
  expect([...want].filter((e) => !set.has(e))).toEqual([]);
  expect([...set].filter((e) => !want.has(e))).toEqual([]);
  // The replayed batch (p0 30..40, delivered by A and again by B) is the only source of duplicates.
  expect(got.length - set.size).toBeLessThanOrEqual(10 * 3);
}

describe("geofence state in PostgreSQL shared by processes", () => {
  const base = requireEnv("GEOWATCH_PG_URL", "Start PostgreSQL: bash .ci/servers/postgres.sh start && source .servers/env/postgres.env");
  const db = `gw_spatial_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const url = new URL(base);
  url.pathname = `/${db}`;
  const admin = new pg.Client({ connectionString: base });

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
  });
  afterAll(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  });

  const stage = (table: string) => async (): Promise<Stage> => {
    const s = geofence({ fences: FENCES, events: ["enter", "exit", "cross"], state: { postgres: { url: url.toString(), table } } });
    await s.open?.();
    return s;
  };

  it("events equal one uninterrupted stage's while a partition moves, replays and late commits happen", async () => {
    expectSameEvents(await scenario(partitionsOf("in", 11), stage("moves")));
  });

  it("a late write of an older state does not move a track back", async () => {
    const parts = partitionsOf("in", 5);
    const make = stage("late");
    const a = await make(), b = await make();
    const p0 = parts[0]!;
    const sink: string[] = [];
    const late = await deliver(a, p0.slice(0, 20), sink, false);
    await deliver(b, p0.slice(0, 40), sink);
    await late?.();
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    try {
      const { rows } = await c.query<{ pos: string }>("SELECT pos::text FROM late");
      expect(rows.length).toBeGreaterThan(0);
      // Every stored state is B's (offsets 20..39 exist for each track written after A's batch); none is A's alone.
      const maxA = 19;
      const lastOf = new Map<string, number>();
      for (const m of p0.slice(0, 40)) lastOf.set(m.key!, Number(m.position!.offset));
      const tracksAfterA = [...lastOf.values()].filter((o) => o > maxA).length;
      expect(rows.filter((r) => Number(r.pos) > maxA).length).toBe(tracksAfterA);
    } finally {
      await c.end();
      await a.close?.();
      await b.close?.();
    }
  });

  it("refuses input not keyed by track (dead letter naming the key and the track)", async () => {
    const s = geofence({ fences: FENCES, trackId: "data.properties.id", state: { postgres: { url: url.toString(), table: "unkeyed" } } });
    await s.open?.();
    try {
      const m = partitionsOf("in", 3)[0]![0]!;
      const out = await s.process([{ ...m, key: "other" }]);
      expect(out.pass).toEqual([]);
      expect(out.dead?.[0]?.reason).toMatch(/not keyed by track \(key "other", track "t\d+"\)/);
      const ok = await s.process([m]);
      expect(ok.dead ?? []).toEqual([]);
    } finally {
      await s.close?.();
    }
  });
});

describe("geofence state in a Kafka changelog shared by processes", () => {
  const brokers = requireEnv("GEOWATCH_KAFKA_BROKERS", "Start Kafka: bash .ci/servers/kafka.sh start && source .servers/env/kafka.env").split(",");
  const kafka = new kafkajs.Kafka({ clientId: "gw-spatial-test", brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  const tag = randomUUID().slice(0, 8);
  const input = `gw-spatial-in-${tag}`;
  const topics: string[] = [input];

  beforeAll(async () => {
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: input, numPartitions: PARTITIONS }] });
  });
  afterAll(async () => {
    await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
  });

  const stage = (changelog: string) => async (): Promise<Stage> => {
    const s = geofence({ fences: FENCES, events: ["enter", "exit", "cross"], state: { kafka: { brokers, topic: changelog } } });
    await s.open?.();
    return s;
  };

  it("events equal one uninterrupted stage's while a partition moves, replays and late commits happen", async () => {
    const changelog = `gw-spatial-changelog-${tag}`;
    topics.push(changelog);
    expectSameEvents(await scenario(partitionsOf(input, 11), stage(changelog)));
    const md = await admin.fetchTopicMetadata({ topics: [changelog] });
    expect(md.topics[0]!.partitions.length).toBe(PARTITIONS);
    const configs = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: changelog, configNames: ["cleanup.policy"] }] });
    expect(configs.resources[0]!.configEntries[0]!.configValue).toBe("compact");
  });
});

describe("a shared state that fails for a while", () => {
  it("holds the batch back (retries) instead of dead-lettering it, and says so in the log", async () => {
    const inner = memoryGeofenceState();
    let failures = 0;
    const flaky: GeofenceState = {
      partitioned: true,
      get: (tracks) => {
        if (failures++ < 2) throw new GeoWatchError("STORE", "connection refused", { backend: "spatial", retryable: true });
        return inner.get(tracks);
      },
      set: (entries) => inner.set(entries),
      restore: () => undefined,
    };
    const errors: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (msg: string) => void errors.push(msg) };
    const s = geofence({ fences: FENCES, state: flaky }, { logger });
    const batch = partitionsOf("in", 9)[0]!.slice(0, 20);
    const want: string[] = [];
    await deliver(geofence({ fences: FENCES }), batch, want);
    const got: string[] = [];
    await deliver(s, batch, got);
    expect(want.length).toBeGreaterThan(0);
    expect(got).toEqual(want);
    expect(failures).toBe(3);
    expect(errors).toEqual(["geofence: shared state read failed; retrying", "geofence: shared state read failed; retrying"]);
  });
});
