import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { booleanPointInPolygon } from "@turf/boolean-point-in-polygon";
import type { Logger, Message, StageOutput } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { createFenceIndex, geofence, loadFences, sqliteGeofenceState } from "../src/index.js";
import type { FeatureCollection } from "../src/index.js";
import { geometryBBox } from "../src/geojson.js";
import { fenceFeature, rng, starRing } from "./helpers.js";

const square = (x0: number, y0: number, x1: number, y1: number): number[][] => [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
const multi = (id: string, parts: number[][][][]): FeatureCollection["features"][number] => ({
  type: "Feature", id, properties: {}, geometry: { type: "MultiPolygon", coordinates: parts },
});
const fc = (...features: FeatureCollection["features"]): FeatureCollection => ({ type: "FeatureCollection", features });
const ids = (index: ReturnType<typeof createFenceIndex>, x: number, y: number): string[] =>
  Array.from(index.hits.subarray(0, index.queryPoint(x, y)), (i) => index.fences[i]!.id).sort();

const point = (track: string, x: number, y: number): Message => ({
  key: track,
  value: { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [x, y] } },
});
const events = (out: StageOutput): string[] => out.pass.map((m) => `${String(m.metadata!.actiontype)}:${String(m.metadata!.fence)}`);

/** Runs points of one track through a geofence stage batch by batch, committing as the broker does. */
async function track(fences: FeatureCollection, path: Array<[number, number]>): Promise<string[]> {
  const stage = geofence({ fences, events: ["enter", "exit"] });
  await stage.open?.();
  const out: string[] = [];
  for (const [x, y] of path) {
    const r = await stage.process([point("t", x, y)]);
    await r.commit?.();
    out.push(...events(r));
  }
  await stage.close?.();
  return out;
}

const recorder = (): Logger & { warnings: string[] } => {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, error() {}, warn: (msg) => void warnings.push(msg) };
};

describe("MultiPolygon fences with overlapping parts", () => {
  // Two parts overlapping on [5,10]x[0,10]; the second part's hole lies inside the first part.
  const overlapping = multi("M", [[square(0, 0, 10, 10)], [square(5, 0, 15, 10), square(6, 2, 8, 4)]]);

  it("counts a point inside two parts (or in one part's hole but inside another part) as inside", () => {
    const index = createFenceIndex(loadFences(fc(overlapping)));
    expect(ids(index, 7, 7)).toEqual(["M"]); // in both parts
    expect(ids(index, 7, 3)).toEqual(["M"]); // in the second part's hole, inside the first part
    expect(ids(index, 2, 5)).toEqual(["M"]);
    expect(ids(index, 12, 5)).toEqual(["M"]);
    expect(ids(index, 16, 5)).toEqual([]);
    expect(booleanPointInPolygon([7, 7], overlapping as never)).toBe(true);
  });

  it("gives no false exit/enter pair for a track crossing the overlap", async () => {
    const path: Array<[number, number]> = [[-1, 5], [2, 5], [7, 5], [7, 3], [12, 5], [16, 5]];
    expect(await track(fc(overlapping), path)).toEqual(["enter:M", "exit:M"]);
  });

  it("agrees with turf on random MultiPolygons whose parts overlap, with holes, 10,000 points", () => {
    const rand = rng(1313);
    const features: FeatureCollection["features"] = [];
    for (let i = 0; i < 120; i++) {
      const cx = -150 + 300 * rand(), cy = -70 + 140 * rand(), r = 1 + 6 * rand();
      const parts: number[][][][] = [];
      // 2-40 parts around one centre: most overlap each other (over 32 parts tests the many-colour path).
      const nParts = i % 10 === 0 ? 40 : 2 + Math.floor(rand() * 4);
      for (let p = 0; p < nParts; p++) {
        const px = cx + (rand() - 0.5) * r, py = cy + (rand() - 0.5) * r, pr = r * (0.4 + 0.6 * rand());
        const rings = [starRing(rand, px, py, pr, 12 + Math.floor(rand() * 20))];
        if (rand() < 0.4) rings.push(starRing(rand, px, py, pr * 0.3, 8, true));
        parts.push(rings);
      }
      features.push(multi(`m${i}`, parts));
    }
    const all = fc(...features);
    const index = createFenceIndex(loadFences(all));
    const boxes = features.map((f) => geometryBBox(f.geometry!));
    let multiHits = 0;
    for (let k = 0; k < 10_000; k++) {
      const f = features[k % features.length]!;
      const g = f.geometry as { coordinates: number[][][][] };
      const c = g.coordinates[0]![0]![0]!;
      const x = c[0]! + (rand() - 0.5) * 8, y = c[1]! + (rand() - 0.5) * 8;
      const near = features.filter((_, i) => x >= boxes[i]![0]! && y >= boxes[i]![1]! && x <= boxes[i]![2]! && y <= boxes[i]![3]!);
      const want = near.filter((q) => booleanPointInPolygon([x, y], q as never)).map((q) => String(q.id)).sort();
      expect(ids(index, x, y), `point ${x},${y}`).toEqual(want);
      // How often the point is inside two parts of its fence: the case the old crossing count got wrong.
      const inParts = g.coordinates.filter((p) => booleanPointInPolygon([x, y], { type: "Polygon", coordinates: p } as never)).length;
      if (inParts >= 2) multiHits++;
    }
    expect(multiHits).toBeGreaterThan(1000);
  });
});

describe("fences crossing the antimeridian", () => {
  const box = fenceFeature("pacific", [[[170, -10], [-170, -10], [-170, 10], [170, 10], [170, -10]]]);

  it("splits a 170E-170W box at 180 instead of inverting it", () => {
    const index = createFenceIndex(loadFences(fc(box)));
    expect(ids(index, 0, 0)).toEqual([]);
    expect(ids(index, 100, 5)).toEqual([]);
    expect(ids(index, 175, 0)).toEqual(["pacific"]);
    expect(ids(index, -175, 0)).toEqual(["pacific"]);
    expect(ids(index, 180, 0)).toEqual(["pacific"]);
    expect(ids(index, -180, 0)).toEqual(["pacific"]);
    expect(ids(index, 175, 11)).toEqual([]);
    expect(ids(index, -169, 0)).toEqual([]);
    expect(index.fences[0]!.geometry.type).toBe("MultiPolygon");
  });

  it("agrees with turf on the same fences split by hand, holes and MultiPolygons included", () => {
    const rand = rng(180);
    const crossing: FeatureCollection["features"] = [];
    const split: FeatureCollection["features"] = [];
    for (let i = 0; i < 30; i++) {
      // A star around a centre near 180, written with longitudes wrapped into [-180, 180].
      const cx = 175 + 10 * rand(), cy = -60 + 120 * rand(), r = 2 + 8 * rand();
      const outer = starRing(rand, cx, cy, r, 30), hole = starRing(rand, cx, cy, r * 0.3, 10, true);
      const wrap = (ring: number[][]) => ring.map(([x, y]) => [x! > 180 ? x! - 360 : x!, y!]);
      crossing.push(fenceFeature(`a${i}`, [wrap(outer), wrap(hole)]));
      // The reference: turf over the unwrapped star, at the point shifted by 360 when west of 0.
      split.push(fenceFeature(`a${i}`, [outer, hole]));
    }
    const index = createFenceIndex(loadFences(fc(...crossing)));
    let hits = 0;
    for (let k = 0; k < 5_000; k++) {
      const x = rand() < 0.5 ? 160 + 20 * rand() : -180 + 20 * rand(), y = -75 + 150 * rand();
      const ux = x < 0 ? x + 360 : x;
      const want = split.filter((f) => booleanPointInPolygon([ux, y], f as never)).map((f) => String(f.id)).sort();
      expect(ids(index, x, y), `point ${x},${y}`).toEqual(want);
      hits += want.length;
    }
    expect(hits).toBeGreaterThan(300);
  });

  it("emits enter/exit for a track crossing 180 inside the fence, and nothing at (0,0)", async () => {
    const path: Array<[number, number]> = [[0, 0], [168, 0], [178, 0], [-178, 0], [-168, 0]];
    expect(await track(fc(box), path)).toEqual(["enter:pacific", "exit:pacific"]);
  });

  it("leaves fences in projected coordinates alone", () => {
    const m = fenceFeature("mercator", [square(-2e7, -1e6, 2e7, 1e6)]);
    const index = createFenceIndex(loadFences(fc(m)));
    expect(ids(index, 0, 0)).toEqual(["mercator"]);
    expect(index.fences[0]!.geometry.type).toBe("Polygon");
  });

  it("refuses a ring that winds around a pole across the antimeridian, naming the fence", () => {
    const polar = fenceFeature("arctic", [[[0, 80], [120, 80], [-120, 80], [0, 80]]]);
    expect(() => createFenceIndex(loadFences(fc(polar)))).toThrow(/fence "arctic" \(fences\[0\]\).*winds around a pole/);
  });
});

describe("self-intersecting fences", () => {
  const bowtie = fenceFeature("bowtie", [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]);

  it("logs a warning naming the fence and where its edges cross", () => {
    const log = recorder();
    const stage = geofence({ fences: fc(fenceFeature("ok", [square(20, 0, 30, 10)]), bowtie) }, { logger: log });
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/fence "bowtie" \(fences\[1\]\) is self-intersecting: edges cross near 5,5/);
    void stage.close?.();
  });

  it("warns about a hole cutting its outer ring, not about overlapping MultiPolygon parts or clipped corridors", () => {
    const cut = fenceFeature("cut", [square(0, 0, 10, 10), [[5, 5], [15, 5], [15, 6], [5, 6], [5, 5]]]);
    const parts = multi("parts", [[square(0, 0, 10, 10)], [square(5, 5, 15, 15)]]);
    // A ring running back along itself on x = 10 (what clipping a concave ring leaves): collinear, not crossing.
    const corridor = fenceFeature("corridor", [[[0, 0], [10, 0], [10, 4], [5, 4], [5, 6], [10, 6], [10, 8], [10, 2], [10, 10], [0, 10], [0, 0]]]);
    const index = createFenceIndex(loadFences(fc(cut, parts, corridor)));
    expect(index.warnings).toHaveLength(1);
    expect(index.warnings[0]).toMatch(/^fence "cut" /);
  });
});

describe("geofence state cache in front of SQLite", () => {
  it("gives the same events and stored states as an uncached SQLite state, commits lagging a batch behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-fences-cache-"));
    try {
      const fences = fc(
        fenceFeature("A", [square(0, 0, 4, 4)]), fenceFeature("B", [square(3, 3, 8, 8)]),
        multi("M", [[square(5, 0, 9, 3)], [square(7, 1, 10, 5)]]),
      );
      const rand = rng(77);
      const msgs: Message[] = [];
      const pos = Array.from({ length: 40 }, () => [10 * rand(), 10 * rand()]);
      for (let k = 0; k < 3000; k++) {
        const t = k % 40, p = pos[t]!;
        p[0] = Math.min(11, Math.max(-1, p[0]! + (rand() - 0.5)));
        p[1] = Math.min(11, Math.max(-1, p[1]! + (rand() - 0.5)));
        msgs.push({ ...point(`t${t}`, p[0]!, p[1]!), position: { stream: "s", offset: k, next: k + 1 } });
      }
      const cachedFile = join(dir, "cached.db"), plainFile = join(dir, "plain.db");
      const plainState = sqliteGeofenceState(plainFile);
      const run = async (stage: ReturnType<typeof geofence>): Promise<string[]> => {
        await stage.open?.();
        const out: string[] = [];
        let lag: StageOutput | undefined;
        for (let b = 0; b < msgs.length; b += 37) {
          const r = await stage.process(msgs.slice(b, b + 37));
          out.push(...r.pass.map((m) => `${String(m.metadata!.actiontype)}:${String(m.metadata!.fence)}:${String(m.key)}`));
          await lag?.commit?.();
          lag = r;
        }
        await lag?.commit?.();
        await stage.close?.();
        return out;
      };
      const cached = await run(geofence({ fences, events: ["enter", "exit"], state: { sqlite: cachedFile } }));
      const plain = await run(geofence({ fences, events: ["enter", "exit"], state: plainState }));
      expect(cached.length).toBeGreaterThan(100);
      expect(cached).toEqual(plain);
      const tracks = Array.from({ length: 40 }, (_, t) => `t${t}`);
      const reread = sqliteGeofenceState(cachedFile);
      expect(await reread.get(tracks)).toEqual(await plainState.get(tracks));
      await reread.close?.();
      await plainState.close?.();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
