import { GeoWatchError } from "@geowatch/core";
import type { BBox, Facets, Layer, SearchQuery, SearchResult, SortKey } from "./storage/types.js";
import { autoGap, parseRange } from "./time.js";

/** Defaults where Hypermap's were unhelpful (d.docs.limit was 0: no documents unless asked). */
export const SEARCH_DEFAULTS = { limit: 10, maxLimit: 1000, timeLimit: 500, hmLimit: 10_000 } as const;

const WORLD: BBox = [-180, -90, 180, 90];

function bad(param: string, message: string): never {
  throw new GeoWatchError("VALIDATE", `${param}: ${message}`, { backend: "registry", path: param });
}

/** `[minLat,minLon TO maxLat,maxLon]` (Hypermap's q.geo, Solr's lat,lon order) to [minx, miny, maxx, maxy]. */
export function parseGeo(text: string, param = "q.geo"): BBox {
  const m = /^\s*\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s+TO\s+(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]\s*$/i.exec(text);
  if (!m) bad(param, `"${text}" is not a box like [-90,-180 TO 90,180] (minLat,minLon TO maxLat,maxLon)`);
  const [miny, minx, maxy, maxx] = m.slice(1).map(Number) as [number, number, number, number];
  if (miny > maxy || minx > maxx || Math.abs(miny) > 90 || Math.abs(maxy) > 90 || Math.abs(minx) > 180 || Math.abs(maxx) > 180) {
    bad(param, `"${text}" is not a valid box (latitudes within ±90, longitudes within ±180, min <= max)`);
  }
  return [minx, miny, maxx, maxy];
}

function int(params: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const v = params[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) bad(name, `"${v}" must be an integer from ${min} to ${max}`);
  return n;
}

const SORTS: SortKey[] = ["score", "time", "distance", "title", "reliability", "updated"];

/** Hypermap Search API parameters to a storage query and facet requests. */
export function parseSearchParams(params: Record<string, string | undefined>): { query: SearchQuery; facets: Facets; page: number } {
  const limit = int(params, "d.docs.limit", SEARCH_DEFAULTS.limit, 0, SEARCH_DEFAULTS.maxLimit);
  const page = int(params, "d.docs.page", 1, 1, 1_000_000);
  const query: SearchQuery = { limit, offset: (page - 1) * limit };
  if (params["q.text"]) query.text = params["q.text"];
  if (params["q.geo"]) query.bbox = parseGeo(params["q.geo"]);
  if (params["q.time"]) {
    const [from, to] = parseRange(params["q.time"], "q.time");
    if (from !== undefined) query.timeFrom = from;
    if (to !== undefined) query.timeTo = to;
  }
  if (params["q.user"]) query.user = params["q.user"];
  if (params["q.type"]) query.type = params["q.type"];
  if (params["d.docs.sort"]) {
    const [key, dir] = params["d.docs.sort"].trim().split(/\s+/) as [string, string | undefined];
    if (!SORTS.includes(key as SortKey)) bad("d.docs.sort", `"${key}" is not one of ${SORTS.join(", ")}`);
    if (dir !== undefined && dir !== "asc" && dir !== "desc") bad("d.docs.sort", `direction "${dir}" is not asc or desc`);
    query.sort = key as SortKey;
    if (dir) query.sortDir = dir;
    if (key === "distance" && !query.bbox) bad("d.docs.sort", "distance needs q.geo");
  }
  const facets: Facets = {};
  const timeLimit = int(params, "a.time.limit", 0, 0, SEARCH_DEFAULTS.timeLimit);
  if (timeLimit > 0) {
    const filter = params["a.time.filter"] ?? params["q.time"];
    let [start, end] = filter ? parseRange(filter, "a.time.filter") : [undefined, undefined];
    start ??= Date.UTC(1900, 0, 1);
    end ??= Date.now();
    if (end <= start) bad("a.time.filter", "end must be after start");
    facets.time = { start, end, gap: params["a.time.gap"] ?? autoGap(start, end, Math.min(timeLimit, 100)), limit: timeLimit };
  }
  const hmLimit = int(params, "a.hm.limit", 0, 0, SEARCH_DEFAULTS.hmLimit);
  if (hmLimit > 0) {
    const box = params["a.hm.filter"] ? parseGeo(params["a.hm.filter"], "a.hm.filter") : (query.bbox ?? WORLD);
    let level = int(params, "a.hm.gridlevel", 0, 0, 12);
    if (level === 0) {
      // The finest level whose cell count stays within a.hm.limit.
      level = 1;
      while (level < 12 && 2 ** (level + 2) * 2 ** (level + 1) <= hmLimit) level++;
    }
    let columns = 2 ** (level + 1);
    let rows = 2 ** level;
    while (columns * rows > hmLimit && columns > 1) {
      columns = Math.max(1, columns >> 1);
      rows = Math.max(1, rows >> 1);
    }
    facets.heatmap = { bbox: box, columns, rows };
  }
  const textLimit = int(params, "a.text.limit", 0, 0, 1000);
  if (textLimit > 0) facets.textLimit = textLimit;
  const userLimit = int(params, "a.user.limit", 0, 0, 1000);
  if (userLimit > 0) facets.userLimit = userLimit;
  return { query, facets, page };
}

/** A layer as Hypermap's d.docs listed it (its field names), plus reliability. */
export function hypermapDoc(l: Layer, serviceTitle?: string) {
  const b = l.bbox;
  return {
    id: l.id,
    type: "Layer",
    layer_identifier: l.identifier,
    name: l.name,
    title: l.title,
    abstract: l.abstract,
    layer_category: null,
    layer_username: l.owner,
    layer_originator: l.owner,
    layer_date: l.timeStart !== null ? new Date(l.timeStart).toISOString() : null,
    layer_datetype: l.timeStart !== null ? "Detected" : null,
    time_start: l.timeStart !== null ? new Date(l.timeStart).toISOString() : null,
    time_end: l.timeEnd !== null ? new Date(l.timeEnd).toISOString() : null,
    keywords: l.keywords,
    service_id: l.serviceId,
    service_type: l.type,
    service_title: serviceTitle ?? null,
    url: l.url,
    srs: l.crs,
    is_monitored: l.monitored,
    reliability: l.reliability,
    recent_reliability: l.recentReliability,
    checks: l.checksTotal,
    min_x: b?.[0] ?? null,
    min_y: b?.[1] ?? null,
    max_x: b?.[2] ?? null,
    max_y: b?.[3] ?? null,
    bbox: b ? `ENVELOPE(${b[0]},${b[2]},${b[3]},${b[1]})` : null,
  };
}

/** The Search API response: Hypermap's shape (a.matchDocs, d.docs, a.time, a.hm, a.text, a.user). */
export function searchResponse(r: SearchResult, elapsedMs: number) {
  const out: Record<string, unknown> = { "a.matchDocs": r.total, "d.docs": r.docs.map((d) => hypermapDoc(d)) };
  if (r.facets.time) out["a.time"] = r.facets.time;
  if (r.facets.heatmap) out["a.hm"] = { gridLevel: Math.log2(r.facets.heatmap.rows), projection: "EPSG:4326", ...r.facets.heatmap };
  if (r.facets.text) out["a.text"] = r.facets.text;
  if (r.facets.user) out["a.user"] = r.facets.user;
  out["request_time_ms"] = Math.round(elapsedMs * 100) / 100;
  return out;
}
