/** Finding the GeoJSON in a broker message: a Feature, a bare geometry, or a `{metadata, data}` envelope. */
import type { DeadLetter, Message, Metadata, Stage, StageOutput } from "@geowatch/core";
import { featureProblem, geometryProblem } from "./geojson.js";
import type { GeoProblem, Geometry } from "./geojson.js";

/** Where a message's geometry sits and what it is. */
export interface Located {
  geometry: Geometry;
  /** The Feature (or bare geometry) the geometry came from: an envelope's `data`, or the value itself. */
  feature: unknown;
  /** The envelope metadata, when the value is an envelope. */
  metadata: Metadata | undefined;
}

export type LocateResult = ({ ok: true } & Located) | { ok: false; problem: GeoProblem };

const GEOMETRY_TYPES = new Set(["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"]);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The geometry of a Feature or bare geometry at `path`, or the problem with it. */
function geometryAt(v: unknown, path: string): Geometry | GeoProblem {
  if (!isObject(v)) return { path, message: "expected a GeoJSON Feature or geometry" };
  if (v.type === "Feature") {
    const p = featureProblem(v, path);
    if (p) return p;
    if (v.geometry === null) return { path: `${path}.geometry`, message: "feature has no geometry" };
    return v.geometry as Geometry;
  }
  if (typeof v.type === "string" && GEOMETRY_TYPES.has(v.type)) return geometryProblem(v, path) ?? (v as unknown as Geometry);
  return { path: `${path}.type`, message: `expected a GeoJSON Feature or geometry, got type ${JSON.stringify(v.type)}` };
}

/** Finds and validates the geometry of a message value; problems carry a path like `value.data.geometry.coordinates[0]`. */
export function locate(value: unknown): LocateResult {
  if (isObject(value) && value.type === undefined && "data" in value && isObject(value.metadata)) {
    const g = geometryAt(value.data, "value.data");
    if ("path" in g) return { ok: false, problem: g };
    return { ok: true, geometry: g, feature: value.data, metadata: value.metadata as Metadata };
  }
  const g = geometryAt(value, "value");
  if ("path" in g) return { ok: false, problem: g };
  return { ok: true, geometry: g, feature: value, metadata: undefined };
}

/** A reason string for dead letters: `invalid GeoJSON at value.data.geometry.coordinates[0]: ...`. */
export function problemReason(stage: string, p: GeoProblem): string {
  return `[geowatch] [spatial] ${stage}: invalid GeoJSON at ${p.path}: ${p.message}`;
}

/** A copy of a message value with its geometry replaced, keeping the Feature/envelope around it. */
export function replaceGeometry(value: unknown, geometry: Geometry): unknown {
  const v = value as Record<string, unknown>;
  if (v.type === undefined && "data" in v) return { ...v, data: replaceGeometry(v.data, geometry) };
  if (v.type === "Feature") {
    const { bbox: _stale, ...rest } = v;
    return { ...rest, geometry };
  }
  return geometry;
}

/** Resolves a dotted path (`data.properties.id`, `metadata.track`, `items.0.id`) against a value. */
export function compilePath(path: string): (value: unknown) => unknown {
  const parts = path.split(".").filter((s) => s.length > 0);
  return (value) => {
    let cur: unknown = value;
    for (const k of parts) {
      if (cur === null || typeof cur !== "object") return undefined;
      cur = (cur as Record<string, unknown>)[k];
    }
    return cur;
  };
}

/** Thrown inside a geometry stage's function to dead-letter one message with a reason. */
export class Reject extends Error {}

/**
 * A stage that finds each message's geometry and hands it to `fn`: invalid GeoJSON is dead-lettered with its
 * path, `fn` returns the message to pass (or undefined to drop it) and throws `Reject` to dead-letter it.
 */
export function geometryStage(name: string, fn: (message: Message, geometry: Geometry) => Message | undefined): Stage {
  return {
    name,
    process(batch: Message[]): StageOutput {
      const pass: Message[] = [];
      const dead: DeadLetter[] = [];
      for (const message of batch) {
        const r = locate(message.value);
        if (!r.ok) {
          dead.push({ message, reason: problemReason(name, r.problem) });
          continue;
        }
        try {
          const out = fn(message, r.geometry);
          if (out) pass.push(out);
        } catch (err) {
          if (!(err instanceof Reject)) throw err;
          dead.push({ message, reason: `[geowatch] [spatial] ${name}: ${err.message}` });
        }
      }
      return dead.length > 0 ? { pass, dead } : { pass };
    },
  };
}
