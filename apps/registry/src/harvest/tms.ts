import { GeoWatchError } from "@geowatch/core";
import type { LayerInput } from "../storage/types.js";
import { getText } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { cleanBBox, layerIdentifier, mercatorToLonLat } from "./types.js";
import { arr, child, parseXml, text } from "./xml.js";
import type { XmlNode } from "./xml.js";

/** Parses one TMS TileMap document into a layer (bbox converted from Web Mercator when the SRS says so). */
export function parseTileMap(xml: string, tileMapUrl: string, serviceUrl: string, owner = ""): LayerInput {
  const doc = parseXml(xml, "TMS TileMap");
  const tm = doc.TileMap as XmlNode | undefined;
  if (!tm) throw new GeoWatchError("DECODE", `${tileMapUrl}: not a TMS TileMap document`, { backend: "registry" });
  const srs = text(tm.SRS);
  const bb = child(tm, "BoundingBox") ?? {};
  let box = [bb["@minx"], bb["@miny"], bb["@maxx"], bb["@maxy"]].map(Number);
  if (/900913|3857|3785/.test(srs)) {
    const a = mercatorToLonLat(box[0]!, box[1]!);
    const b = mercatorToLonLat(box[2]!, box[3]!);
    box = [a[0], a[1], b[0], b[1]];
  }
  const format = child(tm, "TileFormat") ?? {};
  const sets = arr<XmlNode>(child(tm, "TileSets")?.TileSet).sort((a, b) => Number(a["@order"]) - Number(b["@order"]));
  const name = tileMapUrl.replace(/\/+$/, "").split("/").slice(-2).join("/");
  return {
    identifier: layerIdentifier("OSGeo:TMS", serviceUrl, tileMapUrl),
    name,
    title: text(tm.Title) || name,
    abstract: text(tm.Abstract),
    keywords: [],
    bbox: cleanBBox(box),
    crs: srs ? [srs] : [],
    type: "OSGeo:TMS",
    url: tileMapUrl,
    owner,
    extra: { tileSet: sets[0] ? String(sets[0]["@href"]) : undefined, extension: String(format["@extension"] ?? "png"), mime: String(format["@mime-type"] ?? "image/png") },
  };
}

/** A TileMapService root (every TileMap it lists) or a single TileMap URL. */
export async function harvestTms(url: string, ctx: HarvestContext): Promise<Harvested> {
  const xml = await getText(ctx.fetcher, url);
  const doc = parseXml(xml, "TMS document");
  if (doc.TileMap) {
    const layer = parseTileMap(xml, url, url, ctx.owner);
    return { type: "OSGeo:TMS", url, title: layer.title, abstract: layer.abstract ?? "", version: "1.0.0", layers: [layer] };
  }
  const svc = doc.TileMapService as XmlNode | undefined;
  if (!svc) throw new GeoWatchError("DECODE", "not a TMS TileMapService or TileMap document", { backend: "registry" });
  const maps = arr<XmlNode>(child(svc, "TileMaps")?.TileMap);
  const layers: LayerInput[] = [];
  let done = 0;
  for (const m of maps) {
    const href = new URL(String(m["@href"]), url).href;
    layers.push(parseTileMap(await getText(ctx.fetcher, href), href, url, ctx.owner));
    ctx.progress?.(++done, maps.length);
  }
  return { type: "OSGeo:TMS", url, title: text(svc.Title), abstract: text(svc.Abstract), version: String(svc["@version"] ?? "1.0.0"), layers };
}
