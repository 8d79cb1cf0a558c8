import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Message, StageOutput } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { geofence, memoryGeofenceState, sqliteGeofenceState, spatialStages } from "../src/index.js";
import type { FeatureCollection } from "../src/index.js";
import { fenceFeature } from "./helpers.js";

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

const events = (out: StageOutput) => out.pass.map((m) => {
  const md = (m.value as { metadata: Record<string, unknown> }).metadata;
  return `${String(md.actiontype)}:${String(md.fence)}:${String(md.track)}`;
});

async function run(stage: ReturnType<typeof geofence>, msgs: Message[]): Promise<string[]> {
  return events(await stage.process(msgs));
}

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
    const file = join(mkdtempSync(join(tmpdir(), "gw-spatial-")), "state", "geofence.db");
    const first = geofence({ fences: FENCES, trackId: "data.properties.id", state: { sqlite: file }, events: ["enter", "exit", "cross"] });
    expect(await run(first, [at("t1", 1, 1), at("t2", 6, 6)])).toEqual(["enter:A:t1", "enter:A:t2", "enter:C:t2"]);
    await first.close?.();

    const second = geofence({ fences: FENCES, trackId: "data.properties.id", state: { sqlite: file }, events: ["enter", "exit", "cross"] });
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

  it("is built from config by name, with a fence file path and a sqlite state", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-spatial-"));
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "fences.geojson"), JSON.stringify(FENCES));
    const stage = spatialStages.geofence!(
      { stage: "geofence", fences: "./fences.geojson", trackId: "data.properties.id", state: { sqlite: "./state.db" } },
      { baseDir: dir },
    );
    expect(await run(stage as ReturnType<typeof geofence>, [at("t", 21, 1)])).toEqual(["enter:B:t"]);
    await stage.close?.();
  });
});
