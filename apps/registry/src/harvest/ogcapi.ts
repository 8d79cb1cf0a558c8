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
  return u.href;
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

/** OGC API Records: every record of every catalogue collection (GeoJSON features), paged by `next` links. */
export async function harvestOgcRecords(url: string, ctx: HarvestContext): Promise<Harvested> {
  const root = landing(url);
  const land = await getJson(ctx.fetcher, withF(root)).catch(() => ({}) as Json);
  const cols = await getJson(ctx.fetcher, withF(`${root}/collections`));
  if (!Array.isArray(cols.collections)) throw new GeoWatchError("DECODE", "not an OGC API collections document (no collections array)", { backend: "registry" });
  const layers: LayerInput[] = [];
  const max = ctx.maxRecords ?? 10_000;
  for (const c of cols.collections as Json[]) {
    let next: string | undefined = withF(`${root}/collections/${encodeURIComponent(String(c.id))}/items?limit=100`);
    while (next && layers.length < max) {
      const page: Json = await getJson(ctx.fetcher, next);
      for (const f of (page.features ?? []) as Json[]) {
        const p = (f.properties ?? {}) as Json;
        const t = p.time as Json | string | undefined;
        const interval = typeof t === "object" && t ? (t.interval as string[] | undefined)?.join(",") ?? String(t.date ?? t.timestamp ?? "") : String(t ?? p.updated ?? "");
        const time = interval ? parseTimeExtent(interval) : { start: null, end: null };
        const g = f.geometry as Json | null;
        const coords = g ? JSON.stringify(g.coordinates).match(/-?\d+(\.\d+)?(e-?\d+)?/gi)?.map(Number) ?? [] : [];
        const xs = coords.filter((_, i) => i % 2 === 0);
        const ys = coords.filter((_, i) => i % 2 === 1);
        const kw = Array.isArray(p.keywords) ? (p.keywords as unknown[]).map(String) : [];
        layers.push({
          identifier: String(f.id),
          name: String(f.id),
          title: String(p.title ?? f.id),
          abstract: String(p.description ?? ""),
          keywords: kw,
          bbox: Array.isArray(f.bbox) ? cleanBBox(f.bbox as number[]) : xs.length ? cleanBBox([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)]) : null,
          crs: [],
          timeStart: time.start,
          timeEnd: time.end,
          type: String(p.type ?? "dataset"),
          url: `${root}/collections/${encodeURIComponent(String(c.id))}/items/${encodeURIComponent(String(f.id))}`,
          owner: ctx.owner ?? "",
          extra: { catalogue: root },
        });
      }
      ctx.progress?.(layers.length, typeof page.numberMatched === "number" ? page.numberMatched : undefined);
      const link = ((page.links ?? []) as Json[]).find((l) => l.rel === "next");
      next = link ? String(link.href) : undefined;
    }
  }
  return { type: "OGC:API-Records", url: root, title: String(land.title ?? ""), abstract: String(land.description ?? ""), version: "1.0", layers };
}
