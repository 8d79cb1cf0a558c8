import { GeoWatchError } from "@geowatch/core";
import type { LayerInput } from "../storage/types.js";
import { getJson } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { cleanBBox, layerIdentifier, parseTimeExtent } from "./types.js";

type Json = Record<string, unknown>;

function landing(url: string): string {
  const u = new URL(url);
  u.search = "";
  u.pathname = u.pathname.replace(/\/collections\/?$/, "").replace(/\/+$/, "");
  return u.href.replace(/\/+$/, ""); // a server at the root: "http://h:p", so paths join with one slash
}

function withF(url: string): string {
  const u = new URL(url);
  u.searchParams.set("f", "json");
  return u.href;
}

function extentOf(c: Json): { bbox: LayerInput["bbox"]; start: number | null; end: number | null } {
  const ext = (c.extent ?? {}) as Json;
  const sp = ((ext.spatial ?? {}) as Json).bbox as number[][] | undefined;
  const tm = ((ext.temporal ?? {}) as Json).interval as (string | null)[][] | undefined;
  const t = tm?.[0] ? parseTimeExtent(tm[0].filter((x): x is string => typeof x === "string").join(",")) : { start: null, end: null };
  return { bbox: cleanBBox(sp?.[0]), start: t.start, end: t.end };
}

/** OGC API Features: one layer per collection. */
export async function harvestOgcFeatures(url: string, ctx: HarvestContext): Promise<Harvested> {
  const root = landing(url);
  const land = await getJson(ctx.fetcher, withF(root)).catch(() => ({}) as Json);
  const cols = await getJson(ctx.fetcher, withF(`${root}/collections`));
  if (!Array.isArray(cols.collections)) throw new GeoWatchError("DECODE", "not an OGC API collections document (no collections array)", { backend: "registry" });
  const layers = (cols.collections as Json[]).map((c): LayerInput => {
    const id = String(c.id);
    const e = extentOf(c);
    return {
      identifier: layerIdentifier("OGC:API-Features", root, id),
      name: id,
      title: String(c.title ?? id),
      abstract: String(c.description ?? ""),
      keywords: Array.isArray(c.keywords) ? (c.keywords as unknown[]).map(String) : [],
      bbox: e.bbox,
      crs: Array.isArray(c.crs) ? (c.crs as unknown[]).map(String) : [],
      timeStart: e.start,
      timeEnd: e.end,
      type: "OGC:API-Features",
      url: root,
      owner: ctx.owner ?? "",
      extra: { items: `${root}/collections/${encodeURIComponent(id)}/items` },
    };
  });
  return { type: "OGC:API-Features", url: root, title: String(land.title ?? ""), abstract: String(land.description ?? ""), version: "1.0", layers };
}

/** Every [x, y] position of a GeoJSON geometry (collections included), for its bbox. */
function positions(g: unknown, out: number[][] = []): number[][] {
  if (!g || typeof g !== "object") return out;
  const o = g as Json;
  if (Array.isArray(o.geometries)) for (const x of o.geometries) positions(x, out);
  const walk = (c: unknown): void => {
    if (!Array.isArray(c)) return;
    if (typeof c[0] === "number") out.push(c as number[]);
    else for (const x of c) walk(x);
  };
  walk(o.coordinates);
  return out;
}

/** A record's bbox: its GeoJSON `bbox` member (2-D or 3-D), else the extent of its geometry. */
function recordBBox(f: Json): LayerInput["bbox"] {
  const b = f.bbox;
  if (Array.isArray(b) && b.length >= 4) return cleanBBox((b.length >= 6 ? [b[0], b[1], b[3], b[4]] : b).map(Number));
  const ps = positions(f.geometry);
  if (!ps.length) return null;
  let [minx, miny, maxx, maxy] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of ps) {
    if (x! < minx) minx = x!;
    if (x! > maxx) maxx = x!;
    if (y! < miny) miny = y!;
    if (y! > maxy) maxy = y!;
  }
  return cleanBBox([minx, miny, maxx, maxy]);
}

function instant(v: unknown): number | null {
  if (typeof v !== "string" || !v || v === "..") return null;
  return parseTimeExtent(v).start;
}

/**
 * A record's time extent. OGC API Records 1.0 puts it in the top-level `time` member (`{interval: [start, end]}`
 * with `..` or null for an open end, or `{date}` / `{timestamp}`); drafts and some servers put `time` (object or
 * string) in the properties.
 */
function recordTime(f: Json, p: Json): { start: number | null; end: number | null } {
  const t = (f.time ?? p.time) as unknown;
  if (typeof t === "string") return parseTimeExtent(t.replace("/", ","));
  if (!t || typeof t !== "object") return { start: null, end: null };
  const o = t as Json;
  if (Array.isArray(o.interval)) return { start: instant(o.interval[0]), end: instant(o.interval[1]) };
  const at = instant(o.date ?? o.timestamp);
  return { start: at, end: at };
}

/** Keywords and the ids (or labels) of theme concepts, once each. */
function recordKeywords(p: Json): string[] {
  const out = new Set<string>();
  for (const k of Array.isArray(p.keywords) ? p.keywords : []) {
    const v = typeof k === "string" ? k : String((k as Json)?.keyword ?? (k as Json)?.title ?? "");
    if (v.trim()) out.add(v.trim());
  }
  for (const th of Array.isArray(p.themes) ? (p.themes as Json[]) : []) {
    for (const c of Array.isArray(th?.concepts) ? (th.concepts as Json[]) : []) {
      const v = String(c?.id ?? c?.title ?? "").trim();
      if (v) out.add(v);
    }
  }
  return [...out];
}

function recordLinks(f: Json): { href: string; rel: string; type?: string; title?: string }[] {
  const out: { href: string; rel: string; type?: string; title?: string }[] = [];
  for (const l of Array.isArray(f.links) ? (f.links as Json[]) : []) {
    if (!l || typeof l.href !== "string") continue;
    out.push({ href: l.href, rel: String(l.rel ?? ""), ...(l.type ? { type: String(l.type) } : {}), ...(l.title ? { title: String(l.title) } : {}) });
  }
  return out;
}

/** The `next` link of a page, the JSON one when a server lists several. */
function nextLink(page: Json): string | undefined {
  const next = ((page.links ?? []) as Json[]).filter((l) => l?.rel === "next" && typeof l.href === "string");
  const json = next.find((l) => /json/i.test(String(l.type ?? ""))) ?? next[0];
  return json ? String(json.href) : undefined;
}

/**
 * OGC API Records: every record of every record collection (`itemType: record`; all collections when none says),
 * paged by `next` links (requested as JSON; a link already followed ends the paging).
 */
export async function harvestOgcRecords(url: string, ctx: HarvestContext): Promise<Harvested> {
  const root = landing(url);
  const land = await getJson(ctx.fetcher, withF(root)).catch(() => ({}) as Json);
  const cols = await getJson(ctx.fetcher, withF(`${root}/collections`));
  if (!Array.isArray(cols.collections)) throw new GeoWatchError("DECODE", "not an OGC API collections document (no collections array)", { backend: "registry" });
  const all = cols.collections as Json[];
  const records = all.filter((c) => c.itemType === "record" || c.type === "catalog");
  const layers: LayerInput[] = [];
  const max = ctx.maxRecords ?? 10_000;
  for (const c of records.length ? records : all) {
    const cid = encodeURIComponent(String(c.id));
    const seen = new Set<string>();
    let next: string | undefined = withF(`${root}/collections/${cid}/items?limit=100`);
    while (next && layers.length < max && !seen.has(next)) {
      seen.add(next);
      const page: Json = await getJson(ctx.fetcher, next);
      if (!Array.isArray(page.features)) throw new GeoWatchError("DECODE", `${next} is not a records page (no features array)`, { backend: "registry" });
      for (const f of page.features as Json[]) {
        if (layers.length >= max) break;
        if (!f || f.id === undefined || f.id === null) continue;
        const p = (f.properties ?? {}) as Json;
        const id = String(f.id);
        const time = recordTime(f, p);
        layers.push({
          identifier: id,
          name: id,
          title: String(p.title ?? id),
          abstract: String(p.description ?? ""),
          keywords: recordKeywords(p),
          bbox: recordBBox(f),
          crs: [],
          timeStart: time.start,
          timeEnd: time.end,
          type: String(p.type ?? "dataset"),
          url: `${root}/collections/${cid}/items/${encodeURIComponent(id)}`,
          owner: ctx.owner ?? "",
          extra: { catalogue: root, collection: String(c.id), links: recordLinks(f) },
        });
      }
      ctx.progress?.(layers.length, typeof page.numberMatched === "number" ? page.numberMatched : undefined);
      next = (page.features as unknown[]).length ? nextLink(page) : undefined;
    }
  }
  return { type: "OGC:API-Records", url: root, title: String(land.title ?? ""), abstract: String(land.description ?? ""), version: "1.0", layers };
}
