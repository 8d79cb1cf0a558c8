/**
 * GeoServer notification messages to GeoWatch envelopes. Follows the JSON that GeoServer's notification
 * community module writes with its GeoNode encoder (`notification-geonode`, GeoNodeJsonEncoder; docs:
 * docs.geoserver.org, "Notification community module"): `{ id, type: "Catalog" | "Data", action: "Add" |
 * "Update" | "Remove", generator, timestamp, user, originator, source: { id, type: "LayerInfo" | ..., name,
 * workspace, bounds, geographicBunds }, properties }`, where a WFS-T transaction is a `Data` message whose
 * properties hold `inserted`, `updated`, `deleted` and `bounds`. The earlier form in the GNIP-49 proposal
 * (`type: "CatalogAddEvent"`, `source.resource`, `totalInserted`) is read too.
 */
import { GeoWatchError } from "@geowatch/core";
import type { Envelope, Mapping, Message, Metadata } from "@geowatch/core";

/** GeoServer's `Bounds`: an envelope in a CRS. */
interface Bounds {
  minx?: unknown;
  miny?: unknown;
  maxx?: unknown;
  maxy?: unknown;
  crs?: unknown;
}

const TARGETS: Record<string, string> = {
  LayerInfo: "layer",
  LayerGroupInfo: "layergroup",
  FeatureTypeInfo: "featuretype",
  CoverageInfo: "coverage",
  WMSLayerInfo: "wmslayer",
  WMTSLayerInfo: "wmtslayer",
  StoreInfo: "store",
  DataStoreInfo: "store",
  CoverageStoreInfo: "store",
  WMSStoreInfo: "store",
  StyleInfo: "style",
  WorkspaceInfo: "workspace",
  NamespaceInfo: "namespace",
};

const ACTIONS: Record<string, string> = { Add: "create", Update: "update", Modify: "update", Remove: "delete" };

function fail(message: string, path: string): never {
  throw new GeoWatchError("VALIDATE", `not a GeoServer notification: ${message}`, { backend: "geoserver", path });
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** True for CRS names of WGS84 lon/lat as GeoServer writes them. */
const isLonLat = (crs: unknown) => typeof crs === "string" && /^(EPSG:4326|CRS:84|urn:ogc:def:crs:(EPSG::4326|OGC:1\.3:CRS84)|http:\/\/www\.opengis\.net\/(def\/crs\/EPSG\/0\/4326|gml\/srs\/epsg\.xml#4326))$/i.test(crs);

/** `[minx, miny, maxx, maxy]` of a lon/lat Bounds; undefined for other CRSs (their numbers are not degrees). */
function bboxOf(b: unknown): [number, number, number, number] | undefined {
  if (!isObj(b)) return undefined;
  const v = b as Bounds;
  const n = [num(v.minx), num(v.miny), num(v.maxx), num(v.maxy)];
  if (n.some((x) => x === undefined) || !isLonLat(v.crs)) return undefined;
  const [minx, miny, maxx, maxy] = n as [number, number, number, number];
  if (minx > maxx || miny > maxy || Math.abs(minx) > 180 || Math.abs(maxx) > 180 || Math.abs(miny) > 90 || Math.abs(maxy) > 90) return undefined;
  return [minx, miny, maxx, maxy];
}

function dateOf(ts: unknown): string | undefined {
  // The GeoNode encoder writes minutes (`2017-03-15T10:20Z`); Jackson's default and the GNIP examples, epoch ms.
  const d = typeof ts === "number" ? new Date(ts) : typeof ts === "string" ? new Date(ts) : undefined;
  return d && !Number.isNaN(d.getTime()) ? d.toISOString() : undefined;
}

/** The GNIP-49 proposal's `CatalogAddEvent`-style type: `[kind, action]`. */
function proposalType(type: string): [string, string | undefined] | undefined {
  const m = /^Catalog(Add|Modify|PostModify|Remove)Event$/.exec(type);
  if (m) return ["Catalog", m[1] === "PostModify" ? "Modify" : m[1]];
  if (/^(Post|Pre)(Insert|Update|Delete)Event$/.test(type)) return ["Data", undefined];
  return undefined;
}

/** The envelope of one GeoServer notification (parsed JSON). */
export function geoserverEnvelope(msg: unknown): Envelope<Record<string, unknown>> {
  if (!isObj(msg)) fail("expected a JSON object", "(root)");
  const rawType = str(msg.type);
  if (!rawType) fail("type is missing", "type");
  const proposal = proposalType(rawType);
  const kind = proposal ? proposal[0] : rawType;
  if (kind !== "Catalog" && kind !== "Data") fail(`type ${JSON.stringify(rawType)} is neither Catalog nor Data`, "type");
  const source = msg.source;
  if (!isObj(source)) fail("source is missing", "source");
  const sourceType = str(source.type) ?? str(source.resource);
  const props = isObj(msg.properties) ? msg.properties : {};
  const workspace = str(source.workspace) ?? str(source.namespace);
  const name = str(source.name);
  const meta: Metadata = {};
  const id = str(msg.id) ?? (typeof msg.id === "number" ? String(msg.id) : undefined);
  if (id) meta.id = id;
  if (kind === "Catalog") {
    const action = proposal ? proposal[1] : str(msg.action);
    const actiontype = action ? ACTIONS[action] : undefined;
    if (!actiontype) fail(`catalog action ${JSON.stringify(action ?? null)} is not Add, Update or Remove`, "action");
    meta.actiontype = actiontype;
    const targettype = sourceType ? TARGETS[sourceType] : undefined;
    if (!targettype) fail(`source type ${JSON.stringify(sourceType ?? null)} is not a catalog object GeoServer reports`, "source.type");
    meta.targettype = targettype;
    if (name && ["layer", "layergroup", "featuretype", "coverage", "wmslayer", "wmtslayer", "style"].includes(targettype)) {
      meta.featuretype = workspace ? `${workspace}:${name}` : name;
    }
    const changed = Object.keys(props);
    if (changed.length > 0) meta.changed = changed;
  } else {
    // A WFS-T transaction's summary for one feature type.
    meta.actiontype = "edit";
    meta.targettype = "data";
    if (name) meta.featuretype = workspace ? `${workspace}:${name}` : name;
    for (const k of ["inserted", "updated", "deleted"] as const) {
      const n = num(props[k]) ?? num(msg[`total${k[0]!.toUpperCase()}${k.slice(1)}`]);
      if (n !== undefined) meta[k] = n;
    }
  }
  const date = dateOf(msg.timestamp);
  if (date) meta.date = date;
  const bbox = bboxOf(props.bounds) ?? bboxOf(source.geographicBunds) ?? bboxOf(source.geographicBounds) ?? bboxOf(source.bounds);
  if (bbox) meta.bbox = bbox;
  if (workspace) meta.workspace = workspace;
  if (name) meta.name = name;
  for (const k of ["user", "generator", "originator"] as const) {
    const v = str(msg[k]);
    if (v) meta[k] = v;
  }
  return { metadata: meta, data: msg };
}

/** Core's Mapping: a GeoServer notification (object or JSON text) to a broker message. */
export const geoserverMapping: Mapping<unknown, Envelope<Record<string, unknown>>> = {
  name: "geoserver",
  toMessage(obj: unknown): Message<Envelope<Record<string, unknown>>> {
    let value = obj;
    if (typeof obj === "string") {
      try {
        value = JSON.parse(obj) as unknown;
      } catch (cause) {
        throw new GeoWatchError("DECODE", "not a GeoServer notification: not JSON", { backend: "geoserver", cause });
      }
    }
    const envelope = geoserverEnvelope(value);
    const m: Message<Envelope<Record<string, unknown>>> = { value: envelope, metadata: envelope.metadata };
    if (typeof envelope.metadata.id === "string") m.key = envelope.metadata.id;
    return m;
  },
  fromMessage(msg) {
    return msg.value.data;
  },
};
