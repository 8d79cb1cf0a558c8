import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BBox, LayerInput } from "../storage/types.js";
import { getText, withParams } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { baseUrl, cleanBBox, layerIdentifier, parseTimeExtent } from "./types.js";
import { arr, child, parseXml, text } from "./xml.js";
import type { XmlNode } from "./xml.js";

interface Inherited {
  bbox: BBox | null;
  crs: string[];
  time: { start: number | null; end: number | null };
}

function layerBBox(l: XmlNode): BBox | null {
  const g = child(l, "EX_GeographicBoundingBox");
  if (g) {
    return cleanBBox([text(g.westBoundLongitude), text(g.southBoundLatitude), text(g.eastBoundLongitude), text(g.northBoundLatitude)].map(Number));
  }
  const ll = child(l, "LatLonBoundingBox");
  if (ll) return cleanBBox([ll["@minx"], ll["@miny"], ll["@maxx"], ll["@maxy"]].map(Number));
  return null;
}

function layerTime(l: XmlNode, extents: Map<string, { start: number | null; end: number | null }>): { start: number | null; end: number | null } | undefined {
  for (const key of ["Dimension", "Extent"]) {
    const v = l[key];
    if (v === undefined) continue;
    for (const d of arr<XmlNode>(v)) {
      if (typeof d !== "object" || String(d["@name"] ?? "").toLowerCase() !== "time") continue;
      const t = text(d);
      if (!t) continue;
      // Thousands of layers usually share a few extents: each distinct one is parsed once.
      let time = extents.get(t);
      if (time === undefined) extents.set(t, (time = parseTimeExtent(t)));
      return time;
    }
  }
  return undefined;
}

/** The layer's CRS list: the inherited one, plus its own CRS (1.3.0) or SRS (1.1.1, space-separated lists) not already in it. */
function layerCrs(l: XmlNode, inherited: string[]): string[] {
  if (l.CRS === undefined && l.SRS === undefined) return inherited;
  let out: string[] | undefined;
  const add = (c: string) => {
    if (!c || (out ?? inherited).includes(c)) return;
    (out ??= [...inherited]).push(c);
  };
  for (const c of arr(l.CRS)) add(text(c));
  for (const s of arr(l.SRS)) for (const c of text(s).split(/\s+/)) add(c);
  return out ?? inherited;
}

/** Parses a WMS 1.3.0 or 1.1.1 capabilities document into layers (named layers only; properties inherited). */
export function parseWmsCapabilities(xml: string, url: string, owner = ""): Harvested {
  const doc = parseXml(xml, "WMS capabilities");
  const root = (doc.WMS_Capabilities ?? doc.WMT_MS_Capabilities) as XmlNode | undefined;
  if (!root) {
    const ex = child(doc, "ServiceExceptionReport", "ServiceException");
    throw new GeoWatchError("DECODE", ex ? `WMS exception: ${text(ex)}` : "not a WMS capabilities document (no WMS_Capabilities or WMT_MS_Capabilities root)", { backend: "registry" });
  }
  const version = String(root["@version"] ?? "");
  const service = child(root, "Service") ?? {};
  const capability = child(root, "Capability");
  const getMap = child(capability, "Request", "GetMap");
  const href = String(child(getMap, "DCPType", "HTTP", "Get", "OnlineResource")?.["@href"] ?? "") || baseUrl(url);
  const formats = arr(getMap?.Format).map(text);
  const base = baseUrl(url);
  const layers: LayerInput[] = [];
  const extents = new Map<string, { start: number | null; end: number | null }>();
  // One object for every layer of the service (the index stores it per layer as JSON).
  const extra = { getMap: href, version, format: formats.includes("image/png") ? "image/png" : (formats[0] ?? "image/png") };
  const walk = (l: XmlNode, inh: Inherited) => {
    if (typeof l !== "object") return;
    const here: Inherited = { bbox: layerBBox(l) ?? inh.bbox, crs: layerCrs(l, inh.crs), time: layerTime(l, extents) ?? inh.time };
    const name = text(l.Name);
    if (name) {
      layers.push({
        identifier: layerIdentifier("OGC:WMS", base, name),
        name,
        title: text(l.Title) || name,
        abstract: text(l.Abstract),
        keywords: arr(child(l, "KeywordList")?.Keyword).map(text).filter(Boolean),
        bbox: here.bbox,
        crs: here.crs,
        timeStart: here.time.start,
        timeEnd: here.time.end,
        type: "OGC:WMS",
        url: base,
        owner,
        extra,
      });
    }
    if (l.Layer !== undefined) for (const c of arr<XmlNode>(l.Layer)) walk(c, here);
  };
  for (const top of arr<XmlNode>(capability?.Layer)) walk(top, { bbox: null, crs: [], time: { start: null, end: null } });
  return { type: "OGC:WMS", url: base, title: text(service.Title), abstract: text(service.Abstract), version, layers };
}

/** WMS 1.3.0, falling back to 1.1.1 when the server does not answer 1.3.0 capabilities. */
export async function harvestWms(url: string, ctx: HarvestContext): Promise<Harvested> {
  const errors: string[] = [];
  for (const version of ["1.3.0", "1.1.1"]) {
    try {
      const xml = await getText(ctx.fetcher, withParams(url, { SERVICE: "WMS", REQUEST: "GetCapabilities", VERSION: version }));
      return parseWmsCapabilities(xml, url, ctx.owner);
    } catch (err) {
      if ((err as GeoWatchError).code === "URL_REFUSED") throw err;
      errors.push(`${version}: ${reasonOf(err)}`);
    }
  }
  throw new GeoWatchError("DECODE", `WMS harvest failed (${errors.join("; ")})`, { backend: "registry" });
}
