/**
 * Finding the GeoJSON in a broker message: a Feature, a bare geometry, or a `{metadata, data}` envelope.
 * Validation is core's `validateGeoJSON`, skipped for values the geojson codec already validated.
 */
import { isValidatedGeoJSON, validateGeoJSON } from "@geowatch/core";
import type { DeadLetter, Message, Metadata, Stage, StageOutput } from "@geowatch/core";
import { firstProblem } from "./geojson.js";
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

/**
 * Finds the geometry of a message value, validating the value first unless the geojson codec did; problems
 * carry a path under `value` (`value.data.geometry.coordinates[0]`).
 */
export function locate(value: unknown): LocateResult {
  if (!isValidatedGeoJSON(value)) {
    const problem = firstProblem(validateGeoJSON(value), "value");
    if (problem !== null) return { ok: false, problem };
  }
  // Valid GeoJSON from here on: an object with a type, or an envelope (no type) with object metadata.
  const v = value as Record<string, unknown>;
  const envelope = v.type === undefined;
  const data = (envelope ? v.data : v) as Record<string, unknown>;
  const at = envelope ? "value.data" : "value";
  const metadata = envelope ? (v.metadata as Metadata) : undefined;
  if (data.type === "Feature") {
    if (data.geometry === null) return { ok: false, problem: { path: `${at}.geometry`, message: "feature has no geometry" } };
    return { ok: true, geometry: data.geometry as Geometry, feature: data, metadata };
  }
  if (data.type === "FeatureCollection") {
    return { ok: false, problem: { path: `${at}.type`, message: "expected a Feature or a geometry (one per message), got a FeatureCollection" } };
  }
  return { ok: true, geometry: data as unknown as Geometry, feature: data, metadata };
}

/**
 * The Point geometry of a value that is a valid Feature with a Point geometry, else undefined (then use
 * `locate`, which says what is wrong). The stages' hot path: core's fast path checks such a Feature in less
 * time than a lookup among the values the codec marked, so it is not looked up.
 */
export function pointOfFeature(value: unknown): Extract<Geometry, { type: "Point" }> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const f = value as { type?: unknown; geometry?: unknown };
  if (f.type !== "Feature") return undefined;
  const g = f.geometry as { type?: unknown } | null;
  if (typeof g !== "object" || g === null || g.type !== "Point") return undefined;
  return validateGeoJSON(value).length === 0 ? (g as Extract<Geometry, { type: "Point" }>) : undefined;
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
        let geometry: Geometry | undefined = pointOfFeature(message.value);
        if (geometry === undefined) {
          const r = locate(message.value);
          if (!r.ok) {
            dead.push({ message, reason: problemReason(name, r.problem) });
            continue;
          }
          geometry = r.geometry;
        }
        try {
          const out = fn(message, geometry);
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
