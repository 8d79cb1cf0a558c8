/** Options of the spatial stages, their zod schemas, and the CONFIG error that lists every problem with its path. */
import { optionProblems, parseOptions as parseWith } from "@geowatch/core";
import type { Logger } from "@geowatch/core";
import { z } from "zod";
import { FenceIndex } from "./fence-index.js";
import type { FeatureCollection } from "./geojson.js";
import type { GeofenceState } from "./state.js";
import type { KafkaStateOptions } from "./state-kafka.js";
import type { PostgresStateOptions } from "./state-postgres.js";

/** Fences: a path to a GeoJSON file, a FeatureCollection object, or an index built with `createFenceIndex`. */
export type FenceSource = string | FeatureCollection | FenceIndex;

/** What a stage factory gets besides its options. */
export interface SpatialStageContext {
  /** Directory relative fence and state paths are resolved against. Default: the working directory. */
  baseDir?: string;
  logger?: Logger;
  /** Stage name for logs and dead-letter reasons. */
  name?: string;
}

/** Options of `bboxFilter`. */
export interface BboxFilterOptions {
  /** `[minX, minY, maxX, maxY]` in the messages' coordinates. Required. Env: none. */
  bbox: [number, number, number, number];
  /** Pass geometries that `intersects` the box or lie `within` it. Default `"intersects"`. Env: none. */
  predicate?: "intersects" | "within";
}

/** Options of `fenceFilter`. */
export interface FenceFilterOptions {
  /** The fences (file path, FeatureCollection or FenceIndex). Required. Env: none. */
  fences: FenceSource;
  /** Property holding a fence's id when the feature has no `id`. Default `"id"`. Env: none. */
  idProperty?: string;
  /** Pass geometries that `intersects` any fence or lie `within` one. Default `"intersects"`. Env: none. */
  predicate?: "intersects" | "within";
}

export type GeofenceEvent = "enter" | "exit" | "inside" | "outside" | "cross";

/** Options of `geofence`. */
export interface GeofenceOptions {
  /** The fences (file path, FeatureCollection or FenceIndex). Required. Env: none. */
  fences: FenceSource;
  /** Property holding a fence's id when the feature has no `id`. Default `"id"`. Env: none. */
  idProperty?: string;
  /**
   * Dotted path to the track id inside the message value (`data.properties.id`, `properties.vehicle`).
   * Default: the message key. Env: none.
   */
  trackId?: string;
  /** Events to emit. Default `["enter", "exit"]`. Env: none. */
  events?: GeofenceEvent[];
  /**
   * Per-track state: a `GeofenceState`, `"memory"`, `{ sqlite: "path/to/state.db" }` (one process), or state shared
   * by the processes of a Kafka consumer group, following the input partitions: `{ postgres: { url, table? } }`
   * or `{ kafka: { brokers, topic } }` (a compacted changelog topic). Default `"memory"`. Env: none.
   */
  state?: GeofenceState | "memory" | { sqlite: string } | { postgres: PostgresStateOptions } | { kafka: KafkaStateOptions };
  /** Also pass the input messages on, after their events. Default `false`. Env: none. */
  passThrough?: boolean;
  /**
   * Worker threads that test a batch's points against the fences while the main thread goes on (decoding the next
   * batch). Each holds a copy of the fence index; state and events stay on the main thread. Batches of fewer than
   * 64 messages are tested on the main thread. Default `0` (all on the main thread). Env: none.
   */
  workers?: number;
}

/** Options of `reproject`. */
export interface ReprojectOptions {
  /** Source CRS: `EPSG:4326`, `EPSG:3857` or a proj4 definition string. Required. Env: none. */
  from: string;
  /** Target CRS, as `from`. Required. Env: none. */
  to: string;
}

export type BufferUnits = "meters" | "metres" | "kilometers" | "kilometres" | "miles" | "nauticalmiles" | "feet" | "degrees";

/** Options of `buffer`. */
export interface BufferOptions {
  /** Buffer distance; negative shrinks polygons. Required. Env: none. */
  distance: number;
  /** Unit of `distance`. Default `"kilometers"`. Env: none. */
  units?: BufferUnits;
  /** Segments per quarter circle. Default `8`. Env: none. */
  steps?: number;
}

/** Options of `routeByFence`. */
export interface RouteByFenceOptions {
  /**
   * Sink names per fence id; `"*"` for a fence not listed, `"none"` for a message in no fence. Required. Env: none.
   */
  routes: Record<string, string[]>;
  /**
   * Fences to test messages against when they carry no `metadata.fence` (as geofence events do).
   * Default: none, so only `metadata.fence` is used. Env: none.
   */
  fences?: FenceSource;
  /** Property holding a fence's id when the feature has no `id`. Default `"id"`. Env: none. */
  idProperty?: string;
}

const fenceSource = z.union([
  z.string().min(1, "must be a non-empty path"),
  z.instanceof(FenceIndex),
  z.looseObject({ type: z.literal("FeatureCollection"), features: z.array(z.unknown()) }),
], { error: "must be a fence file path, a FeatureCollection or a FenceIndex" }).meta({ path: true }).describe("The fences: a GeoJSON file (relative to the config file) or an inline FeatureCollection.");

const predicate = z.enum(["intersects", "within"]).meta({ default: "intersects" }).describe("Pass geometries that intersect a fence/box, or lie within one.");
const idProperty = z.string().min(1).meta({ default: "id" }).describe("Property holding a fence's id when the feature has no `id`.");

const stateSchema = z.union([
  z.literal("memory"),
  z.strictObject({ sqlite: z.string().min(1, "must be a non-empty path").meta({ path: true }).describe("SQLite file (relative to the config file).") }),
  z.strictObject({
    postgres: z.strictObject({
      url: z.string().min(1).describe("PostgreSQL connection URL (postgres://user@host:port/db); put the password in ${ENV}."),
      table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, "must be a name or schema.name (letters, digits, _)").optional().meta({ default: "geofence_state" }).describe("Table of the track states, created when missing."),
    }).describe("State in PostgreSQL, one row per track, shared by every process of the consumer group."),
  }),
  z.strictObject({
    kafka: z.strictObject({
      brokers: z.array(z.string().min(1)).min(1).describe("Bootstrap brokers (host:port) of the changelog's cluster."),
      topic: z.string().min(1).describe("Compacted changelog topic; created with the input topic's partition count when missing."),
      clientId: z.string().min(1).optional().meta({ default: "geowatch-geofence-state" }).describe("Kafka client id."),
      restoreTimeoutMs: z.number().int().positive().optional().meta({ default: 120000 }).describe("Longest a changelog replay may take before the batch fails and is retried."),
    }).describe("State in a compacted Kafka changelog topic, replayed by the process that takes over a partition."),
  }),
  z.custom<GeofenceState>(
    (v) => v !== null && typeof v === "object" && typeof (v as GeofenceState).get === "function" && typeof (v as GeofenceState).set === "function",
  ),
], { error: `must be "memory", { sqlite: path }, { postgres: { url } }, { kafka: { brokers, topic } } or a GeofenceState` }).meta({ default: "memory" }).describe("Per-track state: `memory` (lost on restart), `{ sqlite: path }` (one process; survives restarts and crashes), or shared by a consumer group's processes: `{ postgres: { url } }`, `{ kafka: { brokers, topic } }`.");

export const bboxFilterSchema = z.strictObject({
  bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]).refine((b) => b[0] <= b[2] && b[1] <= b[3], "min must not exceed max").describe("[minX, minY, maxX, maxY] in the messages' coordinates."),
  predicate: predicate.optional(),
});

export const fenceFilterSchema = z.strictObject({ fences: fenceSource, idProperty: idProperty.optional(), predicate: predicate.optional() });

export const geofenceSchema = z.strictObject({
  fences: fenceSource,
  idProperty: idProperty.optional(),
  trackId: z.string().min(1).optional().meta({ default: "the message key" }).describe("Dotted path to the track id in the message value (data.properties.id)."),
  events: z.array(z.enum(["enter", "exit", "inside", "outside", "cross"])).min(1).optional().meta({ default: ["enter", "exit"] }).describe("Events to emit."),
  state: stateSchema.optional(),
  passThrough: z.boolean().optional().meta({ default: false }).describe("Also pass the input messages on, after their events."),
  workers: z.number().int().min(0).max(16).optional().meta({ default: 0 }).describe("Worker threads that test a batch's points against the fences while the main thread goes on (decoding the next batch); 0 tests them on the main thread."),
});

export const reprojectSchema = z.strictObject({
  from: z.string().min(1).describe("Source CRS: EPSG:4326, EPSG:3857 or a proj4 definition."),
  to: z.string().min(1).describe("Target CRS, as `from`."),
});

export const bufferSchema = z.strictObject({
  distance: z.number().refine(Number.isFinite, "must be finite").describe("Buffer distance; negative shrinks polygons."),
  units: z.enum(["meters", "metres", "kilometers", "kilometres", "miles", "nauticalmiles", "feet", "degrees"]).optional().meta({ default: "kilometers" }).describe("Unit of `distance`."),
  steps: z.number().int().min(1).max(64).optional().meta({ default: 8 }).describe("Segments per quarter circle."),
});

export const routeByFenceSchema = z.strictObject({
  routes: z.record(z.string(), z.array(z.string().min(1))).describe("Sink names per fence id; `*` for a fence not listed, `none` for a message in no fence."),
  fences: fenceSource.optional(),
  idProperty: idProperty.optional(),
});

export type { OptionProblem } from "@geowatch/core";

/** Every problem of `options` against `schema`, each with its dotted path. */
export const problemsOf = optionProblems;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  parseWith(schema, options, what, "spatial");
  return options as T;
}
