/** Loading fences from a GeoJSON FeatureCollection (a file or an object), with CONFIG errors that name the file and path. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { GeoWatchError } from "@geowatch/core";
import { geometryProblem } from "./geojson.js";
import type { Geometry } from "./geojson.js";

/** One fence: a Polygon or MultiPolygon with an id. */
export interface Fence {
  id: string;
  geometry: Extract<Geometry, { type: "Polygon" | "MultiPolygon" }>;
  properties: Record<string, unknown>;
}

export interface LoadFencesOptions {
  /** Property holding the fence id when a feature has no `id`. Default `"id"`. */
  idProperty?: string;
  /** Directory a relative file path is resolved against. Default: the working directory. */
  baseDir?: string;
}

function fail(source: string, path: string, message: string, cause?: unknown): never {
  throw new GeoWatchError("CONFIG", `fence file ${source}: ${path}: ${message}`, { backend: "spatial", path, cause });
}

/** Line and column of a character offset, for JSON parse errors. */
function lineCol(text: string, offset: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return `line ${line} column ${col}`;
}

/**
 * Where JSON.parse failed: V8 gives `position N` for some errors and only a context string
 * (`..."10 chars before" + token`) for others.
 */
function errorOffset(text: string, message: string): number | undefined {
  const pos = /position (\d+)/.exec(message);
  if (pos) return Number(pos[1]);
  if (/Unexpected end of JSON input/.test(message)) return text.length;
  const ctx = /, \.\.\."([\s\S]*?)"(?:\.\.\.)? is not valid JSON$/.exec(message);
  if (ctx) {
    const at = text.indexOf(ctx[1]!);
    if (at >= 0) return at + 10;
  }
  return undefined;
}

/** Reads and parses a fence file; a parse error names the file and where in it. */
export function readFenceFile(file: string, baseDir?: string): unknown {
  const full = resolve(baseDir ?? process.cwd(), file);
  const source = JSON.stringify(file);
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch (err) {
    throw new GeoWatchError("CONFIG", `fence file ${source}: cannot read ${full}`, { backend: "spatial", cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const offset = errorOffset(text, err instanceof Error ? err.message : "");
    const where = offset === undefined ? "" : ` at ${lineCol(text, offset)}`;
    return fail(source, "(root)", `not valid JSON${where}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/**
 * Loads fences from a FeatureCollection of Polygon/MultiPolygon features, or from a file holding one.
 * The id is `feature.id`, else `properties[idProperty]`; ids must be unique.
 */
export function loadFences(input: string | unknown, opts: LoadFencesOptions = {}): Fence[] {
  const source = typeof input === "string" ? JSON.stringify(input) : "(object)";
  const fc = typeof input === "string" ? readFenceFile(input, opts.baseDir) : input;
  const idProperty = opts.idProperty ?? "id";
  if (fc === null || typeof fc !== "object" || Array.isArray(fc)) fail(source, "(root)", "expected a GeoJSON FeatureCollection object");
  const obj = fc as { type?: unknown; features?: unknown };
  if (obj.type !== "FeatureCollection") fail(source, "type", `expected "FeatureCollection", got ${JSON.stringify(obj.type)}`);
  if (!Array.isArray(obj.features)) fail(source, "features", "must be an array");
  const seen = new Set<string>();
  const fences: Fence[] = [];
  obj.features.forEach((f: unknown, i: number) => {
    const path = `features[${i}]`;
    if (f === null || typeof f !== "object" || Array.isArray(f)) fail(source, path, "feature must be an object");
    const feat = f as { type?: unknown; id?: unknown; geometry?: unknown; properties?: unknown };
    if (feat.type !== "Feature") fail(source, `${path}.type`, `expected "Feature", got ${JSON.stringify(feat.type)}`);
    const props = feat.properties === null || feat.properties === undefined ? {} : feat.properties;
    if (typeof props !== "object" || Array.isArray(props)) fail(source, `${path}.properties`, "must be an object or null");
    const rawId = feat.id ?? (props as Record<string, unknown>)[idProperty];
    if (typeof rawId !== "string" && typeof rawId !== "number") {
      fail(source, `${path}.id`, `fence needs an id (feature.id or properties.${idProperty}), a string or number`);
    }
    const id = String(rawId);
    if (seen.has(id)) fail(source, `${path}.id`, `duplicate fence id ${JSON.stringify(id)}`);
    seen.add(id);
    const g = feat.geometry as { type?: unknown } | null | undefined;
    if (g === null || typeof g !== "object") fail(source, `${path}.geometry`, "fence needs a Polygon or MultiPolygon geometry");
    if (g.type !== "Polygon" && g.type !== "MultiPolygon") {
      fail(source, `${path}.geometry.type`, `fence geometry must be Polygon or MultiPolygon, got ${JSON.stringify(g.type)}`);
    }
    const p = geometryProblem(g, `${path}.geometry`);
    if (p) fail(source, p.path, p.message);
    fences.push({ id, geometry: g as Fence["geometry"], properties: props as Record<string, unknown> });
  });
  return fences;
}

type Ring = number[][];

/** Whether a fence's coordinates are all longitudes and latitudes (a fence in a projected CRS is never split). */
function isLonLat(polys: Ring[][]): boolean {
  for (const p of polys) for (const r of p) for (const q of r) {
    if (!(q[0]! >= -180 && q[0]! <= 180 && q[1]! >= -90 && q[1]! <= 90)) return false;
  }
  return true;
}

/**
 * A ring with longitudes made continuous (an edge never jumps more than 180 degrees), shifted so its west end
 * lies in [-180, 180). Undefined when the ring winds around a pole (it does not close once made continuous).
 */
function unwrap(ring: Ring): Ring | undefined {
  const out: Ring = [];
  let off = 0;
  let minX = Infinity;
  for (let k = 0; k < ring.length; k++) {
    const q = ring[k]!;
    if (k > 0) {
      const dx = q[0]! - ring[k - 1]![0]!;
      if (dx > 180) off -= 360;
      else if (dx < -180) off += 360;
    }
    const x = q[0]! + off;
    if (x < minX) minX = x;
    out.push([x, q[1]!]);
  }
  if (off !== 0) return undefined;
  const shift = -360 * Math.floor((minX + 180) / 360);
  return shift === 0 ? out : out.map((q) => [q[0]! + shift, q[1]!]);
}

/** The part of a closed ring west (`x <= 180`) or east (`x >= 180`, shifted by -360) of the antimeridian. */
function clipAt180(ring: Ring, west: boolean): Ring | undefined {
  const inside = (q: number[]): boolean => (west ? q[0]! <= 180 : q[0]! >= 180);
  const cut = (a: number[], b: number[]): number[] => [180, a[1]! + ((180 - a[0]!) * (b[1]! - a[1]!)) / (b[0]! - a[0]!)];
  const pts = ring.slice(0, -1);
  const out: Ring = [];
  for (let k = 0; k < pts.length; k++) {
    const a = pts[(k + pts.length - 1) % pts.length]!, b = pts[k]!;
    if (inside(b)) {
      if (!inside(a)) out.push(cut(a, b));
      out.push(b);
    } else if (inside(a)) out.push(cut(a, b));
  }
  if (out.length < 3) return undefined;
  const shifted = west ? out : out.map((q) => [q[0]! - 360, q[1]!]);
  return [...shifted, [...shifted[0]!]];
}

/**
 * A fence that crosses the antimeridian, as the MultiPolygon of its parts on either side of 180 (RFC 7946 3.1.9);
 * any other fence is returned as is. An edge spanning more than 180 degrees of longitude is taken to cross the
 * antimeridian (the shorter way round), as in a box from 170E to 170W; only fences whose coordinates are all
 * longitudes/latitudes are considered. A ring winding around a pole across the antimeridian is refused with a
 * CONFIG error naming the fence.
 */
export function splitAntimeridian(fence: Fence, path = "fence"): Fence {
  const polys: Ring[][] = fence.geometry.type === "Polygon" ? [fence.geometry.coordinates] : fence.geometry.coordinates;
  let wide = false;
  for (const p of polys) for (const r of p) for (let k = 1; k < r.length && !wide; k++) if (Math.abs(r[k]![0]! - r[k - 1]![0]!) > 180) wide = true;
  if (!wide || !isLonLat(polys)) return fence;
  const parts: Ring[][] = [];
  polys.forEach((p, pi) => {
    const rings: Ring[] = [];
    p.forEach((r, ri) => {
      const u = unwrap(r);
      if (u === undefined) {
        throw new GeoWatchError(
          "CONFIG",
          `fence ${JSON.stringify(fence.id)} (${path}): ring ${ri} of polygon ${pi} crosses the antimeridian and winds around a pole; split it into parts that each stay on one side of 180 degrees`,
          { backend: "spatial", path: `${path}.geometry` },
        );
      }
      rings.push(u);
    });
    // Holes sit on the same side of the cut as their outer ring.
    const outer = rings[0]!;
    const oMin = Math.min(...outer.map((q) => q[0]!)), oMax = Math.max(...outer.map((q) => q[0]!));
    for (let k = 1; k < rings.length; k++) {
      const hMin = Math.min(...rings[k]!.map((q) => q[0]!)), hMax = Math.max(...rings[k]!.map((q) => q[0]!));
      if (hMax < oMin) rings[k] = rings[k]!.map((q) => [q[0]! + 360, q[1]!]);
      else if (hMin > oMax) rings[k] = rings[k]!.map((q) => [q[0]! - 360, q[1]!]);
    }
    for (const west of [true, false]) {
      const o = clipAt180(outer, west);
      if (o === undefined) continue;
      const part: Ring[] = [o];
      for (const h of rings.slice(1)) {
        const c = clipAt180(h, west);
        if (c !== undefined) part.push(c);
      }
      parts.push(part);
    }
  });
  const geometry: Fence["geometry"] = parts.length === 1 ? { type: "Polygon", coordinates: parts[0]! } : { type: "MultiPolygon", coordinates: parts };
  return { id: fence.id, geometry, properties: fence.properties };
}
