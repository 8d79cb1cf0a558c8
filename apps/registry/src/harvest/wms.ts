import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BBox, LayerInput } from "../storage/types.js";
import { getText, withParams } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { baseUrl, cleanBBox, layerIdentifier, parseTimeExtent } from "./types.js";
import { scanWmsLayers } from "./wms-scan.js";
import type { LayerOwn, LayerTree, Time } from "./wms-scan.js";
import { arr, attrOf, checkXml, child, kidsOf, ownText, parseChecked, tagOf, text, toObject } from "./xml.js";
import type { Ordered } from "./xml.js";

interface Inherited {
  bbox: BBox | null;
  crs: string[];
  time: { start: number | null; end: number | null };
}


/** An ordered element that its object form would make falsy: no attribute and no content. */
const isEmpty = (node: Ordered, tag: string): boolean => node[":@"] === undefined && kidsOf(node, tag).length === 0;

/** EX_GeographicBoundingBox (1.3.0): its four bounds, a missing one read as "" (Number("") is 0), as before. */
function geographicBBox(node: Ordered): BBox | null {
  const v: Record<string, string> = {};
  for (const c of kidsOf(node, "EX_GeographicBoundingBox")) {
    const tag = tagOf(c);
    if (tag !== undefined && tag !== "#text" && v[tag] === undefined) v[tag] = ownText(c, tag);
  }
  return cleanBBox([v.westBoundLongitude ?? "", v.southBoundLatitude ?? "", v.eastBoundLongitude ?? "", v.northBoundLatitude ?? ""].map(Number));
}

/** The layer's own properties, read from its ordered children in one pass, and its child Layer nodes. */
interface LayerFields extends LayerOwn {
  children: Ordered[];
}

function readLayer(layer: Ordered, extents: Map<string, Time>): LayerFields {
  const f: LayerFields = { name: "", title: "", abstract: "", keywords: [], crs: [], bbox: null, time: undefined, children: [] };
  let seen = 0; // bits: Name, Title, Abstract, KeywordList
  let geo: Ordered | undefined;
  let latLon: Ordered | undefined;
  let dimensions: Ordered[] | undefined;
  let extentsHere: Ordered[] | undefined;
  for (const c of kidsOf(layer, "Layer")) {
    const tag = tagOf(c);
    switch (tag) {
      case "Name":
        if (!(seen & 1)) [f.name, seen] = [ownText(c, tag), seen | 1];
        break;
      case "Title":
        if (!(seen & 2)) [f.title, seen] = [ownText(c, tag), seen | 2];
        break;
      case "Abstract":
        if (!(seen & 4)) [f.abstract, seen] = [ownText(c, tag), seen | 4];
        break;
      case "KeywordList":
        if (!(seen & 8)) {
          seen |= 8;
          for (const k of kidsOf(c, tag)) {
            if (tagOf(k) !== "Keyword") continue;
            const t = ownText(k, "Keyword");
            if (t) f.keywords.push(t);
          }
        }
        break;
      case "CRS": {
        const t = ownText(c, tag);
        if (t) f.crs.push(t);
        break;
      }
      case "SRS":
        for (const t of ownText(c, tag).split(/\s+/)) if (t) f.crs.push(t);
        break;
      case "EX_GeographicBoundingBox":
        geo ??= c;
        break;
      case "LatLonBoundingBox":
        latLon ??= c;
        break;
      case "Dimension":
        (dimensions ??= []).push(c);
        break;
      case "Extent":
        (extentsHere ??= []).push(c);
        break;
      case "Layer":
        f.children.push(c);
        break;
    }
  }
  if (geo && !isEmpty(geo, "EX_GeographicBoundingBox")) f.bbox = geographicBBox(geo);
  else if (latLon && !isEmpty(latLon, "LatLonBoundingBox")) f.bbox = cleanBBox([attrOf(latLon, "minx"), attrOf(latLon, "miny"), attrOf(latLon, "maxx"), attrOf(latLon, "maxy")].map(Number));
  // Dimension (1.3.0) before Extent (1.1.1): the first named "time" with a value.
  for (const [tag, list] of [["Dimension", dimensions], ["Extent", extentsHere]] as const) {
    if (f.time || !list) continue;
    for (const d of list) {
      if ((attrOf(d, "name") ?? "").toLowerCase() !== "time") continue;
      const t = ownText(d, tag);
      if (!t) continue;
      // Thousands of layers usually share a few extents: each distinct one is parsed once.
      let time = extents.get(t);
      if (time === undefined) extents.set(t, (time = parseTimeExtent(t)));
      f.time = time;
      break;
    }
  }
  return f;
}

/** The inherited CRS list plus the layer's own ones not already in it (the parent's list when it adds none). */
function mergeCrs(inherited: string[], own: string[]): string[] {
  let out: string[] | undefined;
  for (const c of own) {
    if ((out ?? inherited).includes(c)) continue;
    (out ??= [...inherited]).push(c);
  }
  return out ?? inherited;
}

/** The layer tree from fast-xml-parser's ordered Layer nodes (the reference reading the scanner is tested against). */
function treeOf(l: Ordered, extents: Map<string, Time>): LayerTree {
  const f = readLayer(l, extents);
  return { ...f, children: f.children.map((c) => treeOf(c, extents)) };
}

/** The document text without these ranges (the top-level Layer elements the scanner read). */
function without(text: string, ranges: [number, number][]): string {
  let out = "";
  let at = 0;
  for (const [a, b] of ranges) {
    out += text.slice(at, a);
    at = b;
  }
  return out + text.slice(at);
}

/**
 * Parses a WMS 1.3.0 or 1.1.1 capabilities document into layers (named layers only; properties inherited).
 * After parseXml's checks (size, no ENTITY, DOCTYPE dropped, well-formed), the layer tree is read by a scanner of
 * its own in one pass (wms-scan.ts: only the elements a layer record needs), and the rest of the document
 * (Service, Request), with the layer tree cut out, by fast-xml-parser. `reference: true` reads everything through
 * fast-xml-parser instead: the same result, which the tests compare on every document they have.
 */
export function parseWmsCapabilities(xml: string, url: string, owner = "", opts: { reference?: boolean } = {}): Harvested {
  const what = "WMS capabilities";
  const checked = checkXml(xml, what);
  const extents = new Map<string, Time>();
  const scanned = opts.reference ? undefined : scanWmsLayers(checked, extents);
  const nodes = parseChecked(scanned ? without(checked, scanned.ranges) : checked, what);
  let rootNode: Ordered | undefined;
  let rootTag = "";
  for (const n of nodes) {
    const tag = tagOf(n);
    if (tag === "WMS_Capabilities" || tag === "WMT_MS_Capabilities") [rootNode, rootTag] = [n, tag];
    if (tag !== undefined && tag !== "#text") break;
  }
  if (!rootNode || (isEmpty(rootNode, rootTag) && !scanned?.layers.length)) {
    const doc = toObject(nodes);
    const ex = child(doc, "ServiceExceptionReport", "ServiceException");
    throw new GeoWatchError("DECODE", ex ? `WMS exception: ${text(ex)}` : "not a WMS capabilities document (no WMS_Capabilities or WMT_MS_Capabilities root)", { backend: "registry" });
  }
  // The object form of everything but the Capability's Layer elements, which stay ordered for the walk below.
  const topLayers: Ordered[] = [];
  const rest: Ordered[] = [];
  let capabilities = 0;
  for (const c of kidsOf(rootNode, rootTag)) {
    // The first Capability's layers, as its object form's first element would give.
    if (tagOf(c) !== "Capability" || capabilities++ > 0) {
      rest.push(c);
      continue;
    }
    const kids: Ordered[] = [];
    for (const k of kidsOf(c, "Capability")) (tagOf(k) === "Layer" ? topLayers : kids).push(k);
    rest.push(c[":@"] === undefined ? { Capability: kids } : { Capability: kids, ":@": c[":@"] });
  }
  const trees = scanned ? scanned.layers : topLayers.map((l) => treeOf(l, extents));
  const root = toObject(rest);
  const version = attrOf(rootNode, "version") ?? "";
  const service = child(root, "Service") ?? {};
  const capability = child(root, "Capability");
  const getMap = child(capability, "Request", "GetMap");
  const href = String(child(getMap, "DCPType", "HTTP", "Get", "OnlineResource")?.["@href"] ?? "") || baseUrl(url);
  const formats = arr(getMap?.Format).map(text);
  const base = baseUrl(url);
  const layers: LayerInput[] = [];
  // One object for every layer of the service (the index stores it per layer as JSON).
  const extra = { getMap: href, version, format: formats.includes("image/png") ? "image/png" : (formats[0] ?? "image/png") };
  const walk = (f: LayerTree, inh: Inherited) => {
    const here: Inherited = { bbox: f.bbox ?? inh.bbox, crs: mergeCrs(inh.crs, f.crs), time: f.time ?? inh.time };
    if (f.name) {
      layers.push({
        identifier: layerIdentifier("OGC:WMS", base, f.name),
        name: f.name,
        title: f.title || f.name,
        abstract: f.abstract,
        keywords: f.keywords,
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
    for (const c of f.children) walk(c, here);
  };
  for (const top of trees) walk(top, { bbox: null, crs: [], time: { start: null, end: null } });
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
