import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isGeoWatchError } from "@geowatch/core";
import type { Message } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { bboxFilter, fenceFilter, geofence, loadFences, spatialStages, validateSpatialStage } from "../src/index.js";
import type { FeatureCollection } from "../src/index.js";
import { fenceFeature } from "./helpers.js";

const FENCES = { type: "FeatureCollection", features: [fenceFeature("A", [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]])] } satisfies FeatureCollection;

function configError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(isGeoWatchError(err, "CONFIG"), String(err)).toBe(true);
    return err as Error;
  }
  throw new Error("expected a CONFIG error");
}

describe("invalid GeoJSON goes to dead letters with its path", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["short position", { type: "Point", coordinates: [1] }, /at value\.coordinates: position needs at least 2 numbers/],
    ["bad coordinate in an envelope", { metadata: {}, data: { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: ["a", 2] } } },
      /at value\.data\.geometry\.coordinates\[0\]: coordinate must be a finite number, got "a"/],
    ["unclosed ring", { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] }, /at value\.coordinates\[0\]: linear ring is not closed/],
    ["wrong nesting", { type: "Polygon", coordinates: [[0, 0], [1, 0], [1, 1], [0, 0]] }, /at value\.coordinates\[0\]\[0\]: position must be an array/],
    ["too few ring positions", { type: "MultiPolygon", coordinates: [[[[0, 0], [1, 1], [0, 0]]]] }, /at value\.coordinates\[0\]\[0\]: linear ring needs at least 4/],
    ["unknown type", { type: "Circle", coordinates: [0, 0] }, /at value\.type: expected a GeoJSON Feature or geometry/],
    ["feature without geometry", { type: "Feature", properties: {}, geometry: null }, /at value\.geometry: feature has no geometry/],
    ["NaN", { type: "LineString", coordinates: [[0, 0], [NaN, 1]] }, /at value\.coordinates\[1\]\[0\]: coordinate must be a finite number/],
    ["one-point line", { type: "LineString", coordinates: [[0, 0]] }, /at value\.coordinates: line needs at least 2 positions/],
  ];
  for (const [what, value, reason] of cases) {
    it(what, async () => {
      const message: Message = { key: "t", value };
      for (const stage of [fenceFilter({ fences: FENCES }), bboxFilter({ bbox: [-1, -1, 1, 1] }), geofence({ fences: FENCES })]) {
        const out = await stage.process([message, { key: "t", value: { type: "Point", coordinates: [0.5, 0.5] } }]);
        expect(out.dead).toHaveLength(1);
        expect(out.dead![0]!.message).toBe(message);
        expect(out.dead![0]!.reason).toMatch(reason);
        expect(out.pass.length).toBeGreaterThan(0);
      }
    });
  }
});

describe("filters", () => {
  it("bboxFilter passes points in the box and lines crossing it", async () => {
    const stage = bboxFilter({ bbox: [0, 0, 10, 10] });
    const msgs: Message[] = [
      { value: { type: "Point", coordinates: [5, 5] } },
      { value: { type: "Point", coordinates: [15, 5] } },
      { value: { type: "LineString", coordinates: [[-5, 5], [15, 5]] } },
      { value: { type: "LineString", coordinates: [[-5, -5], [-5, 15]] } },
    ];
    expect((await stage.process(msgs)).pass).toEqual([msgs[0], msgs[2]]);
    expect((await bboxFilter({ bbox: [0, 0, 10, 10], predicate: "within" }).process(msgs)).pass).toEqual([msgs[0]]);
  });

  it("fenceFilter with within and intersects", async () => {
    const poly = (c: number[][]): Message => ({ value: { type: "Polygon", coordinates: [c] } });
    const inside = poly([[1, 1], [2, 1], [2, 2], [1, 1]]);
    const straddling = poly([[8, 8], [12, 8], [12, 12], [8, 8]]);
    const away = poly([[20, 20], [21, 20], [21, 21], [20, 20]]);
    expect((await fenceFilter({ fences: FENCES, predicate: "within" }).process([inside, straddling, away])).pass).toEqual([inside]);
    expect((await fenceFilter({ fences: FENCES }).process([inside, straddling, away])).pass).toEqual([inside, straddling]);
  });
});

describe("bad fence files", () => {
  const dir = mkdtempSync(join(tmpdir(), "gw-fences-"));
  const file = (name: string, body: string) => {
    writeFileSync(join(dir, name), body);
    return join(dir, name);
  };

  it("names the file and line of a JSON syntax error", () => {
    const p = file("broken.geojson", '{"type": "FeatureCollection",\n "features": [ }');
    const err = configError(() => loadFences(p));
    expect(err.message).toContain(JSON.stringify(p));
    expect(err.message).toMatch(/not valid JSON at line 2 column/);
  });

  it("names the file and JSON path of invalid geometry", () => {
    const good = fenceFeature("ok", [[[0, 0], [1, 0], [1, 1], [0, 0]]]);
    const bad = fenceFeature("bad", [[[0, 0], [1, 0], [1, 1], [0, 0]], [[0.2, 0.2], [0.3, 0.2], [0.3, 0.3]]]);
    const p = file("bad.geojson", JSON.stringify({ type: "FeatureCollection", features: [good, bad] }));
    const err = configError(() => fenceFilter({ fences: p }));
    expect(err.message).toBe(`[geowatch] [spatial] fence file ${JSON.stringify(p)}: features[1].geometry.coordinates[1]: linear ring needs at least 4 positions, got 3`);
    expect((err as { path?: string }).path).toBe("features[1].geometry.coordinates[1]");
  });

  it("rejects non-polygon fences, missing and duplicate ids, a missing file", () => {
    const pt = { type: "Feature", id: "p", properties: {}, geometry: { type: "Point", coordinates: [0, 0] } };
    expect(configError(() => loadFences({ type: "FeatureCollection", features: [pt] })).message)
      .toMatch(/features\[0\]\.geometry\.type: fence geometry must be Polygon or MultiPolygon/);
    const noId = { ...fenceFeature("x", [[[0, 0], [1, 0], [1, 1], [0, 0]]]), id: undefined };
    expect(configError(() => loadFences({ type: "FeatureCollection", features: [noId] })).message).toMatch(/features\[0\]\.id: fence needs an id/);
    const named = { ...noId, properties: { name: "harbour" } };
    expect(loadFences({ type: "FeatureCollection", features: [named] }, { idProperty: "name" })[0]!.id).toBe("harbour");
    const dup = fenceFeature("d", [[[0, 0], [1, 0], [1, 1], [0, 0]]]);
    expect(configError(() => loadFences({ type: "FeatureCollection", features: [dup, dup] })).message).toMatch(/features\[1\]\.id: duplicate fence id "d"/);
    expect(configError(() => loadFences(join(dir, "missing.geojson"))).message).toMatch(/cannot read/);
    expect(configError(() => loadFences({ type: "Feature" })).message).toMatch(/\(object\): type: expected "FeatureCollection"/);
  });
});

describe("options", () => {
  it("reports every problem with its path", () => {
    const err = configError(() => spatialStages.geofence!({ stage: "geofence", fences: 3, events: ["enter", "teleport"], state: { redis: "x" }, colour: "red" }));
    expect(err.message).toMatch(/fences: must be a fence file path/);
    expect(err.message).toMatch(/events\.1: /);
    expect(err.message).toMatch(/state: must be "memory"/);
    expect(err.message).toMatch(/colour: unknown option/);
    expect(validateSpatialStage("bboxFilter", { bbox: [10, 0, 0, 10] })).toEqual([{ path: "bbox", message: "min must not exceed max" }]);
    expect(validateSpatialStage("buffer", { units: "parsecs" }).map((p) => p.path)).toEqual(["distance", "units"]);
    expect(validateSpatialStage("teleport", {})).toEqual([{ path: "stage", message: 'unknown spatial stage "teleport"' }]);
    expect(Object.keys(spatialStages).sort()).toEqual(["bboxFilter", "buffer", "fenceFilter", "geofence", "reproject", "routeByFence"]);
  });
});
