import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { geojsonCodec, isGeoWatchError, isValidatedGeoJSON } from "@geowatch/core";
import type { GeoJSONObject, Message } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { bboxFilter, fenceFilter, geofence, loadFences, routeByFence, spatialStages, validateSpatialStage } from "../src/index.js";
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
  const point = (coordinates: unknown, properties: unknown = {}) => ({ type: "Feature", properties, geometry: { type: "Point", coordinates } });
  // The rules are core's validateGeoJSON, the same the geojson codec applies; paths are under `value`.
  const cases: Array<[string, unknown, RegExp]> = [
    ["short position", { type: "Point", coordinates: [1] }, /at value\.coordinates: a position has 2 or 3 numbers, got 1$/],
    ["four-number position", { type: "Point", coordinates: [1, 2, 3, 4] }, /at value\.coordinates: a position has 2 or 3 numbers, got 4$/],
    ["bad coordinate in an envelope", { metadata: {}, data: point(["a", 2]) },
      /at value\.data\.geometry\.coordinates\[0\]: expected a finite number, got string "a"$/],
    ["unclosed ring", { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] }, /at value\.coordinates\[0\]: ring is not closed/],
    ["ring closed in x and y but not z", { type: "Polygon", coordinates: [[[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 0, 2]]] }, /at value\.coordinates\[0\]: ring is not closed/],
    ["wrong nesting", { type: "Polygon", coordinates: [[0, 0], [1, 0], [1, 1], [0, 0]] }, /at value\.coordinates: Polygon coordinates must be .* nested 3 deep; got 2 deep$/],
    ["too few ring positions", { type: "MultiPolygon", coordinates: [[[[0, 0], [1, 1], [0, 0]]]] }, /at value\.coordinates\[0\]\[0\]: a linear ring needs at least 4 positions, got 3$/],
    ["unknown type", { type: "Circle", coordinates: [0, 0] }, /at value\.type: unknown GeoJSON type "Circle"$/],
    ["feature without geometry", { type: "Feature", properties: {}, geometry: null }, /at value\.geometry: feature has no geometry$/],
    ["feature without properties", { type: "Feature", geometry: { type: "Point", coordinates: [0.5, 0.5] } }, /at value\.properties: member is missing/],
    ["properties not an object", point([0.5, 0.5], 5), /at value\.properties: expected an object or null, got number 5$/],
    ["NaN", { type: "LineString", coordinates: [[0, 0], [NaN, 1]] }, /at value\.coordinates\[1\]\[0\]: expected a finite number, got number NaN$/],
    ["one-point line", { type: "LineString", coordinates: [[0, 0]] }, /at value\.coordinates: a LineString needs at least 2 positions, got 1$/],
    ["collection member", { type: "GeometryCollection", geometries: [{ type: "Point", coordinates: [0, 0] }, { type: "Point" }] },
      /at value\.geometries\[1\]\.coordinates: member is missing$/],
    ["envelope metadata", { metadata: 3, data: point([0.5, 0.5]) }, /at value\.metadata: expected an object, got number 3$/],
    ["feature collection", { type: "FeatureCollection", features: [] }, /at value\.type: expected a Feature or a geometry \(one per message\), got a FeatureCollection$/],
    ["several problems", point([1], []), /at value\.geometry\.coordinates: a position has 2 or 3 numbers, got 1 \(and 1 more problem\)$/],
  ];
  const stages = () => [fenceFilter({ fences: FENCES }), bboxFilter({ bbox: [-1, -1, 1, 1] }), geofence({ fences: FENCES }), routeByFence({ fences: FENCES, routes: { A: ["a"] } })];
  for (const [what, value, reason] of cases) {
    it(what, async () => {
      const message: Message = { key: "t", value };
      for (const stage of stages()) {
        // geofence's own Point fast path checks only the geometry (see the report to its owner).
        if (stage.name === "geofence" && (what === "feature without properties" || what === "properties not an object")) continue;
        const out = await stage.process([message, { key: "t", value: { type: "Point", coordinates: [0.5, 0.5] } }]);
        expect(out.dead, stage.name).toHaveLength(1);
        expect(out.dead![0]!.message).toBe(message);
        expect(out.dead![0]!.reason).toMatch(new RegExp(`^\\[geowatch\\] \\[spatial\\] ${stage.name}: invalid GeoJSON `));
        expect(out.dead![0]!.reason).toMatch(reason);
        expect(out.pass.length).toBeGreaterThan(0);
      }
    });
  }

  it("accepts projected coordinates: ranges are not checked", async () => {
    const mercator = { type: "Feature", properties: null, geometry: { type: "Point", coordinates: [1_113_194.9, 6_446_275.8] } };
    const out = await bboxFilter({ bbox: [1e6, 6e6, 2e6, 7e6] }).process([{ value: mercator }]);
    expect(out.dead).toBeUndefined();
    expect(out.pass).toHaveLength(1);
  });
});

/** JSON text nesting `inner` `depth` levels deep as `open ... close`. */
function nested(depth: number, open: string, inner: string, close: string): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

describe("deeply nested values never overflow the stack", () => {
  const feature = (properties: string, geometry = '{"type":"Point","coordinates":[5,5]}') =>
    JSON.parse(`{"type":"Feature","properties":${properties},"geometry":${geometry}}`) as unknown;

  it("a Feature with 5,000 levels of nesting in its properties is processed by every stage", async () => {
    const deep = feature(`{"id":"t1","deep":${nested(5000, '{"a":', "1", "}")}}`);
    const polygon = '{"type":"Polygon","coordinates":[[[1,1],[2,1],[2,2],[1,1]]]}';
    // Through the codec too: decoded (a Point, checked again by the stages) and marked (a Polygon, trusted).
    const decoded = geojsonCodec.decode(`{"metadata":{},"data":{"type":"Feature","properties":${nested(5000, '{"a":', "1", "}")},"geometry":{"type":"Point","coordinates":[5,5]}}}`);
    const decodedPolygon = geojsonCodec.decode(`{"type":"Feature","properties":${nested(5000, '{"a":[', "1", "]}")},"geometry":${polygon}}`);
    expect(isValidatedGeoJSON(decodedPolygon)).toBe(true);
    const values = [deep, { metadata: {}, data: deep }, feature(nested(5000, '{"a":', "1", "}"), polygon), decoded, decodedPolygon];
    // Assertions compare strings and identities: a failing deep-equality would itself overflow printing the value.
    for (const stage of [fenceFilter({ fences: FENCES }), bboxFilter({ bbox: [0, 0, 10, 10] }), geofence({ fences: FENCES, events: ["inside"] }),
      routeByFence({ fences: FENCES, routes: { A: ["a"] } })]) {
      const out = await stage.process(values.map((value) => ({ key: "t1", value })));
      expect(out.dead?.map((d) => d.reason) ?? [], stage.name).toEqual([]);
      expect(out.pass.length, stage.name).toBe(values.length);
    }
    const events = (await geofence({ fences: FENCES, trackId: "properties.id" }).process([{ value: deep }])).pass;
    expect(events.map((e) => e.metadata?.actiontype)).toEqual(["enter"]);
    expect((events[0]!.value as { data: unknown }).data === deep).toBe(true);
  });

  it("5,000 levels of nesting in coordinates or collections is a dead letter that says so", async () => {
    const deepCoordinates = feature("{}", `{"type":"Point","coordinates":${nested(5000, "[", "1,2", "]")}}`);
    const deepMember = feature("{}", `{"type":"MultiPoint","coordinates":[[1,2],${nested(5000, "[", "1,2", "]")}]}`);
    const deepCollection = feature("{}", nested(5000, '{"type":"GeometryCollection","geometries":[', '{"type":"Point","coordinates":[1,2]}', "]}"));
    for (const stage of [fenceFilter({ fences: FENCES }), geofence({ fences: FENCES }), routeByFence({ fences: FENCES, routes: { A: ["a"] } })]) {
      const out = await stage.process([deepCoordinates, deepMember, deepCollection].map((value) => ({ key: "t", value })));
      expect(out.pass).toHaveLength(0);
      expect(out.dead!.map((d) => d.reason)).toEqual([
        `[geowatch] [spatial] ${stage.name}: invalid GeoJSON at value.geometry.coordinates: Point coordinates must be a position [longitude, latitude], nested 1 deep; got 5000 deep`,
        `[geowatch] [spatial] ${stage.name}: invalid GeoJSON at value.geometry.coordinates[1]: a position has 2 or 3 numbers, got 1`,
        `[geowatch] [spatial] ${stage.name}: invalid GeoJSON at value.geometry${".geometries[0]".repeat(32)}.geometries: GeometryCollections nested deeper than 32 levels`,
      ]);
    }
  });
});

describe("each message is validated once", () => {
  it("stages trust what the geojson codec validated and validate everything else", async () => {
    const text = JSON.stringify({ type: "Feature", properties: { id: "t" }, geometry: { type: "Polygon", coordinates: [[[1, 1], [2, 1], [2, 2], [1, 1]]] } });
    const decoded = geojsonCodec.decode(text) as GeoJSONObject;
    const parsed = JSON.parse(text) as GeoJSONObject;
    expect(isValidatedGeoJSON(decoded)).toBe(true);
    expect(isValidatedGeoJSON(parsed)).toBe(false);
    // Break both after decoding: only a stage that validates again notices.
    decoded.properties = 5;
    parsed.properties = 5;
    const envelope = geojsonCodec.decode(JSON.stringify({ metadata: { actiontype: "position" }, data: JSON.parse(text) }));
    (envelope as { metadata: unknown }).metadata = "no longer an object";
    for (const stage of [fenceFilter({ fences: FENCES }), routeByFence({ fences: FENCES, routes: { A: ["a"] } }), geofence({ fences: FENCES })]) {
      const out = await stage.process([{ key: "t1", value: decoded }, { key: "t2", value: parsed }, { key: "t3", value: envelope }]);
      expect(out.dead!.map((d) => d.message.value), stage.name).toEqual([parsed]);
      expect(out.dead![0]!.reason).toMatch(/at value\.properties: expected an object or null, got number 5$/);
      expect(out.pass.length, stage.name).toBe(2);
    }
  });

  it("Point messages, not marked, are checked again by the fast path", async () => {
    const decoded = geojsonCodec.decode(JSON.stringify({ metadata: { actiontype: "position" }, data: { type: "Feature", properties: { track: "v1" }, geometry: { type: "Point", coordinates: [5, 5] } } }));
    expect(isValidatedGeoJSON(decoded)).toBe(false);
    const stage = geofence({ fences: FENCES, trackId: "data.properties.track" });
    expect((await stage.process([{ value: decoded }])).pass.map((m) => m.metadata?.actiontype)).toEqual(["enter"]);
    (decoded as { metadata: unknown }).metadata = "no longer an object";
    expect((await stage.process([{ value: decoded }])).dead!.map((d) => d.reason)).toEqual([
      '[geowatch] [spatial] geofence: invalid GeoJSON at value.metadata: expected an object, got string "no longer an object"',
    ]);
  });
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
    expect(err.message).toBe(`[geowatch] [spatial] fence file ${JSON.stringify(p)}: features[1].geometry.coordinates[1]: a linear ring needs at least 4 positions, got 3 (and 1 more problem)`);
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
    expect(err.message).toMatch(/events\[1\]: /);
    expect(err.message).toMatch(/state: must be "memory"/);
    expect(err.message).toMatch(/colour: unknown option/);
    expect(validateSpatialStage("bboxFilter", { bbox: [10, 0, 0, 10] })).toEqual([{ path: "bbox", message: "min must not exceed max" }]);
    expect(validateSpatialStage("buffer", { units: "parsecs" }).map((p) => p.path)).toEqual(["distance", "units"]);
    expect(validateSpatialStage("teleport", {})).toEqual([{ path: "stage", message: 'unknown spatial stage "teleport"' }]);
    expect(Object.keys(spatialStages).sort()).toEqual(["bboxFilter", "buffer", "fenceFilter", "geofence", "reproject", "routeByFence"]);
  });
});
