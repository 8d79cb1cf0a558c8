/** Options of the wfs backend's roles: one zod schema per role gives validation, types, docs and JSON Schema. */
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");
const positiveInt = z.number().int("must be an integer").positive("must be > 0");

/** Where the server is and how to reach it; every role has these. */
export const wfsConnectionShape = {
  url: nonEmpty
    .meta({ env: "GEOWATCH_WFS_URL" })
    .describe("Service URL: the WFS endpoint (`https://host/ows`, query parameters kept) or, with `protocol: ogcapi`, the OGC API Features landing page (`https://host/wfs3`)."),
  protocol: z.enum(["wfs", "ogcapi"]).optional().meta({ default: "wfs" }).describe("`wfs`: WFS (Transaction / GetFeature); `ogcapi`: OGC API Features (Part 4 POST/PUT/DELETE on `/collections/{id}/items`)."),
  username: nonEmpty.optional().meta({ env: "GEOWATCH_WFS_USERNAME" }).describe("HTTP Basic user name; with `password` or `password_file`."),
  password: nonEmpty.optional().meta({ env: "GEOWATCH_WFS_PASSWORD", secret: true }).describe("HTTP Basic password; never logged. Or `password_file`."),
  passwordFile: nonEmpty.optional().meta({ env: "GEOWATCH_WFS_PASSWORD_FILE", path: true }).describe("File holding the HTTP Basic password (surrounding whitespace trimmed)."),
  token: nonEmpty.optional().meta({ env: "GEOWATCH_WFS_TOKEN", secret: true }).describe("Bearer token (`Authorization: Bearer ...`); never logged. Or `token_file`. Not with `username`."),
  tokenFile: nonEmpty.optional().meta({ env: "GEOWATCH_WFS_TOKEN_FILE", path: true }).describe("File holding the bearer token (surrounding whitespace trimmed)."),
  timeoutMs: positiveInt.optional().meta({ default: 30000 }).describe("Timeout of one HTTP request in ms, from connect to the last byte."),
  maxResponseBytes: positiveInt.optional().meta({ default: 67108864 }).describe("Largest response body read, in bytes; a bigger one fails the request."),
  allowPrivate: z
    .boolean()
    .optional()
    .meta({ default: false })
    .describe("Allow loopback, private and link-local addresses (a server on this machine or the LAN). Off, such addresses are refused, at connect time and on every redirect."),
  allowHosts: z.array(nonEmpty).optional().describe("Host names allowed even when they resolve to a private address (an intranet WFS)."),
};

/** What the writer (producer and store) adds. */
export const wfsWriterShape = {
  version: z.enum(["1.1.0", "2.0.0"]).optional().meta({ default: "1.1.0" }).describe("WFS version of the Transaction: 1.1.0 (GML 3.1.1, `ogc:` filters) or 2.0.0 (GML 3.2, `fes:` filters)."),
  typeName: nonEmpty
    .optional()
    .describe("Feature type (WFS) or collection id (OGC API) written to when the envelope's `metadata.featuretype` names none. A prefix (`qgs:points`) is kept; else the server's prefix is used."),
  featureNamespace: nonEmpty
    .optional()
    .meta({ default: "from DescribeFeatureType" })
    .describe("Namespace URI of the feature types (WFS). Default: read once per type from DescribeFeatureType, with the geometry property's name."),
  geometryName: nonEmpty.optional().meta({ default: "from DescribeFeatureType" }).describe("Geometry property of the feature types (WFS)."),
  idProperty: nonEmpty
    .optional()
    .describe(
      "Property holding each feature's stable id (`uid`). With it edits are idempotent: each batch looks its ids up first (WFS: GetFeature, 50 ids per request; OGC API: `items?<id_property>=<id>`), a create of an id that exists becomes an Update, an update or delete acts on the server's feature ids for it, so a replay after a crash converges. Without it, `update`/`delete` take the Feature's `id` as the server's feature id and a replayed create inserts again.",
    ),
  srsName: nonEmpty.optional().meta({ default: "EPSG:4326 in the version's URN/URI form" }).describe("CRS of the coordinates written (WFS); GeoJSON is longitude, latitude."),
  axisOrder: z
    .enum(["lonlat", "latlon"])
    .optional()
    .meta({ default: "what srs_name implies" })
    .describe("Coordinate order written (WFS), when the server does not follow its srsName: QGIS Server reads `gml:pos` as lon lat even with the EPSG:4326 URN, so set `lonlat` for it."),
  nulls: z
    .enum(["nil", "omit"])
    .optional()
    .meta({ default: "nil" })
    .describe("A null property on Insert: `nil` writes `xsi:nil=\"true\"`, `omit` leaves the element out (for servers that refuse xsi:nil). Updates always set it to null."),
  maxBatch: positiveInt.optional().meta({ default: 200 }).describe("Most edits in one Transaction (WFS) or records per send (OGC API, one request each)."),
  maxBatchBytes: positiveInt.optional().meta({ default: 4194304 }).describe("Most bytes of records in one Transaction; the broker splits above it."),
  defaultAction: z
    .enum(["create", "update", "delete"])
    .optional()
    .meta({ default: "create" })
    .describe("Action for a record without `metadata.actiontype` (a bare Feature). With `id_property`, a create of an existing id updates it."),
};

export const wfsProducerSchema = z.strictObject({ ...wfsConnectionShape, ...wfsWriterShape });
export const wfsStoreSchema = z.strictObject({ ...wfsConnectionShape, ...wfsWriterShape });

/** Options of the connection (every role). */
export type WfsConnectionOptions = z.input<z.ZodObject<typeof wfsConnectionShape>>;
/** Options of `wfsProducer`. */
export type WfsProducerOptions = z.input<typeof wfsProducerSchema>;
/** Options of `wfsStore`. */
export type WfsStoreOptions = z.input<typeof wfsStoreSchema>;
