import { GeoWatchError } from "@geowatch/core";
import type { BBox, LayerInput, ServiceType } from "../storage/types.js";
import { getJson } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { cleanBBox, layerIdentifier, mercatorToLonLat } from "./types.js";

type Json = Record<string, unknown>;

const MERCATOR = new Set([102100, 102113, 3857, 900913, 3785]);

/** An Esri extent to lon/lat: WGS84 as it is, Web Mercator converted; other systems are not reprojected (null). */
export function esriExtent(e: unknown): BBox | null {
  if (!e || typeof e !== "object") return null;
  const x = e as Json;
  const sr = (x.spatialReference ?? {}) as Json;
  const wkid = Number(sr.latestWkid ?? sr.wkid ?? 4326);
  const b = [x.xmin, x.ymin, x.xmax, x.ymax].map(Number) as [number, number, number, number];
  if (wkid === 4326 || wkid === 4269) return cleanBBox(b);
  if (MERCATOR.has(wkid)) {
    const a = mercatorToLonLat(b[0], b[1]);
    const c = mercatorToLonLat(b[2], b[3]);
    return cleanBBox([a[0], a[1], c[0], c[1]]);
  }
  return null;
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
      if (["MapServer", "ImageServer", "FeatureServer"].includes(String(s.type))) {
        out.push(`${root}/${String(s.name).split("/").map(encodeURIComponent).join("/")}/${String(s.type)}`);
      }
    }
    if (depth === 0) for (const f of (doc.folders ?? []) as string[]) await list(`${root}/${encodeURIComponent(f)}`, 1);
  };
  await list(root, 0);
  return out;
}

function timeOf(info: unknown): { start: number | null; end: number | null } {
  const ext = (info as Json | undefined)?.timeExtent as number[] | undefined;
  return { start: ext?.[0] ?? null, end: ext?.[1] ?? null };
}

/** MapServer, ImageServer or FeatureServer JSON to layers. */
export async function harvestEsri(url: string, ctx: HarvestContext): Promise<Harvested> {
  const type = esriTypeOf(url);
  if (!type) throw new GeoWatchError("VALIDATE", `${url} does not end in /MapServer, /ImageServer or /FeatureServer`, { backend: "registry" });
  const svc = restUrl(url);
  const doc = await getJson(ctx.fetcher, withF(svc));
  if (doc.error) throw new GeoWatchError("FETCH", `ArcGIS error: ${JSON.stringify(doc.error)}`, { backend: "registry" });
  const info = (doc.documentInfo ?? {}) as Json;
  const title = String(info.Title || doc.mapName || doc.name || svc.split("/").slice(-2, -1)[0] || "");
  const abstract = String(doc.serviceDescription || doc.description || "");
  const keywords = String(info.Keywords ?? "").split(/[,;]/).map((k) => k.trim()).filter(Boolean);
  const owner = ctx.owner || String(info.Author ?? "");
  const base = (name: string, extra: Json): Omit<LayerInput, "bbox"> => ({
    identifier: layerIdentifier(type, svc, name),
    name,
    title: name,
    abstract,
    keywords,
    crs: [],
    type,
    url: svc,
    owner,
    extra,
  });
  let layers: LayerInput[];
  if (type === "ESRI:ArcGIS:ImageServer") {
    const t = timeOf(doc.timeInfo);
    layers = [{ ...base(String(doc.name ?? title), { esriLayer: null }), title: String(doc.name ?? title), bbox: esriExtent(doc.extent ?? doc.fullExtent), timeStart: t.start, timeEnd: t.end }];
  } else {
    const full = esriExtent(doc.fullExtent ?? doc.initialExtent);
    const t = timeOf(doc.timeInfo);
    layers = [];
    for (const l of (doc.layers ?? []) as Json[]) {
      if (Array.isArray(l.subLayerIds) && l.subLayerIds.length) continue; // group layers: their sublayers are listed
      let bbox = full;
      let abs = abstract;
      if (type === "ESRI:ArcGIS:FeatureServer") {
        // A FeatureServer layer has its own extent (Koop and ArcGIS both answer /<id>?f=json).
        const ld = await getJson(ctx.fetcher, withF(`${svc}/${String(l.id)}`)).catch(() => ({}) as Json);
        bbox = esriExtent(ld.extent) ?? full;
        abs = String(ld.description || abstract);
      }
      layers.push({ ...base(`${String(l.id)}`, { esriLayer: l.id }), title: String(l.name ?? l.id), abstract: abs, bbox, timeStart: t.start, timeEnd: t.end });
    }
  }
  return { type, url: svc, title, abstract, version: String(doc.currentVersion ?? ""), layers };
}
