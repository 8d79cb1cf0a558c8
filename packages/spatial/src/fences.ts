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
