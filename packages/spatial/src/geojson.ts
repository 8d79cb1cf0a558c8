/** Minimal GeoJSON types and a validator that names the path of the first problem it finds. */

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
export interface GeoProblem {
  path: string;
  message: string;
}

/** Nesting depth of `coordinates` per geometry type: 0 = a position. */
const DEPTH: Record<string, number> = {
  Point: 0,
  MultiPoint: 1,
  LineString: 1,
  MultiLineString: 2,
  Polygon: 2,
  MultiPolygon: 3,
};

function checkPosition(p: unknown, path: string): GeoProblem | null {
  if (!Array.isArray(p)) return { path, message: "position must be an array of numbers" };
  if (p.length < 2) return { path, message: `position needs at least 2 numbers, got ${p.length}` };
  for (let i = 0; i < p.length; i++) {
    const v: unknown = p[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      return { path: `${path}[${i}]`, message: `coordinate must be a finite number, got ${JSON.stringify(v) ?? String(v)}` };
    }
  }
  return null;
}

function checkArray(a: unknown, depth: number, path: string): GeoProblem | null {
  if (depth === 0) return checkPosition(a, path);
  if (!Array.isArray(a)) return { path, message: `expected an array nested ${depth + 1} deep` };
  for (let i = 0; i < a.length; i++) {
    const p = checkArray(a[i], depth - 1, `${path}[${i}]`);
    if (p) return p;
  }
  return null;
}

function checkRing(ring: Position[], path: string): GeoProblem | null {
  if (ring.length < 4) return { path, message: `linear ring needs at least 4 positions, got ${ring.length}` };
  const a = ring[0]!;
  const b = ring[ring.length - 1]!;
  if (a[0] !== b[0] || a[1] !== b[1]) return { path, message: "linear ring is not closed (first and last positions differ)" };
  return null;
}

/** Validates a geometry object; returns the first problem or null. */
export function geometryProblem(g: unknown, path: string): GeoProblem | null {
  if (g === null || typeof g !== "object" || Array.isArray(g)) return { path, message: "geometry must be an object" };
  const geom = g as { type?: unknown; coordinates?: unknown; geometries?: unknown };
  if (geom.type === "GeometryCollection") {
    if (!Array.isArray(geom.geometries)) return { path: `${path}.geometries`, message: "must be an array" };
    for (let i = 0; i < geom.geometries.length; i++) {
      const p = geometryProblem(geom.geometries[i], `${path}.geometries[${i}]`);
      if (p) return p;
    }
    return null;
  }
  const depth = typeof geom.type === "string" ? DEPTH[geom.type] : undefined;
  if (depth === undefined) return { path: `${path}.type`, message: `unknown geometry type ${JSON.stringify(geom.type)}` };
  const cpath = `${path}.coordinates`;
  if (geom.coordinates === undefined) return { path: cpath, message: "missing" };
  const shape = checkArray(geom.coordinates, depth, cpath);
  if (shape) return shape;
  const c = geom.coordinates as unknown[];
  switch (geom.type) {
    case "LineString":
      return c.length < 2 ? { path: cpath, message: `line needs at least 2 positions, got ${c.length}` } : null;
    case "MultiLineString":
      for (let i = 0; i < c.length; i++) {
        const n = (c[i] as unknown[]).length;
        if (n < 2) return { path: `${cpath}[${i}]`, message: `line needs at least 2 positions, got ${n}` };
      }
      return null;
    case "Polygon":
      return polygonProblem(c as Position[][], cpath);
    case "MultiPolygon":
      for (let i = 0; i < c.length; i++) {
        const p = polygonProblem(c[i] as Position[][], `${cpath}[${i}]`);
        if (p) return p;
      }
      return null;
    default:
      return null;
  }
}

function polygonProblem(rings: Position[][], path: string): GeoProblem | null {
  if (rings.length === 0) return { path, message: "polygon needs at least one ring" };
  for (let i = 0; i < rings.length; i++) {
    const p = checkRing(rings[i]!, `${path}[${i}]`);
    if (p) return p;
  }
  return null;
}

/** True for a valid Point geometry (the hot path; anything else goes through `geometryProblem`). */
export function isValidPoint(g: unknown): g is Extract<Geometry, { type: "Point" }> {
  if (g === null || typeof g !== "object") return false;
  const p = g as { type?: unknown; coordinates?: unknown };
  if (p.type !== "Point") return false;
  const c = p.coordinates;
  if (!Array.isArray(c) || c.length < 2) return false;
  for (let i = 0; i < c.length; i++) {
    const n: unknown = c[i];
    if (typeof n !== "number" || !Number.isFinite(n)) return false;
  }
  return true;
}

/** Validates a Feature; returns the first problem or null. */
export function featureProblem(f: unknown, path: string): GeoProblem | null {
  if (f === null || typeof f !== "object" || Array.isArray(f)) return { path, message: "feature must be an object" };
  const feat = f as { type?: unknown; geometry?: unknown };
  if (feat.type !== "Feature") return { path: `${path}.type`, message: `expected "Feature", got ${JSON.stringify(feat.type)}` };
  if (feat.geometry === null) return null;
  return geometryProblem(feat.geometry, `${path}.geometry`);
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

/** Calls `fn` for every position of a geometry (not for GeometryCollection members). */
export function visitPositions(g: Geometry, fn: (x: number, y: number) => void): void {
  const walk = (a: unknown): void => {
    const arr = a as unknown[];
    if (typeof arr[0] === "number") fn(arr[0], arr[1] as number);
    else for (const c of arr) walk(c);
  };
  if (g.type !== "GeometryCollection") walk(g.coordinates);
}
