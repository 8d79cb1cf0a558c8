import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Message, StageOutput } from "@geowatch/core";
import { afterAll, describe, expect, it } from "vitest";
import { compareOffsets } from "../src/geofence.js";
import { geofence, memoryGeofenceState, sqliteGeofenceState, spatialStages } from "../src/index.js";
import type { FeatureCollection, GeofenceState, TrackState } from "../src/index.js";
import { fenceFeature } from "./helpers.js";

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "gw-spatial-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const square = (x0: number, y0: number, x1: number, y1: number) => [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]];
const FENCES: FeatureCollection = {
  type: "FeatureCollection",
  features: [fenceFeature("A", square(0, 0, 10, 10)), fenceFeature("B", square(20, 0, 30, 10)), fenceFeature("C", square(5, 5, 15, 15))],
};

/** An envelope message with the position under data.geometry.coordinates. */
const at = (track: string, x: number, y: number, date = "2026-01-01T00:00:00Z"): Message => ({
  value: {
    metadata: { actiontype: "update", targettype: "vehicle", date },
    data: { type: "Feature", properties: { id: track }, geometry: { type: "Point", coordinates: [x, y] } },
  },
});

/** `at` read from a stream at an offset, as an ordered source hands it out. */
const from = (stream: string, offset: string | number, m: Message): Message => ({
  ...m,
  position: { stream, offset, next: typeof offset === "number" ? offset + 1 : offset },
});

const events = (out: StageOutput) => out.pass.map((m) => {
  const md = (m.value as { metadata: Record<string, unknown> }).metadata;
  return `${String(md.actiontype)}:${String(md.fence)}:${String(md.track)}`;
});

/** Processes a batch and commits it, as the broker does once the batch's events are delivered. */
async function run(stage: ReturnType<typeof geofence>, msgs: Message[]): Promise<string[]> {
  const out = await stage.process(msgs);
  await out.commit?.();
  return events(out);
}

const stateIn = async (file: string, tracks: string[]): Promise<Array<TrackState | undefined>> => {
  const s = sqliteGeofenceState(file);
  try {
    return [...(await s.get(tracks))];
  } finally {
    await s.close?.();
  }
};

describe("geofence", () => {
  it("emits enter, exit and cross along a track, with overlapping fences", async () => {
    const stage = geofence({ fences: FENCES, trackId: "data.properties.id", events: ["enter", "exit", "cross"] });
    expect(await run(stage, [at("t1", -5, 5)])).toEqual([]);
    expect(await run(stage, [at("t1", 2, 2)])).toEqual(["enter:A:t1"]);
    expect(await run(stage, [at("t1", 7, 7)])).toEqual(["enter:C:t1"]);
    expect(await run(stage, [at("t1", 12, 12)])).toEqual(["exit:A:t1"]);
    expect(await run(stage, [at("t1", 17, 5)])).toEqual(["exit:C:t1"]);
    expect(await run(stage, [at("t1", 35, 5)])).toEqual(["cross:B:t1"]); // jumped over B between two reports
    expect(await run(stage, [at("t1", 25, 5)])).toEqual(["enter:B:t1"]);
  });

  it("keeps tracks apart and handles several positions of one track in a batch, in order", async () => {
    const stage = geofence({ fences: FENCES, trackId: "data.properties.id" });
    const out = await run(stage, [at("a", 1, 1), at("b", 21, 1), at("a", 50, 50), at("b", 22, 2), at("a", 3, 3)]);
    expect(out).toEqual(["enter:A:a", "enter:B:b", "exit:A:a", "enter:A:a"]);
  });

  it("emits inside for every fence and outside when in none; builds the event envelope", async () => {
    const stage = geofence({ fences: FENCES, trackId: "data.properties.id", events: ["inside", "outside"] });
    const msg = at("t", 6, 6, "2026-05-01T10:00:00Z");
    const out = await stage.process([msg, at("t", 100, 0)]);
    expect(events(out)).toEqual(["inside:A:t", "inside:C:t", "outside:null:t"]);
    const first = out.pass[0]!;
    expect(first.value).toEqual({
      metadata: { actiontype: "inside", targettype: "geofence", fence: "A", track: "t", date: "2026-05-01T10:00:00Z" },
      data: (msg.value as { data: unknown }).data,
    });
    expect(first.key).toBe("t");
    expect(first.metadata?.fence).toBe("A");
  });

  it("uses the message key as the track by default, takes bare Features, passes inputs through when asked", async () => {
    const stage = geofence({ fences: FENCES, passThrough: true });
    const m: Message = { key: "k1", value: { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [1, 1] } } };
    const out = await stage.process([m]);
    expect(events({ pass: out.pass.slice(0, 1) })).toEqual(["enter:A:k1"]);
    expect(out.pass[1]).toBe(m);
  });

  it("geofences lines and polygons by intersection", async () => {
    const stage = geofence({ fences: FENCES });
    const line: Message = { key: "l", value: { type: "LineString", coordinates: [[-5, 25], [-5, 5], [25, 5]] } };
    expect(await run(stage, [line])).toEqual(["enter:A:l", "enter:B:l", "enter:C:l"]);
  });

  it("dead-letters messages without a track id, naming the path", async () => {
    const stage = geofence({ fences: FENCES, trackId: "data.properties.id" });
    const out = await stage.process([{ value: { type: "Point", coordinates: [1, 1] } }]);
    expect(out.pass).toEqual([]);
    expect(out.dead?.[0]?.reason).toMatch(/no track id .* at value\.data\.properties\.id/);
  });

  it("keeps state in a pluggable async store", async () => {
    const inner = memoryGeofenceState();
    const calls: string[] = [];
    const state = {
      get: async (t: readonly string[]) => (calls.push(`get ${t.join(",")}`), inner.get(t)),
      set: async (e: ReadonlyArray<readonly [string, { fences: string[]; x: number; y: number }]>) => {
        calls.push(`set ${e.map(([t, s]) => `${t}=${s.fences.join("+")}`).join(",")}`);
        await inner.set(e);
      },
    };
    const stage = geofence({ fences: FENCES, trackId: "data.properties.id", state });
    expect(await run(stage, [at("x", 1, 1), at("y", 50, 50)])).toEqual(["enter:A:x"]);
    expect(await run(stage, [at("x", 50, 50)])).toEqual(["exit:A:x"]);
    expect(calls).toEqual(["get x,y", "set x=A", "get x", "set x="]);
    expect(inner.size).toBe(1);
  });

  it("keeps state in SQLite across a reopen", async () => {
    const file = join(tmp(), "state", "geofence.db");
    const first = geofence({ fences: FENCES, trackId: "data.properties.id", state: { sqlite: file }, events: ["enter", "exit", "cross"] });
    await first.open?.();
    expect(await run(first, [at("t1", 1, 1), at("t2", 6, 6)])).toEqual(["enter:A:t1", "enter:A:t2", "enter:C:t2"]);
    await first.close?.();

    const second = geofence({ fences: FENCES, trackId: "data.properties.id", state: { sqlite: file }, events: ["enter", "exit", "cross"] });
    await second.open?.();
    // Still inside A: no enter again. t2 leaves A but stays in C; position survived, so the jump 1,1 -> 35,5 crosses B.
    expect(await run(second, [at("t1", 2, 2), at("t2", 12, 12)])).toEqual(["exit:A:t2"]);
    expect(await run(second, [at("t1", 35, 5)])).toEqual(["exit:A:t1", "cross:B:t1"]);
    await second.close?.();

    const state = sqliteGeofenceState(file);
    expect(await state.get(["t1", "t2", "nobody"])).toEqual([
      { fences: [], x: 35, y: 5 },
      { fences: ["C"], x: 12, y: 12 },
      undefined,
    ]);
    await state.close?.();
  });

  it("is built from config by name, with a fence file path and a sqlite state opened only by open()", async () => {
    const dir = tmp();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "fences.geojson"), JSON.stringify(FENCES));
    const stage = spatialStages.geofence!(
      { stage: "geofence", fences: "./fences.geojson", trackId: "data.properties.id", state: { sqlite: "./state/state.db" } },
      { baseDir: dir },
    );
    // Building the stage (what `geowatch validate` does) creates nothing.
    expect(existsSync(join(dir, "state"))).toBe(false);
    expect(() => stage.process([at("t", 21, 1)])).toThrow(/geofence: state ".*state\.db" is not open \(call open\(\) before process\(\)\)/);
    await stage.open?.();
    await stage.open?.(); // a retried connect opens again: no second database
    expect(existsSync(join(dir, "state", "state.db"))).toBe(true);
    expect(await run(stage as ReturnType<typeof geofence>, [at("t", 21, 1)])).toEqual(["enter:B:t"]);
    await stage.close?.();
    expect(() => stage.process([at("t", 21, 1)])).toThrow(/geofence: stage is closed/);
  });
});

describe("geofence state follows delivery", () => {
  const opts = { fences: FENCES, trackId: "data.properties.id" } as const;

  it("shows a batch's changes to later batches before it is committed", async () => {
    const stage = geofence(opts);
    const first = await stage.process([at("t", 1, 1)]);
    expect(events(first)).toEqual(["enter:A:t"]);
    // Not committed yet (its events may still be on their way): the next batch still sees t inside A.
    const second = await stage.process([at("t", 2, 2), at("t", 50, 50)]);
    expect(events(second)).toEqual(["exit:A:t"]);
    const third = await stage.process([at("t", 51, 51), at("t", 3, 3)]);
    expect(events(third)).toEqual(["enter:A:t"]);
  });

  it("writes nothing durable before commit, and each batch's own states at its commit", async () => {
    const file = join(tmp(), "state.db");
    const stage = geofence({ ...opts, state: { sqlite: file } });
    await stage.open?.();
    const b1 = await stage.process([at("a", 1, 1), at("b", 21, 1)]);
    const b2 = await stage.process([at("a", 50, 50)]);
    expect(events(b1)).toEqual(["enter:A:a", "enter:B:b"]);
    expect(events(b2)).toEqual(["exit:A:a"]);
    expect(await stateIn(file, ["a", "b"])).toEqual([undefined, undefined]);

    await b1.commit!();
    // b1's commit writes a as b1 left it (inside A), not b2's newer state.
    expect((await stateIn(file, ["a", "b"])).map((s) => s?.fences)).toEqual([["A"], ["B"]]);
    // a is still b2's in memory: a later batch must not see b1's durable copy.
    expect(events(await stage.process([at("a", 51, 51)]))).toEqual([]);
    await b2.commit!();
    expect((await stateIn(file, ["a"]))[0]?.fences).toEqual([]);
    expect(events(await stage.process([at("a", 2, 2)]))).toEqual(["enter:A:a"]);
    await stage.close?.();
  });

  it("calls set only in commit, and reads the durable state only for tracks no pending batch holds", async () => {
    const inner = memoryGeofenceState();
    const calls: string[] = [];
    const state: GeofenceState = {
      get: (t) => (calls.push(`get ${t.join(",")}`), inner.get(t)),
      set: (e) => (calls.push(`set ${e.map(([t, s]) => `${t}=${s.fences.join("+")}`).join(",")}`), inner.set(e)),
    };
    const stage = geofence({ ...opts, state });
    const b1 = await stage.process([at("x", 1, 1)]);
    const b2 = await stage.process([at("x", 50, 50), at("y", 21, 1)]);
    expect(calls).toEqual(["get x", "get y"]);
    await b1.commit!();
    await b2.commit!();
    expect(calls).toEqual(["get x", "get y", "set x=A", "set x=,y=B"]);
    await stage.process([at("x", 1, 1)]);
    expect(calls.at(-1)).toBe("get x"); // committed and dropped from memory: read back from the state
  });

  it("leaves the durable state as it was when a batch is never committed (a crash before delivery)", async () => {
    const file = join(tmp(), "state.db");
    const input = [
      from("in.ndjson", 0, at("t", 1, 1, "d0")),
      from("in.ndjson", 10, at("t", 50, 50, "d1")),
      from("in.ndjson", 20, at("t", 21, 1, "d2")),
    ];
    const crashed = geofence({ ...opts, state: { sqlite: file } });
    await crashed.open?.();
    expect(await run(crashed, input.slice(0, 1))).toEqual(["enter:A:t"]);
    const lost = await crashed.process(input.slice(1));
    expect(events(lost)).toEqual(["exit:A:t", "enter:B:t"]);
    await crashed.close?.(); // killed before the events were delivered: no commit

    expect(await stateIn(file, ["t"])).toEqual([{ fences: ["A"], x: NaN, y: NaN, covered: { "in.ndjson": 0 } }]);
    // The source redelivers from its last committed position: the same events again, none invented.
    const restarted = geofence({ ...opts, state: { sqlite: file } });
    await restarted.open?.();
    expect(await run(restarted, input.slice(1))).toEqual(["exit:A:t", "enter:B:t"]);
    await restarted.close?.();
  });

  it("skips replayed input the state already covers, per track and stream (a crash after commit, before the source's)", async () => {
    const file = join(tmp(), "state.db");
    const s = "in.ndjson";
    const input = [
      from(s, 0, at("a", 1, 1)), from(s, 7, at("b", 21, 1)), from(s, 15, at("a", 50, 50)),
      from(s, 22, at("b", 22, 2)), from(s, 30, at("a", 2, 2)),
    ];
    const first = geofence({ ...opts, state: { sqlite: file } });
    await first.open?.();
    expect(await run(first, input.slice(0, 3))).toEqual(["enter:A:a", "enter:B:b", "exit:A:a"]);
    await first.close?.();
    // State covers a up to 15 and b up to 7; the source never committed: everything is replayed.
    const replay = geofence({ ...opts, state: { sqlite: file } });
    await replay.open?.();
    expect(await run(replay, input)).toEqual(["enter:A:a"]);
    // Another stream is not covered by this one's offsets; input without a position is never skipped.
    expect(await run(replay, [from("other", 0, at("a", 60, 60)), at("a", 3, 3)])).toEqual(["exit:A:a", "enter:A:a"]);
    expect((await replay.process([from(s, 30, at("a", 70, 70))])).pass).toEqual([]); // covered since the run above
    await replay.close?.();
  });

  it("compares Kafka and Kinesis offsets as numbers, and never skips what it cannot compare", async () => {
    const stage = geofence(opts);
    const kinesis = (n: string, x: number) => from("shard-0", n.padStart(56, "4"), at("k", x, 1));
    expect(await run(stage, [from("p0", "9", at("t", 1, 1)), kinesis("100", 1)])).toEqual(["enter:A:t", "enter:A:k"]);
    // "8" is at or before "9" (skipped), "10" after it although not as plain strings.
    expect(await run(stage, [from("p0", "8", at("t", 50, 50))])).toEqual([]);
    expect(await run(stage, [from("p0", "10", at("t", 50, 50))])).toEqual(["exit:A:t"]);
    expect(await run(stage, [kinesis("099", 50)])).toEqual([]);
    expect(await run(stage, [kinesis("100", 50)])).toEqual([]);
    expect(await run(stage, [kinesis("101", 50)])).toEqual(["exit:A:k"]);
    // Offsets that are not integers cannot be ordered: processed, never skipped.
    expect(await run(stage, [from("p0", "x", at("t", 1, 1))])).toEqual(["enter:A:t"]);
    expect(await run(stage, [from("p0", "x", at("t", 50, 50))])).toEqual(["exit:A:t"]);

    expect(compareOffsets(9, 10)).toBeLessThan(0);
    expect(compareOffsets("10", "9")).toBeGreaterThan(0);
    expect(compareOffsets("0010", 10)).toBe(0);
    expect(compareOffsets("49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692540925702759324208523137515618")).toBeLessThan(0);
    expect(compareOffsets("abc", "abd")).toBeUndefined();
    expect(compareOffsets(1.5, "2")).toBeUndefined();
    expect(compareOffsets(Number.NaN, 1)).toBeUndefined();
  });

  it("orders batches over an async state: a batch waits for the one before to be in memory", async () => {
    const inner = memoryGeofenceState();
    const slow: GeofenceState = {
      get: async (t) => (await new Promise((r) => setTimeout(r, 20)), inner.get(t)),
      set: (e) => inner.set(e),
    };
    const stage = geofence({ ...opts, state: slow });
    const [b1, b2] = await Promise.all([stage.process([at("t", 1, 1)]), stage.process([at("t", 50, 50)])]);
    expect([...events(b1), ...events(b2)]).toEqual(["enter:A:t", "exit:A:t"]);
  });

  it("opens state databases written before positions were stored", async () => {
    const file = join(tmp(), "old.db");
    const { DatabaseSync } = createRequire(import.meta.url)("node:sqlite") as typeof import("node:sqlite");
    const old = new DatabaseSync(file);
    old.exec("CREATE TABLE geofence_state (track TEXT PRIMARY KEY, fences TEXT NOT NULL, x REAL, y REAL) WITHOUT ROWID");
    old.exec(`INSERT INTO geofence_state VALUES ('t', '["A"]', NULL, NULL)`);
    old.close();
    const stage = geofence({ ...opts, state: { sqlite: file } });
    await stage.open?.();
    // No position stored: a replay of t is processed, never skipped.
    expect(await run(stage, [from("s", 0, at("t", 2, 2)), from("s", 1, at("t", 50, 50))])).toEqual(["exit:A:t"]);
    await stage.close?.();
    expect(await stateIn(file, ["t"])).toEqual([{ fences: [], x: NaN, y: NaN, covered: { s: 1 } }]);
  });
});
