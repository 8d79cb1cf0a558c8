import { defineStage } from "@geowatch/core";
import type { Stage, StageDefinition } from "@geowatch/core";
import { bboxFilter, fenceFilter } from "./filters.js";
import { geofence } from "./geofence.js";
import {
  bboxFilterSchema, bufferSchema, fenceFilterSchema, geofenceSchema, reprojectSchema, routeByFenceSchema,
} from "./options.js";
import type {
  BboxFilterOptions, BufferOptions, FenceFilterOptions, GeofenceOptions, ReprojectOptions, RouteByFenceOptions,
  SpatialStageContext, OptionProblem,
} from "./options.js";
import { routeByFence } from "./route.js";
import { buffer, reproject } from "./transforms.js";

/** A stage factory as config names it: `{ stage: "geofence", fences: "./fences.geojson", ... }`. */
export type SpatialStageFactory = (options: Record<string, unknown>, ctx?: SpatialStageContext) => Stage;

/** Config keys the runtime uses itself, not stage options. */
function own(options: Record<string, unknown>): Record<string, unknown> {
  const { stage: _stage, ...rest } = options;
  return rest;
}

/** The spatial stages by config name. */
export const spatialStages: Record<string, SpatialStageFactory> = {
  bboxFilter: (options, ctx) => bboxFilter(own(options) as unknown as BboxFilterOptions, ctx),
  fenceFilter: (options, ctx) => fenceFilter(own(options) as unknown as FenceFilterOptions, ctx),
  geofence: (options, ctx) => geofence(own(options) as unknown as GeofenceOptions, ctx),
  reproject: (options, ctx) => reproject(own(options) as unknown as ReprojectOptions, ctx),
  buffer: (options, ctx) => buffer(own(options) as unknown as BufferOptions, ctx),
  routeByFence: (options, ctx) => routeByFence(own(options) as unknown as RouteByFenceOptions, ctx),
};

/** The spatial stages as config names them (`stage: route_by_fence`), each defined once from its option schema. */
export const bboxFilterStage = defineStage({
  name: "bbox_filter",
  description: "passes messages whose geometry intersects (or lies within) a bounding box",
  options: bboxFilterSchema,
  create: (o, ctx) => bboxFilter(o as BboxFilterOptions, ctx),
});
export const fenceFilterStage = defineStage({
  name: "fence_filter",
  description: "passes messages whose geometry intersects (or lies within) any fence",
  options: fenceFilterSchema,
  create: (o, ctx) => fenceFilter(o as FenceFilterOptions, ctx),
});
export const geofenceStage = defineStage({
  name: "geofence",
  description: "enter/exit/inside/outside/cross events per track against fences, state exact across crashes",
  options: geofenceSchema,
  create: (o, ctx) => geofence(o as GeofenceOptions, ctx),
});
export const reprojectStage = defineStage({
  name: "reproject",
  description: "reprojects geometries between CRSs (EPSG:4326, EPSG:3857, proj4 strings)",
  options: reprojectSchema,
  create: (o, ctx) => reproject(o as ReprojectOptions, ctx),
});
export const bufferStage = defineStage({
  name: "buffer",
  description: "buffers geometries by a distance",
  options: bufferSchema,
  create: (o, ctx) => buffer(o as BufferOptions, ctx),
});
export const routeByFenceStage = defineStage({
  name: "route_by_fence",
  description: "routes messages to sinks by the fence they are in",
  options: routeByFenceSchema,
  create: (o, ctx) => routeByFence(o as RouteByFenceOptions, ctx),
});

const definitions: Record<string, StageDefinition> = {
  bboxFilter: bboxFilterStage,
  fenceFilter: fenceFilterStage,
  geofence: geofenceStage,
  reproject: reprojectStage,
  buffer: bufferStage,
  routeByFence: routeByFenceStage,
};

/** Every problem of a stage's options (camelCase keys, as the factories take them), each with its path. */
export function validateSpatialStage(stage: string, options: Record<string, unknown>): OptionProblem[] {
  const def = Object.hasOwn(definitions, stage) ? definitions[stage] : undefined;
  if (def === undefined) return [{ path: "stage", message: `unknown spatial stage ${JSON.stringify(stage)}` }];
  const r = def.parse(own(options));
  return r.ok ? [] : r.problems;
}

export { bboxFilter, fenceFilter } from "./filters.js";
export { geofence } from "./geofence.js";
export { reproject, buffer } from "./transforms.js";
export { routeByFence } from "./route.js";
export { FenceIndex, createFenceIndex, segmentsMeet } from "./fence-index.js";
export type { FenceIndexOptions, Predicate } from "./fence-index.js";
export { loadFences } from "./fences.js";
export type { Fence, LoadFencesOptions } from "./fences.js";
export { memoryGeofenceState, sqliteGeofenceState } from "./state.js";
export type { GeofenceState, TrackState } from "./state.js";
export { postgresGeofenceState } from "./state-postgres.js";
export type { PostgresStateOptions } from "./state-postgres.js";
export { kafkaGeofenceState } from "./state-kafka.js";
export type { KafkaStateOptions } from "./state-kafka.js";
export { geometryProblem, featureProblem } from "./geojson.js";
export type { Feature, FeatureCollection, Geometry, Position, GeoProblem } from "./geojson.js";
export { locate } from "./message.js";
export type { Located } from "./message.js";
export {
  bboxFilterSchema, fenceFilterSchema, geofenceSchema, reprojectSchema, bufferSchema, routeByFenceSchema,
} from "./options.js";
export type {
  BboxFilterOptions, FenceFilterOptions, GeofenceOptions, GeofenceEvent, ReprojectOptions, BufferOptions, BufferUnits,
  RouteByFenceOptions, FenceSource, SpatialStageContext, OptionProblem,
} from "./options.js";
