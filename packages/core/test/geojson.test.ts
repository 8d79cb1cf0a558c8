import { describe, expect, test } from "vitest";
import { GeoWatchError } from "../src/errors.js";
import { geojsonCodec } from "../src/codecs/index.js";
import { allProblems, isValidatedGeoJSON, markValidated, MAX_COLLECTION_NESTING, validateGeoJSON } from "../src/geojson/validate.js";

const point = (lon: number, lat: number, props: Record<string, unknown> | null = {}) => ({
  type: "Feature",
  geometry: { type: "Point", coordinates: [lon, lat] },
  properties: props,
});
const square = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]];

/** JSON text nesting `inner` `depth` levels deep as `open ... close`. */
function nested(depth: number, open: string, inner: string, close: string): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

/** The DECODE error the geojson codec throws for `payload`. */
function decodeError(payload: string): GeoWatchError {
  try {
    geojsonCodec.decode(payload);
  } catch (err) {
    expect(err).toBeInstanceOf(GeoWatchError);
    expect((err as GeoWatchError).code).toBe("DECODE");
    return err as GeoWatchError;
  }
  throw new Error("expected a DECODE error");
}

describe("validateGeoJSON", () => {
  const valid: unknown[] = [
    { type: "Point", coordinates: [180, -90] },
    { type: "Point", coordinates: [1, 2, 300] },
    // Ranges are not checked: projected coordinates (EPSG:3857, UTM) are valid too.
    { type: "Point", coordinates: [1_113_194.9, 6_446_275.8] },
    { type: "Polygon", coordinates: [[[0, 0, 5], [1, 0, 5], [1, 1, 5], [0, 0, 5]]] },
    { type: "MultiPoint", coordinates: [] },
    { type: "LineString", coordinates: [[0, 0], [1, 1]] },
    { type: "MultiLineString", coordinates: [[[0, 0], [1, 1]]] },
    { type: "Polygon", coordinates: square, bbox: [0, 0, 1, 1] },
    { type: "MultiPolygon", coordinates: [square, square] },
    { type: "GeometryCollection", geometries: [{ type: "Point", coordinates: [0, 0] }, { type: "GeometryCollection", geometries: [] }] },
    { type: "Feature", geometry: null, properties: null, id: 7 },
    { type: "FeatureCollection", features: [point(1, 2), point(3, 4, null)], bbox: [170, -10, -170, 10] },
    { metadata: { actiontype: "create" }, data: point(5, 6) },
  ];
  test.each(valid.map((v) => [JSON.stringify(v).slice(0, 60), v]))("valid: %s", (_, v) => {
    expect(validateGeoJSON(v)).toEqual([]);
  });

  const invalid: Array<[string, unknown, Array<{ path: string; message: string | RegExp }>]> = [
    ["not an object", 42, [{ path: "", message: /expected a GeoJSON object or a \{metadata, data\} envelope, got number 42/ }]],
    ["unknown type", { type: "Circle" }, [{ path: "type", message: 'unknown GeoJSON type "Circle"' }]],
    ["missing type", { coordinates: [0, 0] }, [{ path: "type", message: "member is missing" }]],
    ["non-string type", { type: 3 }, [{ path: "type", message: "expected a string, got number 3" }]],
    ["missing coordinates", { type: "Point" }, [{ path: "coordinates", message: "member is missing" }]],
    ["too few numbers", { type: "Point", coordinates: [1] }, [{ path: "coordinates", message: "a position has 2 or 3 numbers, got 1" }]],
    ["too many numbers", { type: "Point", coordinates: [1, 2, 3, 4] }, [{ path: "coordinates", message: "a position has 2 or 3 numbers, got 4" }]],
    ["string number", { type: "Point", coordinates: ["1", 2] }, [{ path: "coordinates[0]", message: 'expected a finite number, got string "1"' }]],
    ["non-finite", { type: "Point", coordinates: [0, Number.NaN] }, [{ path: "coordinates[1]", message: "expected a finite number, got number NaN" }]],
    ["infinite", { type: "Point", coordinates: [Infinity, 0] }, [{ path: "coordinates[0]", message: "expected a finite number, got number Infinity" }]],
    ["null coordinate", { type: "MultiPoint", coordinates: [[0, 0], [0, null]] }, [{ path: "coordinates[1][1]", message: "expected a finite number, got null" }]],
    ["short line", { type: "LineString", coordinates: [[0, 0]] }, [{ path: "coordinates", message: "a LineString needs at least 2 positions, got 1" }]],
    ["short line in multi", { type: "MultiLineString", coordinates: [[[0, 0], [1, 1]], [[0, 0]]] }, [{ path: "coordinates[1]", message: "a LineString needs at least 2 positions, got 1" }]],
    ["open ring", { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] }, [{ path: "coordinates[0]", message: /^ring is not closed/ }]],
    ["ring open in z", { type: "Polygon", coordinates: [[[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 0, 2]]] }, [{ path: "coordinates[0]", message: /^ring is not closed/ }]],
    ["ring open in the second ring of a multipolygon", { type: "MultiPolygon", coordinates: [square, [square[0]!, [[0, 0], [1, 0], [1, 1], [0, 1]]]] }, [{ path: "coordinates[1][1]", message: /^ring is not closed/ }]],
    ["short ring", { type: "Polygon", coordinates: [[[0, 0], [1, 0], [0, 0]]] }, [{ path: "coordinates[0]", message: "a linear ring needs at least 4 positions, got 3" }]],
    ["no rings", { type: "Polygon", coordinates: [] }, [{ path: "coordinates", message: "a Polygon needs at least one linear ring" }]],
    ["multipolygon too shallow", { type: "MultiPolygon", coordinates: square }, [{ path: "coordinates", message: "MultiPolygon coordinates must be an array of polygons (arrays of linear rings), nested 4 deep; got 3 deep" }]],
    ["point too deep", { type: "Point", coordinates: [[0, 0]] }, [{ path: "coordinates", message: /^Point coordinates must be a position .*got 2 deep$/ }]],
    ["multipoint not array", { type: "MultiPoint", coordinates: "x" }, [{ path: "coordinates", message: /nested 2 deep; got string "x"$/ }]],
    ["uneven nesting", { type: "MultiPoint", coordinates: [[0, 0], 5] }, [{ path: "coordinates[1]", message: "expected a position [longitude, latitude], got number 5" }]],
    ["collection without geometries", { type: "GeometryCollection" }, [{ path: "geometries", message: "member is missing" }]],
    ["feature as geometry", { type: "GeometryCollection", geometries: [point(0, 0)] }, [{ path: "geometries[0].type", message: /^expected a geometry type \(Point, .*\), got "Feature"$/ }]],
    ["feature without geometry", { type: "Feature", properties: {} }, [{ path: "geometry", message: /^member is missing/ }]],
    ["feature without properties", { type: "Feature", geometry: null }, [{ path: "properties", message: /^member is missing/ }]],
    ["properties array", { type: "Feature", geometry: null, properties: [] }, [{ path: "properties", message: "expected an object or null, got an array" }]],
    ["bad id", { type: "Feature", geometry: null, properties: null, id: {} }, [{ path: "id", message: "expected a string or number, got object" }]],
    ["features not array", { type: "FeatureCollection", features: {} }, [{ path: "features", message: "expected an array of features, got object" }]],
    ["non-feature in collection", { type: "FeatureCollection", features: [{ type: "Point", coordinates: [0, 0] }, null] }, [
      { path: "features[0].type", message: 'expected "Feature", got "Point"' },
      { path: "features[1]", message: "expected a Feature, got null" },
    ]],
    ["bbox length", { type: "Point", coordinates: [0, 0], bbox: [0, 0, 1] }, [{ path: "bbox", message: "expected 4 or 6 numbers (2 per dimension), got 3" }]],
    ["bbox values", { type: "Point", coordinates: [0, 0], bbox: [0, "a", 1, 1] }, [{ path: "bbox[1]", message: 'expected a finite number, got string "a"' }]],
    ["bbox south above north", { type: "Point", coordinates: [0, 0], bbox: [0, 5, 1, 1] }, [{ path: "bbox", message: "south latitude 5 is greater than north latitude 1" }]],
    ["envelope metadata", { metadata: "x", data: point(0, 0) }, [{ path: "metadata", message: 'expected an object, got string "x"' }]],
    ["envelope data", { metadata: {}, data: [] }, [{ path: "data", message: "expected a GeoJSON object, got an array" }]],
  ];
  test.each(invalid)("invalid: %s", (_, value, expected) => {
    const problems = validateGeoJSON(value);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(problems[i]!.path).toBe(e.path);
      if (typeof e.message === "string") expect(problems[i]!.message).toBe(e.message);
      else expect(problems[i]!.message).toMatch(e.message);
    });
  });

  test("reports every problem with its full path", () => {
    const openRing = { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] };
    const value = {
      metadata: { featuretype: "zone" },
      data: {
        type: "FeatureCollection",
        features: [
          point(0, 0),
          point(Number.POSITIVE_INFINITY, 0),
          { type: "Feature", geometry: { type: "Point", coordinates: [0, 0] }, properties: 1 },
          { type: "Feature", geometry: openRing, properties: null },
        ],
      },
    };
    expect(validateGeoJSON(value)).toEqual([
      { path: "data.features[1].geometry.coordinates[0]", message: "expected a finite number, got number Infinity" },
      { path: "data.features[2].properties", message: "expected an object or null, got number 1" },
      { path: "data.features[3].geometry.coordinates[0]", message: "ring is not closed (its first and last positions differ)" },
    ]);
    // The walk leaves no state behind.
    expect(validateGeoJSON(point(1, 1))).toEqual([]);
  });
});


describe("the fast path for Point messages", () => {
  // Every variant of the shapes the fast path takes, valid or not: it must agree with the full walk.
  const coordinates: unknown[] = [[1, 2], [1, 2, 3], [1], [1, 2, 3, 4], [], ["1", 2], [1, null], [Infinity, 0], [0, NaN], [[1, 2]], "1,2", null, undefined, { 0: 1, 1: 2 }];
  const geometries: unknown[] = [
    ...coordinates.map((c) => ({ type: "Point", coordinates: c })),
    { type: "Point", coordinates: [1, 2], bbox: [1, 2, 1, 2] },
    { type: "Point", coordinates: [1, 2], bbox: [1, 2] },
    { type: "point", coordinates: [1, 2] },
    { type: "MultiPoint", coordinates: [[1, 2]] },
    null,
    [],
    "Point",
  ];
  const features: unknown[] = [];
  for (const geometry of geometries) features.push({ type: "Feature", geometry, properties: {} });
  for (const properties of [null, {}, { a: { b: [1] } }, [], 1, "x", undefined]) features.push({ type: "Feature", geometry: { type: "Point", coordinates: [1, 2] }, properties });
  for (const id of [1, "a", undefined, null, {}, true]) features.push({ type: "Feature", geometry: null, properties: null, id });
  features.push({ type: "Feature", geometry: null, properties: null, bbox: [0, 0, 1, 1] }, { type: "Feature", properties: null }, { type: "Feature", geometry: null });
  const envelopes: unknown[] = [];
  for (const data of [...features.slice(0, 8), ...geometries.slice(0, 4), undefined, null, []]) {
    for (const metadata of [{}, { actiontype: "create" }, undefined, null, [], "x"]) envelopes.push({ metadata, data });
  }
  const all = [...geometries, ...features, ...envelopes];

  test(`agrees with the full walk on ${all.length} valid and invalid variants`, () => {
    let valid = 0;
    for (const v of all) {
      expect(validateGeoJSON(v), JSON.stringify(v)).toEqual(allProblems(v));
      if (allProblems(v).length === 0) valid++;
    }
    // Both kinds are covered.
    expect(valid).toBeGreaterThan(20);
    expect(all.length - valid).toBeGreaterThan(50);
  });
});

describe("deep nesting never overflows the stack", () => {
  test("a Feature with 5,000 levels of nesting in its properties is valid: properties are not walked", () => {
    const payload = `{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"deep":${nested(5000, '{"a":[', "1", "]}")}}}`;
    const value = JSON.parse(payload) as unknown;
    expect(validateGeoJSON(value)).toEqual([]);
    const decoded = geojsonCodec.decode(payload) as { type: string; properties: { deep: unknown } };
    expect(decoded.type).toBe("Feature");
    expect(allProblems(value)).toEqual([]);
    const polygon = geojsonCodec.decode(payload.replace('{"type":"Point","coordinates":[1,2]}', '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}'));
    expect(isValidatedGeoJSON(polygon)).toBe(true);
    let depth = 0;
    for (let v: unknown = decoded.properties.deep; typeof v === "object" && v !== null; v = Array.isArray(v) ? v[0] : (v as { a: unknown }).a) depth++;
    expect(depth).toBe(10_000);
    // Far deeper than any call stack: still no recursion.
    expect(validateGeoJSON(JSON.parse(`{"metadata":{},"data":{"type":"Feature","geometry":null,"properties":${nested(200_000, '{"a":', "1", "}")}}}`))).toEqual([]);
  });

  test("5,000 levels of nesting in coordinates is a problem that says how deep", () => {
    const err = decodeError(`{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":${nested(5000, "[", "1,2", "]")}}}`);
    expect(err.message).toBe(
      "[geowatch] [geojson] invalid GeoJSON: geometry.coordinates: Point coordinates must be a position [longitude, latitude], nested 1 deep; got 5000 deep",
    );
    expect(err.path).toBe("geometry.coordinates");
    // Deep nesting past the first element: the walk stops at the position that should hold numbers.
    const member = decodeError(`{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]],[[0,0],${nested(5000, "[", "1,2", "]")},[1,1],[0,0]]]]}`);
    expect(member.message).toBe(
      "[geowatch] [geojson] invalid GeoJSON: coordinates[0][1][1]: a position has 2 or 3 numbers, got 1",
    );
  });

  test("GeometryCollections nest at most MAX_COLLECTION_NESTING deep", () => {
    const collection = (depth: number) =>
      nested(depth, '{"type":"GeometryCollection","geometries":[', '{"type":"Point","coordinates":[1,2]}', "]}");
    expect(validateGeoJSON(JSON.parse(collection(MAX_COLLECTION_NESTING)))).toEqual([]);
    const path = `geometry${".geometries[0]".repeat(MAX_COLLECTION_NESTING)}.geometries`;
    expect(validateGeoJSON(JSON.parse(`{"type":"Feature","properties":null,"geometry":${collection(MAX_COLLECTION_NESTING + 1)}}`))).toEqual([
      { path, message: `GeometryCollections nested deeper than ${MAX_COLLECTION_NESTING} levels` },
    ]);
    const err = decodeError(`{"type":"Feature","properties":null,"geometry":${collection(5000)}}`);
    expect(err.path).toBe(path);
    expect(err.message).toContain(`GeometryCollections nested deeper than ${MAX_COLLECTION_NESTING} levels`);
    // The walk's state is reset after a refused collection.
    expect(validateGeoJSON(JSON.parse(collection(MAX_COLLECTION_NESTING)))).toEqual([]);
  });
});

describe("isValidatedGeoJSON", () => {
  test("true only for the very objects marked", () => {
    const a = point(1, 1);
    expect(isValidatedGeoJSON(a)).toBe(false);
    markValidated(a);
    expect(isValidatedGeoJSON(a)).toBe(true);
    expect(isValidatedGeoJSON({ ...a })).toBe(false);
    expect(isValidatedGeoJSON(a.geometry)).toBe(false);
    for (const v of [null, undefined, 1, "x", true]) expect(isValidatedGeoJSON(v)).toBe(false);
  });

  test("a mark lasts at least 16,384 later marks (the table is bounded, forgetting only costs a validation)", () => {
    const first = point(0, 0);
    markValidated(first);
    for (let i = 0; i < 16_383; i++) markValidated({});
    expect(isValidatedGeoJSON(first)).toBe(true);
    for (let i = 0; i < 3 * 16_384; i++) markValidated({});
    expect(isValidatedGeoJSON(first)).toBe(false);
  });
});
