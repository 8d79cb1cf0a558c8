import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { LayerInput } from "../storage/types.js";
import { getText, withParams } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { baseUrl, cleanBBox, layerIdentifier } from "./types.js";
import { arr, child, parseXml, text } from "./xml.js";
import type { XmlNode } from "./xml.js";

/** Parses WFS 2.0.0 / 1.1.0 capabilities: one layer per feature type, bbox from WGS84BoundingBox. */
export function parseWfsCapabilities(xml: string, url: string, owner = ""): Harvested {
  const doc = parseXml(xml, "WFS capabilities");
  const root = doc.WFS_Capabilities as XmlNode | undefined;
  if (!root) {
    const ex = child(doc, "ExceptionReport", "Exception", "ExceptionText");
    throw new GeoWatchError("DECODE", ex ? `WFS exception: ${text(ex)}` : "not a WFS capabilities document", { backend: "registry" });
  }
  const version = String(root["@version"] ?? "");
  const ident = child(root, "ServiceIdentification") ?? child(root, "Service") ?? {};
  const base = baseUrl(url);
  const layers: LayerInput[] = arr<XmlNode>(child(root, "FeatureTypeList")?.FeatureType).map((ft) => {
    const name = text(ft.Name);
    const wgs = child(ft, "WGS84BoundingBox");
    const lower = text(wgs?.LowerCorner).split(/\s+/).map(Number);
    const upper = text(wgs?.UpperCorner).split(/\s+/).map(Number);
    const crs = [text(ft.DefaultCRS ?? ft.DefaultSRS ?? ft.SRS), ...arr(ft.OtherCRS ?? ft.OtherSRS).map(text)].filter(Boolean);
    return {
      identifier: layerIdentifier("OGC:WFS", base, name),
      name,
      title: text(ft.Title) || name,
      abstract: text(ft.Abstract),
      keywords: arr(child(ft, "Keywords")?.Keyword).map(text).filter(Boolean),
      bbox: wgs ? cleanBBox([lower[0]!, lower[1]!, upper[0]!, upper[1]!]) : null,
      crs,
      type: "OGC:WFS",
      url: base,
      owner,
      extra: { version },
    };
  });
  return { type: "OGC:WFS", url: base, title: text(ident.Title), abstract: text(ident.Abstract), version, layers };
}

/** WFS 2.0.0, falling back to 1.1.0 (QGIS Server answers 1.1.0 to both). */
export async function harvestWfs(url: string, ctx: HarvestContext): Promise<Harvested> {
  const errors: string[] = [];
  for (const version of ["2.0.0", "1.1.0"]) {
    try {
      const xml = await getText(ctx.fetcher, withParams(url, { SERVICE: "WFS", REQUEST: "GetCapabilities", VERSION: version, ACCEPTVERSIONS: version }));
      return parseWfsCapabilities(xml, url, ctx.owner);
    } catch (err) {
      if ((err as GeoWatchError).code === "URL_REFUSED") throw err;
      errors.push(`${version}: ${reasonOf(err)}`);
    }
  }
  throw new GeoWatchError("DECODE", `WFS harvest failed (${errors.join("; ")})`, { backend: "registry" });
}
