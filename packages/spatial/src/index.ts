import type { Stage } from "@geowatch/core";
import { bboxFilter, fenceFilter } from "./filters.js";
import { geofence } from "./geofence.js";
import {
  bboxFilterSchema, bufferSchema, fenceFilterSchema, geofenceSchema, problemsOf, reprojectSchema, routeByFenceSchema,
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

const schemas = {
  bboxFilter: bboxFilterSchema,
  fenceFilter: fenceFilterSchema,
  geofence: geofenceSchema,
  reproject: reprojectSchema,
  buffer: bufferSchema,
  routeByFence: routeByFenceSchema,
} as const;

/** Every problem of a stage's config options, each with its path; an unknown stage is one problem at `stage`. */
export function validateSpatialStage(stage: string, options: Record<string, unknown>): OptionProblem[] {
  const schema = (schemas as Record<string, (typeof schemas)[keyof typeof schemas]>)[stage];
  if (schema === undefined) return [{ path: "stage", message: `unknown spatial stage ${JSON.stringify(stage)}` }];
  return problemsOf(schema, own(options));
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
