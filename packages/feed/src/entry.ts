/** From a record the broker sends to the feed entry it becomes. */
import { createHash } from "node:crypto";
import { GeoWatchError, payloadText } from "@geowatch/core";
import type { Metadata, OutRecord } from "@geowatch/core";
import type { EntryGeo, FeedEntry } from "./db.js";

export interface EntryRules {
  /** Feed for records without `metadata.recipient`. */
  user?: string;
  titleTemplate: string;
  linkTemplate?: string;
  /** Arrival time, for records without a usable `metadata.date`. */
  now: () => Date;
}

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined);

/** `{field}` placeholders from metadata; `encode` URL-encodes each value. A missing field leaves nothing. */
function fill(template: string, meta: Metadata, encode: boolean): string {
  return template.replace(/\{([A-Za-z0-9_.]+)\}/g, (_, k: string) => {
    const v = str(meta[k]);
    return v === undefined ? "" : encode ? encodeURIComponent(v) : v;
  });
}

const finite = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);
const isPair = (p: unknown): p is [number, number] => Array.isArray(p) && p.length >= 2 && finite(p[0]) && finite(p[1]) && Math.abs(p[0]) <= 180 && Math.abs(p[1]) <= 90;

function boxOf(points: unknown[]): EntryGeo | undefined {
  const ok = points.filter(isPair);
  if (ok.length === 0) return undefined;
  const xs = ok.map((p) => p[0]);
  const ys = ok.map((p) => p[1]);
  return { type: "box", bbox: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] };
}

function flatten(coords: unknown, out: unknown[] = []): unknown[] {
  if (isPair(coords)) out.push(coords);
  else if (Array.isArray(coords)) for (const c of coords) flatten(c, out);
  return out;
}

/** GeoRSS for a GeoJSON geometry (or Feature): point, line and polygon (outer ring) as they are, anything else as its box. */
export function geoOfGeometry(value: unknown): EntryGeo | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const v = value as { type?: unknown; geometry?: unknown; coordinates?: unknown; geometries?: unknown };
  if (v.type === "Feature") return geoOfGeometry(v.geometry);
  const c = v.coordinates;
  if (v.type === "Point" && isPair(c)) return { type: "point", coordinates: [c[0], c[1]] };
  if (v.type === "LineString" && Array.isArray(c) && c.length >= 2 && c.every(isPair)) return { type: "line", coordinates: c.map((p) => [p[0], p[1]]) };
  if (v.type === "Polygon" && Array.isArray(c) && Array.isArray(c[0]) && c[0].length >= 4 && (c[0] as unknown[]).every(isPair)) {
    return { type: "polygon", coordinates: (c[0] as Array<[number, number]>).map((p) => [p[0], p[1]]) };
  }
  if (v.type === "GeometryCollection" && Array.isArray(v.geometries)) return boxOf(v.geometries.flatMap((g) => flatten((g as { coordinates?: unknown }).coordinates)));
  return typeof v.type === "string" ? boxOf(flatten(c)) : undefined;
}

/** GeoRSS for `metadata.bbox` (`[minx, miny, maxx, maxy]` in lon/lat). */
export function geoOfBbox(bbox: unknown): EntryGeo | undefined {
  if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every(finite)) return undefined;
  const [minx, miny, maxx, maxy] = bbox as [number, number, number, number];
  if (!isPair([minx, miny]) || !isPair([maxx, maxy]) || minx > maxx || miny > maxy) return undefined;
  if (minx === maxx && miny === maxy) return { type: "point", coordinates: [minx, miny] };
  return { type: "box", bbox: [minx, miny, maxx, maxy] };
}

function parseJson(text: string): unknown {
  const t = text.trimStart();
  if (!t.startsWith("{")) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The entry for one record, or a VALIDATE error (not retryable) saying why there is none. */
export function entryOf(record: OutRecord, rules: EntryRules): FeedEntry {
  let text: string;
  try {
    text = payloadText(record.value);
  } catch (cause) {
    throw new GeoWatchError("ENCODE", "record is not UTF-8 text", { backend: "feed", cause });
  }
  // Parsing is for metadata the record does not carry and for a GeoJSON geometry in the data.
  const parsed = (record.metadata === undefined || text.includes('"coordinates"') || text.includes('"geometries"') ? parseJson(text) : undefined) as { metadata?: unknown; data?: unknown; type?: unknown } | undefined;
  const envMeta = parsed && typeof parsed.metadata === "object" && parsed.metadata !== null ? (parsed.metadata as Metadata) : undefined;
  const meta: Metadata = { ...envMeta, ...record.metadata };
  const user = str(meta.recipient) ?? rules.user;
  if (user === undefined) {
    throw new GeoWatchError("VALIDATE", "record has no metadata.recipient and the feed has no `user` option: no feed to put it in", { backend: "feed", path: "metadata.recipient" });
  }
  const firstLine = (text.split("\n").find((l) => l.trim() !== "") ?? "").trim().slice(0, 200);
  const hasMeta = Object.keys(meta).length > 0;
  const title = (hasMeta ? fill(rules.titleTemplate, meta, false).replace(/\s+/g, " ").trim() : "") || firstLine || "(empty)";
  const date = str(meta.date) !== undefined ? new Date(String(meta.date)) : undefined;
  const updated = (date && !Number.isNaN(date.getTime()) ? date : rules.now()).toISOString();
  const link = str(meta.link) ?? (rules.linkTemplate ? fill(rules.linkTemplate, meta, true) : undefined);
  const data = envMeta ? parsed?.data : parsed;
  const geo = geoOfGeometry(data) ?? geoOfBbox(meta.bbox);
  const id = str(meta.id) ?? createHash("sha256").update(text).digest("hex");
  const entry: FeedEntry = { id, user, title, updated, content: text };
  if (link) entry.link = link;
  const summary = str(meta.summary);
  if (summary) entry.summary = summary;
  if (geo) entry.geo = geo;
  const categories = [meta.actiontype, meta.targettype, meta.featuretype].map(str).filter((c): c is string => c !== undefined);
  if (categories.length > 0) entry.categories = categories;
  return entry;
}
