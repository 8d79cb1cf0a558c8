/**
 * GeoJSON types for the spatial stages, path-prefixing adapters over core's `validateGeoJSON` (the one set of
 * rules, shared with the geojson codec), and walks over valid geometries.
 */
import { isValidatedGeoJSON, validateGeoJSON } from "@geowatch/core";
import type { GeoJSONProblem } from "@geowatch/core";

export type Position = number[];

export type Geometry =
  | { type: "Point"; coordinates: Position }
  | { type: "MultiPoint"; coordinates: Position[] }
  | { type: "LineString"; coordinates: Position[] }
  | { type: "MultiLineString"; coordinates: Position[][] }
  | { type: "Polygon"; coordinates: Position[][] }
  | { type: "MultiPolygon"; coordinates: Position[][][] }
  | { type: "GeometryCollection"; geometries: Geometry[] };

export interface Feature {
  type: "Feature";
  id?: string | number;
  geometry: Geometry | null;
  properties: Record<string, unknown> | null;
  bbox?: number[];
}

export interface FeatureCollection {
  type: "FeatureCollection";
  features: Feature[];
}

/** A problem in a GeoJSON value: where it is and what is wrong. */
export type GeoProblem = GeoJSONProblem;

const GEOMETRY_TYPES = new Set(["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"]);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `prefix` joined with a path relative to it (`""`, `coordinates[0]`). */
function under(prefix: string, path: string): string {
  if (path === "") return prefix;
  if (prefix === "") return path;
  return path.charCodeAt(0) === 91 /* [ */ ? `${prefix}${path}` : `${prefix}.${path}`;
}

/**
 * The first of `problems` with its path under `prefix`, saying how many more there are; null for none.
 * Stages report one problem per message, the codec lists them all.
 */
export function firstProblem(problems: readonly GeoProblem[], prefix: string): GeoProblem | null {
  const p = problems[0];
  if (p === undefined) return null;
  const more = problems.length - 1;
  const tail = more === 0 ? "" : ` (and ${more} more problem${more === 1 ? "" : "s"})`;
  return { path: under(prefix, p.path), message: `${p.message}${tail}` };
}

/** Validates a geometry object; returns the first problem (path under `path`) or null. */
export function geometryProblem(g: unknown, path: string): GeoProblem | null {
  if (!isObject(g)) return { path, message: "expected a geometry object" };
  if (typeof g.type !== "string" || !GEOMETRY_TYPES.has(g.type)) {
    return { path: under(path, "type"), message: `expected a geometry type, got ${JSON.stringify(g.type) ?? "nothing"}` };
  }
  return isValidatedGeoJSON(g) ? null : firstProblem(validateGeoJSON(g), path);
}

/** Validates a Feature; returns the first problem (path under `path`) or null. */
export function featureProblem(f: unknown, path: string): GeoProblem | null {
  if (!isObject(f)) return { path, message: "expected a Feature object" };
  if (f.type !== "Feature") return { path: under(path, "type"), message: `expected "Feature", got ${JSON.stringify(f.type) ?? "nothing"}` };
  return isValidatedGeoJSON(f) ? null : firstProblem(validateGeoJSON(f), path);
}

/** True for a valid Point geometry: the hot path of the stages, by the same rules as everything else. */
export function isValidPoint(g: unknown): g is Extract<Geometry, { type: "Point" }> {
  // A point is cheaper to check (core's fast path) than to look up among the marked values.
  return isObject(g) && g.type === "Point" && validateGeoJSON(g).length === 0;
}

/** Bounding box [minX, minY, maxX, maxY] of a valid geometry (Infinity box when empty). */
export function geometryBBox(g: Geometry, out: number[] = [Infinity, Infinity, -Infinity, -Infinity]): number[] {
  if (g.type === "GeometryCollection") {
    for (const c of g.geometries) geometryBBox(c, out);
    return out;
  }
  visitPositions(g, (x, y) => {
    if (x < out[0]!) out[0] = x;
    if (y < out[1]!) out[1] = y;
    if (x > out[2]!) out[2] = x;
    if (y > out[3]!) out[3] = y;
  });
  return out;
}

/**
 * Calls `fn` for every position of a valid geometry (not for GeometryCollection members). Recursion is
 * bounded: validation fixes coordinate nesting per type (at most 4) and collection nesting.
 */
export function visitPositions(g: Geometry, fn: (x: number, y: number) => void): void {
  const walk = (a: unknown): void => {
    const arr = a as unknown[];
    if (typeof arr[0] === "number") fn(arr[0], arr[1] as number);
    else for (const c of arr) walk(c);
  };
  if (g.type !== "GeometryCollection") walk(g.coordinates);
}
