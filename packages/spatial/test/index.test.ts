import { booleanPointInPolygon } from "@turf/boolean-point-in-polygon";
import { describe, expect, it } from "vitest";
import { createFenceIndex, loadFences } from "../src/index.js";
import { geometryBBox } from "../src/geojson.js";
import type { FeatureCollection } from "../src/index.js";
import { countries, fenceFeature, rng, starRing } from "./helpers.js";

/** Fences containing a point, by turf over every fence (the reference). */
function naive(fc: FeatureCollection, x: number, y: number): string[] {
  const out: string[] = [];
  for (const f of fc.features) {
    // A plain bbox loop (not the R-tree) keeps turf off fences that cannot hold the point.
    const bb = bboxes.get(f) ?? bboxes.set(f, geometryBBox(f.geometry!)).get(f)!;
    if (x < bb[0]! || y < bb[1]! || x > bb[2]! || y > bb[3]!) continue;
    if (booleanPointInPolygon([x, y], f as never)) out.push(String(f.id));
  }
  return out.sort();
}
const bboxes = new WeakMap<object, number[]>();

describe("fence index vs @turf/boolean-point-in-polygon", () => {
  it("agrees on 400 random overlapping star polygons with holes and multipolygons, 10,000 random points", () => {
    const rand = rng(42);
    const features: FeatureCollection["features"] = [];
    for (let i = 0; i < 400; i++) {
      const cx = -170 + 340 * rand(), cy = -80 + 160 * rand(), r = 0.5 + 8 * rand();
      const outer = starRing(rand, cx, cy, r, 20 + Math.floor(rand() * 40));
      if (i % 5 === 0) {
        // A MultiPolygon of two parts, the first with a hole.
        const hole = starRing(rand, cx, cy, r * 0.3, 12, true);
        const other = starRing(rand, cx + 3 * r, cy, r * 0.5, 16);
        features.push({ type: "Feature", id: `f${i}`, properties: {}, geometry: { type: "MultiPolygon", coordinates: [[outer, hole], [other]] } });
      } else if (i % 3 === 0) {
        features.push(fenceFeature(`f${i}`, [outer, starRing(rand, cx, cy, r * 0.35, 10, true)]));
      } else features.push(fenceFeature(`f${i}`, [outer]));
    }
    const fc: FeatureCollection = { type: "FeatureCollection", features };
    const index = createFenceIndex(loadFences(fc));
    let inside = 0;
    for (let k = 0; k < 10_000; k++) {
      const x = -180 + 360 * rand(), y = -90 + 180 * rand();
      const n = index.queryPoint(x, y);
      const got = Array.from(index.hits.subarray(0, n), (i) => index.fences[i]!.id).sort();
      expect(got, `point ${x},${y}`).toEqual(naive(fc, x, y));
      if (n > 0) inside++;
    }
    expect(inside).toBeGreaterThan(500);
  });

  it("agrees on real country outlines (thousands of vertices, holes) at random points near them", () => {
    const fc = countries();
    const index = createFenceIndex(loadFences(fc));
    expect(index.size).toBe(fc.features.length);
    const rand = rng(7);
    const byId = new Map(fc.features.map((f) => [String(f.id), f]));
    let hits = 0;
    for (let k = 0; k < 20_000; k++) {
      const x = -180 + 360 * rand(), y = -60 + 140 * rand();
      const n = index.queryPoint(x, y);
      const got = Array.from(index.hits.subarray(0, n), (i) => index.fences[i]!.id).sort();
      // turf over the bbox candidates only (a full scan of 220 countries x 20k points is slow but equal).
      const want = index.candidates(x, y, x, y).map((i) => index.fences[i]!.id)
        .filter((id) => booleanPointInPolygon([x, y], byId.get(id) as never)).sort();
      expect(got, `point ${x},${y}`).toEqual(want);
      hits += n;
    }
    expect(hits).toBeGreaterThan(3000);
    // Spot-check the full naive scan on a few hundred points too.
    for (let k = 0; k < 300; k++) {
      const x = -180 + 360 * rand(), y = -60 + 140 * rand();
      const n = index.queryPoint(x, y);
      expect(Array.from(index.hits.subarray(0, n), (i) => index.fences[i]!.id).sort()).toEqual(naive(fc, x, y));
    }
  });

  it("puts known cities in their countries and points in holes outside", () => {
    const fc = countries();
    const index = createFenceIndex(loadFences(fc));
    const where = (x: number, y: number) => Array.from(index.hits.subarray(0, index.queryPoint(x, y)), (i) => index.fences[i]!.id);
    expect(where(2.35, 48.86)).toEqual(["FRA"]); // Paris
    expect(where(-94.6, 39.1)).toEqual(["USA"]); // Kansas City
    expect(where(28.04, -26.2)).toEqual(["ZAF"]); // Johannesburg
    expect(where(-30, 0)).toEqual([]); // Atlantic
    // For 40 real holes: a point inside the hole ring is outside the country (and turf agrees).
    const rand = rng(3);
    let checked = 0;
    for (const f of fc.features) {
      const g = f.geometry!;
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const p of polys) for (const hole of p.slice(1)) {
        if (checked >= 40) break;
        const xs = hole.map((q) => q[0]!), ys = hole.map((q) => q[1]!);
        const holePoly = { type: "Polygon", coordinates: [hole] } as never;
        for (let tries = 0; tries < 200; tries++) {
          const x = Math.min(...xs) + (Math.max(...xs) - Math.min(...xs)) * rand();
          const y = Math.min(...ys) + (Math.max(...ys) - Math.min(...ys)) * rand();
          if (!booleanPointInPolygon([x, y], holePoly, { ignoreBoundary: true })) continue;
          // Skip islands: another part of the same MultiPolygon lying inside the hole.
          if (booleanPointInPolygon([x, y], f as never)) continue;
          expect(where(x, y), `hole of ${String(f.id)} at ${x},${y}`).not.toContain(String(f.id));
          checked++;
          break;
        }
      }
    }
    expect(checked).toBe(40);
  });

  it("answers point queries from the grid exactly as from an R-tree walk, at fence corners too", () => {
    const fc = countries();
    const index = createFenceIndex(loadFences(fc));
    const rand = rng(11);
    const both = (x: number, y: number) => {
      const a = Array.from(index.hits.subarray(0, index.queryPoint(x, y)));
      const b = Array.from(index.hits.subarray(0, index.queryPointTree(x, y))).sort((p, q) => p - q);
      expect(a, `${x},${y}`).toEqual(b);
    };
    for (let k = 0; k < 20_000; k++) both(-180 + 360 * rand(), -90 + 180 * rand());
    // Every fence's bbox corners and every 50th vertex: points on cell and bbox edges.
    for (const f of fc.features) {
      const g = f.geometry!;
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const p of polys) p[0]!.forEach((v, k) => k % 50 === 0 && both(v[0]!, v[1]!));
    }
  });

  it("gives the same answers without the point grid, and with heavily overlapping world-sized fences", () => {
    const rand = rng(5);
    const features: FeatureCollection["features"] = [];
    for (let i = 0; i < 300; i++) features.push(fenceFeature(`w${i}`, [starRing(rand, -20 + 40 * rand(), -10 + 20 * rand(), 150, 40)]));
    const fc: FeatureCollection = { type: "FeatureCollection", features };
    const grid = createFenceIndex(loadFences(fc));
    const tree = createFenceIndex(loadFences(fc), { pointGrid: false });
    for (let k = 0; k < 2_000; k++) {
      const x = -180 + 360 * rand(), y = -90 + 180 * rand();
      const a = Array.from(grid.hits.subarray(0, grid.queryPoint(x, y)));
      const b = Array.from(tree.hits.subarray(0, tree.queryPoint(x, y))).sort((p, q) => p - q);
      expect(a).toEqual(b);
      if (k < 300) expect(a.map((i) => grid.fences[i]!.id).sort()).toEqual(naive(fc, x, y));
    }
  });

  it("treats the boundary as inside, like turf", () => {
    const index = createFenceIndex(loadFences({ type: "FeatureCollection", features: [fenceFeature("sq", [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]])] }));
    for (const [x, y] of [[0, 0], [5, 0], [10, 5], [10, 10], [0, 5], [5, 10]] as const) expect(index.queryPoint(x, y), `${x},${y}`).toBe(1);
    expect(index.queryPoint(10.000001, 5)).toBe(0);
  });

  it("tests lines and polygons: intersects and within", () => {
    const sq = fenceFeature("sq", [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[4, 4], [4, 6], [6, 6], [6, 4], [4, 4]]]);
    const index = createFenceIndex(loadFences({ type: "FeatureCollection", features: [sq] }));
    const line = (c: number[][]) => ({ type: "LineString" as const, coordinates: c });
    const poly = (c: number[][]) => ({ type: "Polygon" as const, coordinates: [c] });
    expect(index.test(0, line([[1, 1], [2, 2]]), "within")).toBe(true);
    expect(index.test(0, line([[1, 1], [9, 9]]), "within")).toBe(false); // through the hole
    expect(index.test(0, line([[1, 1], [9, 9]]), "intersects")).toBe(true);
    expect(index.test(0, line([[-5, 5], [15, 5]]), "intersects")).toBe(true); // no vertex inside, crosses
    expect(index.test(0, line([[-5, -5], [-1, 20]]), "intersects")).toBe(false);
    expect(index.test(0, line([[4.5, 4.5], [5.5, 5.5]]), "intersects")).toBe(false); // inside the hole
    expect(index.test(0, poly([[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]), "within")).toBe(true);
    expect(index.test(0, poly([[1, 1], [9, 1], [9, 9], [1, 9], [1, 1]]), "within")).toBe(false); // covers the hole
    expect(index.test(0, poly([[1, 1], [9, 1], [9, 9], [1, 9], [1, 1]]), "intersects")).toBe(true);
    expect(index.test(0, poly([[-5, -5], [15, -5], [15, 15], [-5, 15], [-5, -5]]), "intersects")).toBe(true); // contains the fence
    expect(index.test(0, poly([[20, 20], [30, 20], [30, 30], [20, 20]]), "intersects")).toBe(false);
    expect(index.matching({ type: "MultiPoint", coordinates: [[1, 1], [20, 20]] }, "intersects")).toEqual([0]);
    expect(index.matching({ type: "MultiPoint", coordinates: [[1, 1], [20, 20]] }, "within")).toEqual([]);
  });
});
