/** Options of the reader (consumer and `stores_in`): a zod shape the backend composes with the connection options. */
import { z } from "zod";
import type { OptionProblem } from "@geowatch/core";
import { filterSchema, ogcapiFilterParams } from "./filter.js";
import { wfsConnectionShape } from "./options.js";

const nonEmpty = z.string().min(1, "must be a non-empty string");
const positiveInt = z.number().int("must be an integer").positive("must be > 0");

export const pollSchema = z.strictObject({
  field: nonEmpty.describe("Property that tells new or changed features apart: a timestamp (ISO 8601 text or a number) with `by: timestamp`, or the id with `by: id`."),
  by: z
    .enum(["timestamp", "id"])
    .optional()
    .meta({ default: "timestamp" })
    .describe(
      "`timestamp`: emit features whose `field` is after the last acknowledged value, or at it and not acknowledged yet (oldest first). `id`: read the layer, emit features whose id is new or whose content changed since it was acknowledged (a hash per id in the checkpoint).",
    ),
  serverFilter: z
    .boolean()
    .optional()
    .meta({ default: false })
    .describe(
      "`by: timestamp` on WFS: ask the server only for features whose `field` is at or after the acknowledged value (PropertyIsGreaterThanOrEqualTo) instead of reading the layer whole. Only where the server compares the field as written: MapServer 8 over a GeoPackage DateTime column does not (an ISO 8601 literal with `T...Z` excludes the value itself), and features would be skipped.",
    ),
  deletes: z
    .boolean()
    .optional()
    .meta({ default: false })
    .describe("`by: id`: also emit a delete (a Feature with that id and no geometry or properties; actiontype `delete` in an envelope) for an acknowledged id that is no longer in the layer or no longer matches the filter."),
  intervalMs: positiveInt.optional().meta({ default: 30000 }).describe("Time between polls in ms; a failed poll is retried after the same interval (up to 8 times longer after repeated failures)."),
  checkpoint: nonEmpty.meta({ path: true }).describe("SQLite file (node:sqlite) holding the acknowledged position; created when missing. A restart continues from it."),
});

/**
 * What a read asks for, composable into any role's schema (the store adds it for `stores_in`): no connection
 * keys, no `version`/`type_name`/`geometry_name`/`srs_name` (the writer's options have them, with the same meaning).
 */
export const wfsReaderShape = {
  pageSize: positiveInt.max(100000).optional().meta({ default: 1000 }).describe("Features per request (`count` / `maxFeatures` / `limit`)."),
  maxFeatures: positiveInt.optional().describe("Stop after this many features per read. When polling, the layer is read whole and at most this many new or changed features are emitted per poll (oldest first by timestamp), the next poll following at once with the rest. Default: all."),
  outputFormat: z
    .enum(["auto", "geojson", "gml"])
    .optional()
    .meta({ default: "auto" })
    .describe("`auto`: GeoJSON when the capabilities list a JSON output format for GetFeature, else GML. OGC API always reads GeoJSON."),
  bbox: z
    .tuple([z.number(), z.number(), z.number(), z.number()])
    .optional()
    .describe("Only features inside `[min_x, min_y, max_x, max_y]` in `bbox_crs` (longitude/latitude order for EPSG:4326, whatever the version's axis order on the wire)."),
  bboxCrs: nonEmpty.optional().meta({ default: "EPSG:4326" }).describe("CRS of `bbox` as `EPSG:<code>`."),
  filter: filterSchema.optional().describe("Property filter, sent in OGC Filter encoding (Filter 1.1 for WFS 1.1.0, FES 2.0 for 2.0.0): `{ property, eq|ne|lt|lte|gt|gte|like|between|null, matchcase? }` (`like` wildcards `*` and `?`, escape `\\`; `null: true` is PropertyIsNull), `{ and: [...] }`, `{ or: [...] }`, `{ not: ... }`. OGC API: `eq` conditions joined by `and` only (query parameters)."),
  datetime: nonEmpty.optional().describe("OGC API `datetime` parameter (`2026-01-01T00:00:00Z/..`)."),
  idField: nonEmpty.optional().describe("Property whose value becomes each Feature's `id` and the record key. Default: the server's feature id (`gml:id`, GeoJSON `id`)."),
  envelope: z.boolean().optional().meta({ default: false }).describe("Emit `{ metadata: { featuretype, actiontype }, data: Feature }` envelopes (actiontype `create`, or `create`/`update`/`delete` when polling by id) instead of bare Features."),
};

/** The consumer: the connection, what to read, and the polling mode. */
export const wfsConsumerSchema = z.strictObject({
  ...wfsConnectionShape,
  version: z
    .enum(["1.1.0", "2.0.0"])
    .optional()
    .meta({ default: "1.1.0" })
    .describe("WFS version of GetFeature: 2.0.0 (`count`/`startIndex`, FES 2.0 filters, GML 3.2) or 1.1.0 (`maxFeatures`, Filter 1.1, GML 3.1.1). QGIS Server speaks 1.1.0 only."),
  typeName: nonEmpty.describe("Feature type (WFS, `ms:points` or `points`) or collection id (OGC API) to read."),
  srsName: nonEmpty.optional().describe("CRS asked for in GetFeature (WFS). Default: `urn:ogc:def:crs:EPSG::4326` in both versions (MapServer 8 refuses the 2.0.0 URI form here); the GML is read in the axis order of the CRS asked for, so features come out longitude, latitude."),
  geometryName: nonEmpty.optional().describe("Geometry property the BBOX filter names (`msGeometry` on MapServer, `geometry` on QGIS Server). Default: none named (the type's default geometry)."),
  ...wfsReaderShape,
  poll: pollSchema.optional().describe("Polling mode (consumer): read again every `interval_ms` and emit only new or changed features, the position checkpointed on acknowledgement. Without it the consumer reads the layer once."),
});

/** Options of `wfsConsumer` (and, without `poll`, of `readStore`). */
export type WfsReaderOptions = z.input<typeof wfsConsumerSchema>;
/** The polling options. */
export type WfsPollOptions = z.input<typeof pollSchema>;

/** Rules the schema cannot say, checked at `geowatch validate` time; paths in camelCase. */
export function checkReaderOptions(o: z.output<typeof wfsConsumerSchema>): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const ogcapi = o.protocol === "ogcapi";
  if (!ogcapi && o.datetime !== undefined) problems.push({ path: "datetime", message: "applies to OGC API Features only (protocol: ogcapi); on WFS, filter on the time property" });
  if (ogcapi && o.bboxCrs !== undefined && !/^(EPSG:4326|CRS:?84)$/i.test(o.bboxCrs)) problems.push({ path: "bboxCrs", message: "OGC API bbox is sent in CRS84 (longitude, latitude) only" });
  if (ogcapi && o.filter !== undefined) {
    try {
      ogcapiFilterParams(o.filter);
    } catch (err) {
      problems.push({ path: "filter", message: err instanceof Error ? err.message.replace(/^\[geowatch\] \[wfs\] /, "") : String(err) });
    }
  }
  if (o.poll?.serverFilter && (ogcapi || o.poll.by === "id")) problems.push({ path: "poll.serverFilter", message: "applies to `by: timestamp` on WFS only" });
  if (o.poll?.deletes && o.poll.by !== "id") problems.push({ path: "poll.deletes", message: "applies to `by: id` only (a timestamp field cannot see deletes)" });
  return problems;
}
