import { GeoWatchError } from "@geowatch/core";
import type { BBox, LayerInput, ServiceType } from "../storage/types.js";
import { getJson } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { cleanBBox, layerIdentifier, mercatorToLonLat } from "./types.js";

type Json = Record<string, unknown>;

const MERCATOR = new Set([102100, 102113, 3857, 900913, 3785, 41001]);
/** Geographic systems in degrees whose datums differ from WGS84 by metres at most: read as lon/lat for a bbox. */
const GEOGRAPHIC = new Set([4326, 4269, 4258, 4283, 4617, 4167, 4019, 4030, 104199]);
const MERC_MAX = 20037508.342789244;

/** The EPSG (or ESRI) code of an Esri spatialReference: latestWkid first (102100 answers as 3857). */
export function esriWkid(sr: unknown): number | undefined {
  if (!sr || typeof sr !== "object") return undefined;
  const o = sr as Json;
  const n = Number(o.latestWkid ?? o.wkid);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * An Esri extent to lon/lat: WGS84 and other geographic systems as they are, Web Mercator converted (clamped to
 * the projection's square first); null for other systems, wkt-only references, and "NaN" or missing numbers
 * (ArcGIS writes "NaN" for an empty layer).
 */
export function esriExtent(e: unknown): BBox | null {
  if (!e || typeof e !== "object") return null;
  const x = e as Json;
  const sr = x.spatialReference as Json | undefined;
  const codes = sr ? [Number(sr.latestWkid), Number(sr.wkid)] : [4326]; // no spatialReference: ArcGIS 9.x, degrees
  const b = [x.xmin, x.ymin, x.xmax, x.ymax].map((v) => (typeof v === "number" ? v : typeof v === "string" && v.trim() ? Number(v) : NaN));
  if (b.some((v) => !Number.isFinite(v))) return null;
  if (codes.some((c) => GEOGRAPHIC.has(c))) return cleanBBox(b);
  if (codes.some((c) => MERCATOR.has(c))) {
    const c = (v: number) => Math.max(-MERC_MAX, Math.min(MERC_MAX, v));
    const lo = mercatorToLonLat(c(b[0]!), c(b[1]!));
    const hi = mercatorToLonLat(c(b[2]!), c(b[3]!));
    return cleanBBox([lo[0], lo[1], hi[0], hi[1]]);
  }
  return null;
}

/** The first of these extents that converts to lon/lat (a full extent of "NaN"s falls back to the initial one). */
function firstExtent(...es: unknown[]): BBox | null {
  for (const e of es) {
    const b = esriExtent(e);
    if (b) return b;
  }
  return null;
}

/** The CRS list of a spatialReference: `EPSG:<latestWkid>` (Esri's own 10xxxx codes as `ESRI:<code>`). */
function crsOf(sr: unknown): string[] {
  const w = esriWkid(sr);
  return w ? [w >= 100000 && w < 200000 ? `ESRI:${w}` : `EPSG:${w}`] : [];
}

function restUrl(url: string): string {
  const u = new URL(url);
  u.search = "";
  u.pathname = u.pathname.replace(/\/+$/, "");
  return u.href;
}

function withF(url: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}f=json`;
}

/** The ArcGIS REST service type a URL names (…/MapServer, …/ImageServer, …/FeatureServer), if any. */
export function esriTypeOf(url: string): ServiceType | undefined {
  const m = /\/(MapServer|ImageServer|FeatureServer)\/?$/i.exec(new URL(url).pathname);
  if (!m) return undefined;
  const kind = m[1]!.toLowerCase();
  return kind === "mapserver" ? "ESRI:ArcGIS:MapServer" : kind === "imageserver" ? "ESRI:ArcGIS:ImageServer" : "ESRI:ArcGIS:FeatureServer";
}

/** The services an ArcGIS REST services root lists (folders followed one level), as service URLs. */
export async function discoverEsriServices(url: string, ctx: HarvestContext): Promise<string[]> {
  const root = restUrl(url);
  const out: string[] = [];
  const list = async (u: string, depth: number) => {
    const doc = await getJson(ctx.fetcher, withF(u));
    if (doc.error) throw new GeoWatchError("FETCH", `ArcGIS error: ${JSON.stringify(doc.error)}`, { backend: "registry" });
    for (const s of (doc.services ?? []) as Json[]) {
      if (!["MapServer", "ImageServer", "FeatureServer"].includes(String(s.type))) continue;
      // ArcGIS Online / Enterprise hosted roots give each service's url; ArcGIS Server gives "Folder/Name".
      const given = typeof s.url === "string" && /^https?:\/\//i.test(s.url) ? restUrl(s.url) : undefined;
      out.push(given ?? `${root}/${String(s.name).split("/").map(encodeURIComponent).join("/")}/${String(s.type)}`);
    }
    if (depth === 0) for (const f of (doc.folders ?? []) as string[]) await list(`${root}/${encodeURIComponent(f)}`, 1);
  };
  await list(root, 0);
  return out;
}

/** A timeInfo's extent in epoch ms; either end may be null (open). */
function timeOf(info: unknown): { start: number | null; end: number | null } {
  const ext = (info as Json | undefined)?.timeExtent;
  if (!Array.isArray(ext)) return { start: null, end: null };
  const ms = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  return { start: ms(ext[0]), end: ms(ext[1]) };
}

/** documentInfo.Keywords as a list: ArcGIS keeps what the author typed, separated by commas or semicolons. */
function keywordsOf(info: Json): string[] {
  const out = new Set<string>();
  for (const k of String(info.Keywords ?? "").split(/[,;]/)) if (k.trim()) out.add(k.trim());
  return [...out];
}

/** The names of a layer's group layers, outermost first ("Census boundaries" for Counties). */
function groupPath(id: number, byId: Map<number, Json>): string[] {
  const path: string[] = [];
  let parent = Number(byId.get(id)?.parentLayerId ?? -1);
  for (let hops = 0; parent >= 0 && hops < 32; hops++) {
    const p = byId.get(parent);
    if (!p) break;
    path.unshift(String(p.name ?? parent));
    parent = Number(p.parentLayerId ?? -1);
  }
  return path;
}

/**
 * MapServer, ImageServer or FeatureServer JSON to layers. MapServer and FeatureServer: one layer per leaf layer
 * (group layers, those with subLayerIds, are not drawn on their own: their path is kept in `extra.groups`), each
 * with its own extent and time extent from `/layers` (one request; the service's when absent or not in lon/lat or
 * Web Mercator); tables are not layers. ImageServer: one layer.
 */
export async function harvestEsri(url: string, ctx: HarvestContext): Promise<Harvested> {
  const type = esriTypeOf(url);
  if (!type) throw new GeoWatchError("VALIDATE", `${url} does not end in /MapServer, /ImageServer or /FeatureServer`, { backend: "registry" });
  const svc = restUrl(url);
  const doc = await getJson(ctx.fetcher, withF(svc));
  if (doc.error) throw new GeoWatchError("FETCH", `ArcGIS error: ${JSON.stringify(doc.error)}`, { backend: "registry" });
  const info = (doc.documentInfo ?? {}) as Json;
  const serviceName = decodeURIComponent(svc.split("/").slice(-2, -1)[0] ?? "");
  const mapName = doc.mapName && doc.mapName !== "Layers" ? String(doc.mapName) : ""; // "Layers" is ArcMap's default data frame name
  const title = String(info.Title || mapName || doc.name || serviceName);
  const abstract = String(doc.serviceDescription || doc.description || "");
  const keywords = keywordsOf(info);
  const owner = ctx.owner || String(info.Author ?? "");
  const crs = crsOf(doc.spatialReference ?? (doc.fullExtent as Json | undefined)?.spatialReference);
  const full = firstExtent(doc.fullExtent, doc.extent, doc.initialExtent);
  const serviceTime = timeOf(doc.timeInfo);
  const base = (name: string, extra: Json): Omit<LayerInput, "bbox"> => ({
    identifier: layerIdentifier(type, svc, name),
    name,
    title: name,
    abstract,
    keywords,
    crs,
    type,
    url: svc,
    owner,
    extra,
  });
  let layers: LayerInput[];
  if (type === "ESRI:ArcGIS:ImageServer") {
    const name = String(doc.name || serviceName);
    layers = [{
      ...base(name, { esriLayer: null, ...(doc.bandCount !== undefined ? { bands: doc.bandCount } : {}), ...(doc.pixelType ? { pixelType: doc.pixelType } : {}) }),
      title: name,
      abstract: String(doc.description || abstract),
      bbox: full,
      timeStart: serviceTime.start,
      timeEnd: serviceTime.end,
    }];
  } else {
    const listed = (Array.isArray(doc.layers) ? doc.layers : []) as Json[];
    const byId = new Map(listed.map((l) => [Number(l.id), l]));
    // Per-layer details: MapServer and FeatureServer answer /layers with every layer's full JSON in one request.
    const all = await getJson(ctx.fetcher, withF(`${svc}/layers`)).catch(() => ({}) as Json);
    const details = new Map(((Array.isArray(all.layers) ? all.layers : []) as Json[]).map((l) => [Number(l.id), l]));
    layers = [];
    for (const l of listed) {
      if (Array.isArray(l.subLayerIds) && l.subLayerIds.length) continue;
      const id = Number(l.id);
      let d = details.get(id);
      if (!d && type === "ESRI:ArcGIS:FeatureServer") {
        // Servers without /layers (Koop) answer each layer's own /<id>.
        d = await getJson(ctx.fetcher, withF(`${svc}/${String(l.id)}`)).catch(() => undefined);
      }
      const t = d?.timeInfo ? timeOf(d.timeInfo) : serviceTime;
      const groups = groupPath(id, byId);
      const layerCrs = crsOf((d?.extent as Json | undefined)?.spatialReference);
      layers.push({
        ...base(String(l.id), { esriLayer: l.id, ...(groups.length ? { groups } : {}), ...(l.geometryType || d?.geometryType ? { geometryType: l.geometryType ?? d?.geometryType } : {}) }),
        title: String(l.name ?? d?.name ?? l.id),
        abstract: String(d?.description || abstract),
        bbox: esriExtent(d?.extent) ?? full,
        crs: layerCrs.length ? layerCrs : crs,
        timeStart: t.start,
        timeEnd: t.end,
      });
    }
  }
  return { type, url: svc, title, abstract, version: String(doc.currentVersion ?? ""), layers };
}
