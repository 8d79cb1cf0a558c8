/**
 * Property and BBOX filters as config writes them, and their OGC encodings: Filter 1.1 (`ogc:`, WFS 1.1.0)
 * and FES 2.0 (`fes:`, WFS 2.0.0). The BBOX is given x/y (longitude first) and written in the axis order
 * of the srsName each version uses (EPSG URN or URI: latitude first for geographic CRSs).
 */
import { GeoWatchError } from "@geowatch/core";
import { z } from "zod";
import { axisOrderOf } from "./gml-common.js";
import { escapeAttr, escapeXml } from "./xml.js";

/** A literal compared with a property. */
export type FilterValue = string | number | boolean;

/** One condition on one property; exactly one operator. `like` uses `*` (any run), `?` (one character) and `\` (escape). */
export interface FilterCondition {
  property: string;
  eq?: FilterValue;
  ne?: FilterValue;
  lt?: FilterValue;
  lte?: FilterValue;
  gt?: FilterValue;
  gte?: FilterValue;
  like?: string;
  between?: [FilterValue, FilterValue];
  /** `true`: the property is null (or absent); `false`: it is not. */
  null?: boolean;
  /** Compare text case-sensitively (default true). */
  matchcase?: boolean;
}

/** A filter: a condition or a combination. */
export type FilterExpr = FilterCondition | { and: FilterExpr[] } | { or: FilterExpr[] } | { not: FilterExpr };

const OPS = ["eq", "ne", "lt", "lte", "gt", "gte", "like", "between", "null"] as const;
type Op = (typeof OPS)[number];

const literal = z.union([z.string(), z.number(), z.boolean()]);

const conditionSchema = z
  .strictObject({
    property: z.string().min(1, "must be a non-empty property name"),
    eq: literal.optional(),
    ne: literal.optional(),
    lt: literal.optional(),
    lte: literal.optional(),
    gt: literal.optional(),
    gte: literal.optional(),
    like: z.string().optional(),
    between: z.tuple([literal, literal]).optional(),
    null: z.boolean().optional(),
    matchcase: z.boolean().optional(),
  })
  .refine((c) => OPS.filter((op) => c[op] !== undefined).length === 1, { message: `needs exactly one operator of ${OPS.join(", ")}` });

/** The filter's schema (recursive: `and`/`or` lists and `not`). */
export const filterSchema: z.ZodType<FilterExpr, FilterExpr> = z.lazy(() =>
  z.union([
    conditionSchema,
    z.strictObject({ and: z.array(filterSchema).min(1, "needs at least one filter") }),
    z.strictObject({ or: z.array(filterSchema).min(1, "needs at least one filter") }),
    z.strictObject({ not: filterSchema }),
  ]),
);

/** A BBOX: `[min_x, min_y, max_x, max_y]` in `crs` (`EPSG:<code>`), longitude/easting first. */
export interface BboxFilter {
  bbox: readonly [number, number, number, number];
  crs?: string;
  /** The geometry property; none: the type's default geometry. */
  geometryName?: string;
}

export type FilterVersion = "1.1.0" | "2.0.0";

const NS = {
  "1.1.0": { p: "ogc", uri: "http://www.opengis.net/ogc", gml: "http://www.opengis.net/gml", ref: "PropertyName" },
  "2.0.0": { p: "fes", uri: "http://www.opengis.net/fes/2.0", gml: "http://www.opengis.net/gml/3.2", ref: "ValueReference" },
} as const;

const COMPARISON: Record<Exclude<Op, "like" | "between" | "null">, string> = {
  eq: "PropertyIsEqualTo",
  ne: "PropertyIsNotEqualTo",
  lt: "PropertyIsLessThan",
  lte: "PropertyIsLessThanOrEqualTo",
  gt: "PropertyIsGreaterThan",
  gte: "PropertyIsGreaterThanOrEqualTo",
};

/** The srsName a version writes for `EPSG:<code>`: the URN (1.1.0) or the URI (2.0.0); both follow the EPSG axis order. */
export function srsNameFor(crs: string, version: FilterVersion): string {
  const m = /^EPSG:(\d+)$/i.exec(crs.trim());
  if (!m) return crs;
  return version === "1.1.0" ? `urn:ogc:def:crs:EPSG::${m[1]}` : `http://www.opengis.net/def/crs/EPSG/0/${m[1]}`;
}

const text = (v: FilterValue): string => escapeXml(typeof v === "string" ? v : String(v));

function encodeExpr(e: FilterExpr, version: FilterVersion): string {
  const { p, ref } = NS[version];
  if ("and" in e) return `<${p}:And>${e.and.map((x) => encodeExpr(x, version)).join("")}</${p}:And>`;
  if ("or" in e) return `<${p}:Or>${e.or.map((x) => encodeExpr(x, version)).join("")}</${p}:Or>`;
  if ("not" in e) return `<${p}:Not>${encodeExpr(e.not, version)}</${p}:Not>`;
  const op = OPS.find((o) => e[o] !== undefined);
  const name = `<${p}:${ref}>${escapeXml(e.property)}</${p}:${ref}>`;
  const lit = (v: FilterValue) => `<${p}:Literal>${text(v)}</${p}:Literal>`;
  const mc = e.matchcase === false ? ` matchCase="false"` : "";
  switch (op) {
    case "like":
      return `<${p}:PropertyIsLike wildCard="*" singleChar="?" escapeChar="\\"${mc}>${name}${lit(e.like!)}</${p}:PropertyIsLike>`;
    case "between": {
      const [lo, hi] = e.between!;
      return `<${p}:PropertyIsBetween>${name}<${p}:LowerBoundary>${lit(lo)}</${p}:LowerBoundary><${p}:UpperBoundary>${lit(hi)}</${p}:UpperBoundary></${p}:PropertyIsBetween>`;
    }
    case "null": {
      const isNull = `<${p}:PropertyIsNull>${name}</${p}:PropertyIsNull>`;
      return e.null ? isNull : `<${p}:Not>${isNull}</${p}:Not>`;
    }
    case undefined:
      throw new GeoWatchError("CONFIG", `filter on "${e.property}" has no operator (one of ${OPS.join(", ")})`, { backend: "wfs", path: "filter" });
    default:
      return `<${p}:${COMPARISON[op]}${mc}>${name}${lit(e[op]!)}</${p}:${COMPARISON[op]}>`;
  }
}

function encodeBbox(b: BboxFilter, version: FilterVersion): string {
  const { p, ref } = NS[version];
  const srsName = srsNameFor(b.crs ?? "EPSG:4326", version);
  const [x1, y1, x2, y2] = b.bbox;
  const swap = axisOrderOf(srsName) === "latlon";
  const corner = (x: number, y: number) => (swap ? `${y} ${x}` : `${x} ${y}`);
  const prop = b.geometryName ? `<${p}:${ref}>${escapeXml(b.geometryName)}</${p}:${ref}>` : "";
  return `<${p}:BBOX>${prop}<gml:Envelope srsName="${escapeAttr(srsName)}"><gml:lowerCorner>${corner(x1, y1)}</gml:lowerCorner><gml:upperCorner>${corner(x2, y2)}</gml:upperCorner></gml:Envelope></${p}:BBOX>`;
}

/**
 * The `<Filter>` element for a version, or undefined when there is nothing to filter on. Several parts
 * (a BBOX, the configured filter, the poll's position) are joined by And.
 */
export function encodeFilter(parts: { filter?: FilterExpr | undefined; bbox?: BboxFilter | undefined; and?: FilterExpr[] }, version: FilterVersion): string | undefined {
  const { p, uri, gml } = NS[version];
  const body: string[] = [];
  if (parts.bbox) body.push(encodeBbox(parts.bbox, version));
  if (parts.filter) body.push(encodeExpr(parts.filter, version));
  for (const x of parts.and ?? []) body.push(encodeExpr(x, version));
  if (body.length === 0) return undefined;
  const inner = body.length === 1 ? body[0] : `<${p}:And>${body.join("")}</${p}:And>`;
  return `<${p}:Filter xmlns:${p}="${uri}" xmlns:gml="${gml}">${inner}</${p}:Filter>`;
}

/**
 * OGC API Features takes property filters as query parameters (`kind=tree`): only `eq` conditions,
 * alone or joined by `and`. Anything else is a CONFIG error naming what cannot be sent.
 */
export function ogcapiFilterParams(filter: FilterExpr | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (e: FilterExpr): void => {
    if ("and" in e) return e.and.forEach(visit);
    if ("property" in e && e.eq !== undefined && OPS.filter((o) => e[o] !== undefined).length === 1) {
      out[e.property] = String(e.eq);
      return;
    }
    throw new GeoWatchError("CONFIG", `OGC API Features takes only "eq" conditions joined by "and" as a filter; cannot send ${JSON.stringify(e)}`, {
      backend: "wfs",
      path: "filter",
    });
  };
  if (filter) visit(filter);
  return out;
}

/** Whether a feature's properties match a filter, for the reader's own checks (OGC API polling). */
export function matchesFilter(props: Record<string, unknown>, e: FilterExpr): boolean {
  if ("and" in e) return e.and.every((x) => matchesFilter(props, x));
  if ("or" in e) return e.or.some((x) => matchesFilter(props, x));
  if ("not" in e) return !matchesFilter(props, e.not);
  const v = props[e.property];
  if (e.null !== undefined) return (v === null || v === undefined) === e.null;
  if (v === null || v === undefined) return false;
  const cmp = (lit: FilterValue) => compareValues(v, lit);
  if (e.eq !== undefined) return cmp(e.eq) === 0;
  if (e.ne !== undefined) return cmp(e.ne) !== 0;
  if (e.lt !== undefined) return cmp(e.lt) < 0;
  if (e.lte !== undefined) return cmp(e.lte) <= 0;
  if (e.gt !== undefined) return cmp(e.gt) > 0;
  if (e.gte !== undefined) return cmp(e.gte) >= 0;
  if (e.between !== undefined) return cmp(e.between[0]) >= 0 && cmp(e.between[1]) <= 0;
  if (e.like !== undefined) return likeRegExp(e.like, e.matchcase !== false).test(String(v));
  return false;
}

/** Numbers compare as numbers, everything else as text (ISO 8601 timestamps of one form sort as text). */
export function compareValues(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  const na = typeof a === "number" ? a : Number(a);
  const nb = typeof b === "number" ? b : Number(b);
  if ((typeof a === "number" || typeof b === "number") && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function likeRegExp(pattern: string, matchCase: boolean): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\" && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    else if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, matchCase ? "u" : "iu");
}
