/** Options of the subscriptions and geoserver_events stages: one zod schema each gives validation, types, docs and JSON Schema. */
import { z } from "zod";

export const subscriptionsStageSchema = z.strictObject({
  db: z.string().min(1, "must be a non-empty path").meta({ path: true }).describe("SQLite file holding the subscriptions (`geowatch-subscriptions add` writes it); created when missing. Changes apply from the next batch."),
  fences: z.string().min(1).meta({ path: true }).optional().describe("GeoJSON FeatureCollection of named areas that subscriptions can name (`area: { fence: name }`)."),
  idProperty: z.string().min(1).optional().meta({ default: "id" }).describe("Fence property holding the fence name when a feature has no `id`."),
  routes: z
    .record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/), z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]))
    .optional()
    .describe("Sink names per channel (`{ email: mail, feed: feeds, slack: chat }`). A message for a channel not listed here is dead-lettered with the reason. Default: each channel goes to the sink named like it."),
});

export const geoserverEventsStageSchema = z.strictObject({
  onUnknown: z.enum(["dead_letter", "drop"]).optional().meta({ default: "dead_letter" }).describe("What to do with a message that is not a GeoServer notification: dead-letter it with the reason, or drop it."),
});

/** Options of the `subscriptions` stage. */
export type SubscriptionsStageOptions = z.input<typeof subscriptionsStageSchema>;
/** Options of the `geoserver_events` stage. */
export type GeoserverEventsStageOptions = z.input<typeof geoserverEventsStageSchema>;
