import { GeoWatchError } from "@geowatch/core";
import type { ServiceType } from "../storage/types.js";
import { harvestCsw } from "./csw.js";
import { esriTypeOf, harvestEsri } from "./esri.js";
import { harvestOgcFeatures, harvestOgcRecords } from "./ogcapi.js";
import { harvestTms } from "./tms.js";
import type { Harvested, HarvestContext, Harvester } from "./types.js";
import { harvestWfs } from "./wfs.js";
import { harvestWms } from "./wms.js";
import { harvestWmts } from "./wmts.js";

export const HARVESTERS: Record<ServiceType, Harvester> = {
  "OGC:WMS": harvestWms,
  "OGC:WFS": harvestWfs,
  "OGC:WMTS": harvestWmts,
  "OSGeo:TMS": harvestTms,
  "OGC:CSW": harvestCsw,
  "OGC:API-Features": harvestOgcFeatures,
  "OGC:API-Records": harvestOgcRecords,
  "ESRI:ArcGIS:MapServer": harvestEsri,
  "ESRI:ArcGIS:ImageServer": harvestEsri,
  "ESRI:ArcGIS:FeatureServer": harvestEsri,
};

/** The service type a URL most likely is, from its path and query; undefined when it cannot tell. */
export function guessType(url: string): ServiceType | undefined {
  const esri = esriTypeOf(url);
  if (esri) return esri;
  const u = new URL(url);
  const service = [...u.searchParams.entries()].find(([k]) => k.toLowerCase() === "service")?.[1]?.toUpperCase();
  if (service === "WMS") return "OGC:WMS";
  if (service === "WFS") return "OGC:WFS";
  if (service === "WMTS" || /WMTSCapabilities\.xml$/i.test(u.pathname) || /\/wmts\b/i.test(u.pathname)) return "OGC:WMTS";
  if (service === "CSW" || /\/csw\b/i.test(u.pathname)) return "OGC:CSW";
  if (/\/tms\/?(1\.0\.0)?\/?$/i.test(u.pathname)) return "OSGeo:TMS";
  if (/\/(ogcapi|wfs3)\b/i.test(u.pathname)) return "OGC:API-Features";
  if (/\/wms\b/i.test(u.pathname)) return "OGC:WMS";
  if (/\/wfs\b/i.test(u.pathname)) return "OGC:WFS";
  return undefined;
}

/** Harvests one service; every failure (unreachable, refused, broken document) is a GeoWatchError with the reason. */
export async function harvest(url: string, type: ServiceType, ctx: HarvestContext): Promise<Harvested> {
  const h = HARVESTERS[type];
  if (!h) throw new GeoWatchError("UNSUPPORTED", `no harvester for service type "${type}"`, { backend: "registry" });
  return h(url, ctx);
}

export type { Harvested, HarvestContext, Harvester } from "./types.js";
export { discoverEsriServices } from "./esri.js";
export { createFetcher } from "./fetch.js";
export type { Fetcher, FetcherOptions } from "./fetch.js";
