import { createHash } from "node:crypto";
import type { BBox, LayerInput, ServiceType } from "../storage/types.js";
import type { Fetcher } from "./fetch.js";

export interface HarvestContext {
  fetcher: Fetcher;
  owner?: string;
  /** Called with (done, total) as a long harvest pages through records. */
  progress?: (done: number, total: number | undefined) => void;
  /** Most records a catalogue harvest (CSW, OGC API Records) takes. */
  maxRecords?: number;
}

export interface Harvested {
  type: ServiceType;
  /** The URL the service is known by (GetCapabilities base, REST endpoint). */
  url: string;
  title: string;
  abstract: string;
  version: string;
  layers: LayerInput[];
}

export type Harvester = (url: string, ctx: HarvestContext) => Promise<Harvested>;

/** A stable public identifier for a layer of a service. */
export function layerIdentifier(type: string, serviceUrl: string, name: string): string {
  return `urn:geowatch:layer:${createHash("sha1").update(`${type}\n${serviceUrl}\n${name}`).digest("hex").slice(0, 20)}`;
}

/** A bbox clamped to lon/lat and ordered, or null when it is not finite. */
export function cleanBBox(b: number[] | undefined | null): BBox | null {
  if (!b || b.length < 4 || b.slice(0, 4).some((x) => !Number.isFinite(x))) return null;
  let [minx, miny, maxx, maxy] = b as [number, number, number, number];
  if (minx > maxx) [minx, maxx] = [maxx, minx];
  if (miny > maxy) [miny, maxy] = [maxy, miny];
  const c = (v: number, lim: number) => Math.max(-lim, Math.min(lim, v));
  return [c(minx, 180), c(miny, 90), c(maxx, 180), c(maxy, 90)];
}

/** Web Mercator metres to lon/lat degrees. */
export function mercatorToLonLat(x: number, y: number): [number, number] {
  const lon = (x / 6378137) * (180 / Math.PI);
  const lat = (2 * Math.atan(Math.exp(y / 6378137)) - Math.PI / 2) * (180 / Math.PI);
  return [lon, lat];
}

/**
 * A time extent as OGC services write it: `2013-01-01/2013-12-31/P1D`, a comma list of dates or intervals,
 * `current`. Returns [start, end] in epoch ms, or nulls.
 */
export function parseTimeExtent(value: string): { start: number | null; end: number | null } {
  let start: number | null = null;
  let end: number | null = null;
  for (const part of value.split(",")) {
    for (const piece of part.trim().split("/").slice(0, 2)) {
      const p = piece.trim();
      if (!p || /^P/i.test(p) || /^(current|present|now)$/i.test(p)) continue;
      const iso = /^\d{4}$/.test(p) ? `${p}-01-01T00:00:00Z` : /^\d{4}-\d{2}-\d{2}$/.test(p) ? `${p}T00:00:00Z` : /T[\d:.]+$/.test(p) ? `${p}Z` : p;
      const t = Date.parse(iso);
      if (!Number.isFinite(t)) continue;
      start = start === null ? t : Math.min(start, t);
      end = end === null ? t : Math.max(end, t);
    }
  }
  return { start, end };
}

/** The url with no query string, for use as a service's base URL. */
export function baseUrl(url: string): string {
  const u = new URL(url);
  const keep = [...u.searchParams.entries()].filter(([k]) => !/^(service|request|version|acceptversions|f)$/i.test(k));
  u.search = "";
  for (const [k, v] of keep) u.searchParams.append(k, v);
  return u.href;
}
