import { GeoWatchError } from "@geowatch/core";
import type { LayerInput } from "../storage/types.js";
import { getText, withParams } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { baseUrl, cleanBBox, layerIdentifier, parseTimeExtent } from "./types.js";
import { arr, child, parseXml, text } from "./xml.js";
import type { XmlNode } from "./xml.js";

/** Parses WMTS 1.0.0 capabilities: layers with their first tile matrix set, its top matrix and a tile URL. */
export function parseWmtsCapabilities(xml: string, url: string, owner = ""): Harvested {
  const doc = parseXml(xml, "WMTS capabilities");
  const root = doc.Capabilities as XmlNode | undefined;
  if (!root || !child(root, "Contents")) throw new GeoWatchError("DECODE", "not a WMTS capabilities document", { backend: "registry" });
  const contents = child(root, "Contents")!;
  const sets = new Map<string, { top: string; crs: string }>();
  for (const s of arr<XmlNode>(contents.TileMatrixSet)) {
    const first = arr<XmlNode>(s.TileMatrix)[0];
    sets.set(text(s.Identifier), { top: text(first?.Identifier), crs: text(s.SupportedCRS) });
  }
  let kvp = "";
  for (const op of arr<XmlNode>(child(root, "OperationsMetadata")?.Operation)) {
    if (op["@name"] !== "GetTile") continue;
    for (const g of arr<XmlNode>(child(op, "DCP", "HTTP")?.Get)) {
      const enc = text(child(g, "Constraint", "AllowedValues")?.Value);
      if (!enc || /kvp/i.test(enc)) kvp = String(g["@href"] ?? "");
    }
  }
  const base = baseUrl(url);
  const ident = child(root, "ServiceIdentification") ?? {};
  const layers: LayerInput[] = arr<XmlNode>(contents.Layer).map((l) => {
    const name = text(l.Identifier);
    const wgs = child(l, "WGS84BoundingBox");
    const lower = text(wgs?.LowerCorner).split(/\s+/).map(Number);
    const upper = text(wgs?.UpperCorner).split(/\s+/).map(Number);
    const links = arr<XmlNode>(l.TileMatrixSetLink).map((x) => text(x.TileMatrixSet));
    const setId = links.find((x) => /3857|webmercator|google/i.test(x)) ?? links[0] ?? "";
    const set = sets.get(setId);
    const formats = arr(l.Format).map(text);
    const format = formats.includes("image/png") ? "image/png" : (formats[0] ?? "image/png");
    const resource = arr<XmlNode>(l.ResourceURL).find((r) => r["@resourceType"] === "tile" && (!r["@format"] || r["@format"] === format));
    const timeDim = arr<XmlNode>(l.Dimension).find((d) => /^time$/i.test(text(d.Identifier)));
    const time = timeDim ? parseTimeExtent(arr(timeDim.Value).map(text).join(",")) : { start: null, end: null };
    const style = text(arr<XmlNode>(l.Style).find((s) => s["@isDefault"] === "true")?.Identifier ?? arr<XmlNode>(l.Style)[0]?.Identifier) || "default";
    return {
      identifier: layerIdentifier("OGC:WMTS", base, name),
      name,
      title: text(l.Title) || name,
      abstract: text(l.Abstract),
      keywords: arr(child(l, "Keywords")?.Keyword).map(text).filter(Boolean),
      bbox: wgs ? cleanBBox([lower[0]!, lower[1]!, upper[0]!, upper[1]!]) : null,
      crs: set?.crs ? [set.crs] : [],
      timeStart: time.start,
      timeEnd: time.end,
      type: "OGC:WMTS",
      url: base,
      owner,
      extra: { matrixSet: setId, matrix: set?.top ?? "0", format, style, kvp: kvp || base, template: resource ? String(resource["@template"]) : undefined },
    };
  });
  return { type: "OGC:WMTS", url: base, title: text(ident.Title), abstract: text(ident.Abstract), version: String(root["@version"] ?? "1.0.0"), layers };
}

export async function harvestWmts(url: string, ctx: HarvestContext): Promise<Harvested> {
  // A RESTful capabilities document (…/WMTSCapabilities.xml) is fetched as it is; anything else gets KVP.
  const capsUrl = /\.xml(\?|$)/i.test(new URL(url).pathname) ? url : withParams(url, { SERVICE: "WMTS", REQUEST: "GetCapabilities", VERSION: "1.0.0" });
  return parseWmtsCapabilities(await getText(ctx.fetcher, capsUrl), url, ctx.owner);
}
