/**
 * GeoJSON (RFC 7946) validation: the one set of rules used by the geojson codec and the spatial stages.
 * One pass reports every problem with a JSON path (`data.features[3].geometry.coordinates[0]`). The walk
 * keeps the current path as a stack of keys and indexes and turns it into a string only when it reports
 * a problem, so a valid message costs no allocations.
 *
 * Rules: known types; a position is 2 or 3 finite numbers; LineStrings have >= 2 positions; linear rings
 * are closed with >= 4 positions; GeometryCollection members are geometries; a Feature has `geometry`
 * (a geometry or null) and `properties` (an object or null), an optional string or number `id`; `bbox` is
 * 4 or 6 numbers. Coordinate ranges are not checked: RFC 7946 allows other CRSs by prior arrangement, and
 * the reproject stage emits projected coordinates (EPSG:3857, UTM) that later stages must accept.
 *
 * Nothing recurses on message content: properties are checked only for being an object or null, array
 * depth is measured by a loop, and GeometryCollections may nest at most MAX_COLLECTION_NESTING deep, so a
 * value nested thousands of levels deep is a problem to report, never a RangeError.
 *
 * Values the geojson codec decoded are marked (`markValidated`) so the stages after it do not walk them
 * again (`isValidatedGeoJSON`). Point messages, the bulk of a stream, take a fast path instead: checking
 * one again costs less than marking it.
 */

/** One thing wrong with a GeoJSON value, at a path such as `data.features[3].geometry.coordinates[0]`. */
export interface GeoJSONProblem {
  path: string;
  message: string;
}

type Obj = Record<string, unknown>;

const GEOMETRY_TYPES =
  "Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon, GeometryCollection";

/** How deep each geometry's coordinates nest (0: not a coordinate geometry). */
function depthFor(type: unknown): number {
  switch (type) {
    case "Point":
      return 1;
    case "MultiPoint":
    case "LineString":
      return 2;
    case "MultiLineString":
    case "Polygon":
      return 3;
    case "MultiPolygon":
      return 4;
    default:
      return 0;
  }
}

const SHAPES: Record<string, string> = {
  Point: "a position [longitude, latitude]",
  MultiPoint: "an array of positions",
  LineString: "an array of positions",
  MultiLineString: "an array of line strings (arrays of positions)",
  Polygon: "an array of linear rings (arrays of positions)",
  MultiPolygon: "an array of polygons (arrays of linear rings)",
};

/**
 * How deep GeometryCollections may nest. RFC 7946 asks producers to avoid nesting them at all; the bound
 * keeps the walk (and the spatial stages' geometry walks) far from the call stack limit.
 */
export const MAX_COLLECTION_NESTING = 32;

const path: Array<string | number> = [];
/** Problems of the current walk, created on the first one so a valid value allocates nothing. */
let found: GeoJSONProblem[] | undefined;
/** GeometryCollections around the geometry being checked. */
let collections = 0;

/**
 * Values the geojson codec validated, held weakly. Two generations, swapped every GENERATION marks, keep
 * the tables small: one ever-growing WeakSet cost ~3x more per mark (~570 against ~190 ns, mostly in GC).
 * A value is remembered for at least GENERATION later marks; one forgotten is only validated again.
 */
const GENERATION = 16_384;
let marked = new WeakSet<object>();
let older = new WeakSet<object>();
let inGeneration = 0;

/**
 * Marks a value that passed `validateGeoJSON` so stages downstream can skip validating it again. Only for
 * values nobody else has seen yet (freshly decoded): a mark does not follow later changes to the value.
 */
export function markValidated(value: object): void {
  if (inGeneration === GENERATION) {
    older = marked;
    marked = new WeakSet<object>();
    inGeneration = 0;
  }
  marked.add(value);
  inGeneration++;
}

/**
 * True when `value` is an object the geojson codec decoded and validated (this very object, not a copy):
 * a stage may use it as valid GeoJSON without calling `validateGeoJSON`. False says nothing: validate.
 */
export function isValidatedGeoJSON(value: unknown): boolean {
  return typeof value === "object" && value !== null && (marked.has(value) || older.has(value));
}

/**
 * Every RFC 7946 problem in `value`, which is a GeoJSON object or a `{metadata, data}` envelope whose
 * data is GeoJSON. An empty array means valid. Paths start at the value (`data.features[0].type`);
 * a problem with the value itself has the path "".
 */
export function validateGeoJSON(value: unknown): GeoJSONProblem[] {
  return isValidPointValue(value) ? [] : allProblems(value);
}

/**
 * Validates `value` as the geojson codec does before handing it on: every problem, and a mark on a valid
 * value that took the full walk. Point messages are not marked: `isValidPointValue` re-checks one in
 * tens of nanoseconds, less than a mark costs (a WeakSet entry, ~100-200 ns per value).
 */
export function validateForCodec(value: unknown): GeoJSONProblem[] {
  if (isValidPointValue(value)) return [];
  const problems = allProblems(value);
  if (problems.length === 0) markValidated(value as object);
  return problems;
}

/**
 * The commonest messages, checked without the walk's bookkeeping by the same rules: a Point geometry, a
 * Feature whose geometry is a Point or null, or an envelope of either; without `bbox`. False means "not
 * one of these, or not valid": the walk decides and says why.
 */
function isValidPointValue(value: unknown): boolean {
  if (!isObject(value)) return false;
  if (value.type === undefined) {
    return value.data !== undefined && isObject(value.metadata) && isObject(value.data) && isValidPointObject(value.data);
  }
  return isValidPointObject(value);
}

function isValidPointObject(v: Obj): boolean {
  if (v.bbox !== undefined) return false;
  if (v.type === "Point") return isPosition(v.coordinates);
  if (v.type !== "Feature") return false;
  const id = v.id;
  if (id !== undefined && typeof id !== "string" && typeof id !== "number") return false;
  const p = v.properties;
  if (p !== null && !isObject(p)) return false;
  const g = v.geometry;
  return g === null || (isObject(g) && g.type === "Point" && g.bbox === undefined && isPosition(g.coordinates));
}

function isPosition(c: unknown): boolean {
  if (!Array.isArray(c) || c.length < 2 || c.length > 3) return false;
  for (let i = 0; i < c.length; i++) {
    const x: unknown = c[i];
    if (typeof x !== "number" || !Number.isFinite(x)) return false;
  }
  return true;
}

/** `validateGeoJSON` without the fast path: the full walk, always. */
export function allProblems(value: unknown): GeoJSONProblem[] {
  found = undefined;
  path.length = 0;
  collections = 0;
  try {
    root(value);
    return found ?? [];
  } finally {
    path.length = 0;
    found = undefined;
  }
}

function fail(message: string, key?: string | number): void {
  let p = "";
  for (const seg of path) p = join(p, seg);
  if (key !== undefined) p = join(p, key);
  (found ??= []).push({ path: p, message });
}

function join(p: string, seg: string | number): string {
  if (typeof seg === "number") return `${p}[${seg}]`;
  return p === "" ? seg : `${p}.${seg}`;
}

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "number") return `number ${v}`;
  return typeof v;
}

function root(value: unknown): void {
  if (!isObject(value)) {
    fail(`expected a GeoJSON object or a {metadata, data} envelope, got ${kind(value)}`);
    return;
  }
  if (value.type === undefined && value.data !== undefined) {
    if (!isObject(value.metadata)) {
      fail(value.metadata === undefined ? "envelope has no metadata" : `expected an object, got ${kind(value.metadata)}`, "metadata");
    }
    path.push("data");
    object(value.data);
    path.pop();
    return;
  }
  object(value);
}

function object(v: unknown): void {
  if (!isObject(v)) {
    fail(`expected a GeoJSON object, got ${kind(v)}`);
    return;
  }
  if (v.type === "Feature") feature(v);
  else if (v.type === "FeatureCollection") featureCollection(v);
  else geometry(v, true);
}

function badType(t: unknown, anyObject: boolean): void {
  if (t === undefined) fail("member is missing", "type");
  else if (typeof t !== "string") fail(`expected a string, got ${kind(t)}`, "type");
  else if (anyObject) fail(`unknown GeoJSON type ${JSON.stringify(t)}`, "type");
  else fail(`expected a geometry type (${GEOMETRY_TYPES}), got ${JSON.stringify(t)}`, "type");
}

function featureCollection(c: Obj): void {
  const features = c.features;
  if (!Array.isArray(features)) {
    fail(features === undefined ? "member is missing" : `expected an array of features, got ${kind(features)}`, "features");
  } else {
    path.push("features");
    for (let i = 0; i < features.length; i++) {
      const f: unknown = features[i];
      if (!isObject(f)) fail(`expected a Feature, got ${kind(f)}`, i);
      else if (f.type !== "Feature") {
        path.push(i);
        if (typeof f.type === "string") fail(`expected "Feature", got ${JSON.stringify(f.type)}`, "type");
        else badType(f.type, true);
        path.pop();
      } else {
        path.push(i);
        feature(f);
        path.pop();
      }
    }
    path.pop();
  }
  if (c.bbox !== undefined) bbox(c.bbox);
}

function feature(f: Obj): void {
  const g = f.geometry;
  if (g === undefined) fail("member is missing (use null for a feature without a location)", "geometry");
  else if (g !== null) {
    path.push("geometry");
    geometry(g, false);
    path.pop();
  }
  const p = f.properties;
  if (p === undefined) fail("member is missing (use null for a feature without properties)", "properties");
  else if (p !== null && !isObject(p)) fail(`expected an object or null, got ${kind(p)}`, "properties");
  const id = f.id;
  if (id !== undefined && typeof id !== "string" && typeof id !== "number") {
    fail(`expected a string or number, got ${kind(id)}`, "id");
  }
  if (f.bbox !== undefined) bbox(f.bbox);
}

function geometry(g: unknown, anyObject: boolean): void {
  if (!isObject(g)) {
    fail(`expected a geometry object, got ${kind(g)}`);
    return;
  }
  const t = g.type;
  if (t === "GeometryCollection") geometryCollection(g);
  else {
    const depth = depthFor(t);
    if (depth > 0) coordinates(g, t as string, depth);
    else badType(t, anyObject);
  }
  if (g.bbox !== undefined) bbox(g.bbox);
}

function geometryCollection(g: Obj): void {
  const geometries = g.geometries;
  if (!Array.isArray(geometries)) {
    fail(geometries === undefined ? "member is missing" : `expected an array of geometries, got ${kind(geometries)}`, "geometries");
    return;
  }
  if (collections === MAX_COLLECTION_NESTING) {
    fail(`GeometryCollections nested deeper than ${MAX_COLLECTION_NESTING} levels`, "geometries");
    return;
  }
  collections++;
  path.push("geometries");
  for (let i = 0; i < geometries.length; i++) {
    path.push(i);
    geometry(geometries[i], false);
    path.pop();
  }
  path.pop();
  collections--;
}

function coordinates(g: Obj, type: string, depth: number): void {
  const c = g.coordinates;
  if (c === undefined) {
    fail("member is missing", "coordinates");
    return;
  }
  path.push("coordinates");
  const got = depthOf(c);
  // A negative depth ends at an empty array, so the value may still nest deeper once filled.
  if (got === 0 || (got > 0 ? got !== depth : -got > depth)) {
    fail(`${type} coordinates must be ${SHAPES[type]}, nested ${depth} deep; got ${got === 0 ? kind(c) : `${Math.abs(got)} deep`}`);
  } else {
    switch (type) {
      case "Point":
        position(c);
        break;
      case "MultiPoint":
        each(c, position);
        break;
      case "LineString":
        lineString(c);
        break;
      case "MultiLineString":
        each(c, lineString);
        break;
      case "Polygon":
        polygon(c);
        break;
      case "MultiPolygon":
        each(c, polygon);
        break;
    }
  }
  path.pop();
}

/** Array nesting along the first elements: n for `n` arrays ending at a non-array, -n when ending at []. */
function depthOf(c: unknown): number {
  let d = 0;
  let x = c;
  while (Array.isArray(x)) {
    d++;
    if (x.length === 0) return -d;
    x = x[0];
  }
  return d;
}

function array(c: unknown, what: string): c is unknown[] {
  if (Array.isArray(c)) return true;
  fail(`expected ${what}, got ${kind(c)}`);
  return false;
}

function each(c: unknown, check: (v: unknown) => unknown): void {
  if (!array(c, "an array")) return;
  for (let i = 0; i < c.length; i++) {
    path.push(i);
    check(c[i]);
    path.pop();
  }
}

function position(p: unknown): boolean {
  if (!array(p, "a position [longitude, latitude]")) return false;
  const n = p.length;
  if (n < 2 || n > 3) {
    fail(`a position has 2 or 3 numbers, got ${n}`);
    return false;
  }
  let ok = true;
  for (let i = 0; i < n; i++) {
    const x = p[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      fail(`expected a finite number, got ${kind(x)}`, i);
      ok = false;
    }
  }
  return ok;
}

/** Checks every position; true when all are valid. */
function positions(c: unknown): c is unknown[] {
  if (!array(c, "an array of positions")) return false;
  let ok = true;
  for (let i = 0; i < c.length; i++) {
    path.push(i);
    if (!position(c[i])) ok = false;
    path.pop();
  }
  return ok;
}

function lineString(c: unknown): void {
  positions(c);
  if (Array.isArray(c) && c.length < 2) fail(`a LineString needs at least 2 positions, got ${c.length}`);
}

function polygon(c: unknown): void {
  if (!array(c, "an array of linear rings")) return;
  if (c.length === 0) fail("a Polygon needs at least one linear ring");
  for (let i = 0; i < c.length; i++) {
    path.push(i);
    ring(c[i]);
    path.pop();
  }
}

function ring(c: unknown): void {
  const ok = positions(c);
  if (!Array.isArray(c)) return;
  if (c.length < 4) fail(`a linear ring needs at least 4 positions, got ${c.length}`);
  if (ok && c.length >= 2 && !samePosition(c[0] as number[], c[c.length - 1] as number[])) {
    fail("ring is not closed (its first and last positions differ)");
  }
}

function samePosition(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function bbox(b: unknown): void {
  if (!Array.isArray(b)) {
    fail(`expected an array of 4 or 6 numbers, got ${kind(b)}`, "bbox");
    return;
  }
  if (b.length !== 4 && b.length !== 6) {
    fail(`expected 4 or 6 numbers (2 per dimension), got ${b.length}`, "bbox");
    return;
  }
  path.push("bbox");
  let ok = true;
  for (let i = 0; i < b.length; i++) {
    const x: unknown = b[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      fail(`expected a finite number, got ${kind(x)}`, i);
      ok = false;
    }
  }
  // West may exceed east across the antimeridian (RFC 7946 5.2); south may not exceed north.
  const half = b.length / 2;
  if (ok && (b[1] as number) > (b[1 + half] as number)) fail(`south latitude ${b[1]} is greater than north latitude ${b[1 + half]}`);
  path.pop();
}
