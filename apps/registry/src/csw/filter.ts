import { GeoWatchError } from "@geowatch/core";
import type { BBox, Layer } from "../storage/types.js";
import { parseDate } from "../time.js";
import { arr, child, text } from "../harvest/xml.js";
import type { XmlNode } from "../harvest/xml.js";
import { owsBBox } from "./records.js";

/** A compiled OGC Filter 1.1: a predicate over records, plus what storage can narrow by first. */
export interface CompiledFilter {
  test(l: Layer): boolean;
  /** A bbox every match intersects (a top-level BBOX, or one under a top-level And). */
  bbox?: BBox;
}

export class FilterError extends GeoWatchError {
  constructor(message: string) {
    super("VALIDATE", message, { backend: "registry", path: "Constraint" });
  }
}

type Getter = (l: Layer) => unknown;

/** Queryables (Dublin Core, OGC core and ISO AP names, prefix dropped, case-insensitive) to record values. */
const QUERYABLES: Record<string, Getter> = {
  anytext: (l) => [l.identifier, l.title, l.abstract, ...l.keywords, l.type, l.owner].join(" "),
  title: (l) => l.title,
  abstract: (l) => l.abstract,
  description: (l) => l.abstract,
  subject: (l) => l.keywords,
  keywords: (l) => l.keywords,
  identifier: (l) => l.identifier,
  type: (l) => l.type,
  servicetype: (l) => l.type,
  format: (l) => (l.extra.format as string | undefined) ?? "",
  modified: (l) => l.timeStart,
  date: (l) => l.timeStart,
  tempextent_begin: (l) => l.timeStart,
  tempextent_end: (l) => l.timeEnd ?? l.timeStart,
  publisher: (l) => l.owner,
  creator: (l) => l.owner,
  organisationname: (l) => l.owner,
  references: (l) => l.url,
  uri: (l) => l.url,
};
const DATES = new Set(["modified", "date", "tempextent_begin", "tempextent_end"]);

function getter(name: string): { get: Getter; date: boolean } {
  const key = name.split(":").pop()!.toLowerCase();
  const get = QUERYABLES[key];
  if (!get) throw new FilterError(`unknown queryable "${name}" (use csw:AnyText, dc:title, dct:abstract, dc:subject, dc:identifier, dc:type, dct:modified, ows:BoundingBox, ...)`);
  return { get, date: DATES.has(key) };
}

function likeRegex(pattern: string, wild: string, single: string, escape: string, matchCase: boolean): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === escape && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    else if (c === wild) re += ".*";
    else if (c === single) re += ".";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, matchCase ? "s" : "is");
}

const values = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

function compare(op: string, node: XmlNode): (l: Layer) => boolean {
  const { get, date } = getter(text(node.PropertyName));
  const lit = text(node.Literal);
  const matchCase = String(node["@matchCase"] ?? "true") !== "false";
  if (date) {
    const t = parseDate(lit, `${op} literal`);
    if (t === undefined) throw new FilterError(`${op}: a date literal is needed`);
    return (l) => {
      const v = get(l) as number | null;
      if (v === null || v === undefined) return false;
      switch (op) {
        case "PropertyIsEqualTo": return v === t;
        case "PropertyIsNotEqualTo": return v !== t;
        case "PropertyIsLessThan": return v < t;
        case "PropertyIsGreaterThan": return v > t;
        case "PropertyIsLessThanOrEqualTo": return v <= t;
        default: return v >= t;
      }
    };
  }
  const norm = (s: unknown) => (matchCase ? String(s ?? "") : String(s ?? "").toLowerCase());
  const want = norm(lit);
  return (l) =>
    values(get(l)).some((raw) => {
      const v = norm(raw);
      switch (op) {
        case "PropertyIsEqualTo": return v === want;
        case "PropertyIsNotEqualTo": return v !== want;
        case "PropertyIsLessThan": return v < want;
        case "PropertyIsGreaterThan": return v > want;
        case "PropertyIsLessThanOrEqualTo": return v <= want;
        default: return v >= want;
      }
    });
}

function envelope(node: XmlNode): BBox {
  const env = child(node, "Envelope");
  if (!env) throw new FilterError("BBOX needs a gml:Envelope");
  const b = owsBBox({ LowerCorner: env.lowerCorner, UpperCorner: env.upperCorner, "@crs": env["@srsName"] ?? "" } as XmlNode);
  if (!b) throw new FilterError("BBOX envelope corners are not numbers");
  return b;
}

const OPS = new Set(["And", "Or", "Not", "PropertyIsLike", "PropertyIsEqualTo", "PropertyIsNotEqualTo", "PropertyIsLessThan", "PropertyIsGreaterThan", "PropertyIsLessThanOrEqualTo", "PropertyIsGreaterThanOrEqualTo", "PropertyIsBetween", "PropertyIsNull", "BBOX", "FeatureId"]);

function ops(node: XmlNode): [string, XmlNode][] {
  const out: [string, XmlNode][] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith("@") || k === "#text") continue;
    if (!OPS.has(k)) throw new FilterError(`unsupported filter operator "${k}"`);
    for (const x of arr<XmlNode>(v)) out.push([k, typeof x === "object" ? x : ({ "#text": x } as XmlNode)]);
  }
  return out;
}

function compileOp(op: string, node: XmlNode, depth: number): CompiledFilter {
  if (depth > 32) throw new FilterError("filter nested deeper than 32 levels");
  switch (op) {
    case "And": {
      const parts = ops(node).map(([k, n]) => compileOp(k, n, depth + 1));
      const bbox = parts.find((p) => p.bbox)?.bbox;
      return { test: (l) => parts.every((p) => p.test(l)), ...(bbox ? { bbox } : {}) };
    }
    case "Or": {
      const parts = ops(node).map(([k, n]) => compileOp(k, n, depth + 1));
      return { test: (l) => parts.some((p) => p.test(l)) };
    }
    case "Not": {
      const parts = ops(node).map(([k, n]) => compileOp(k, n, depth + 1));
      if (parts.length !== 1) throw new FilterError("Not takes exactly one operand");
      return { test: (l) => !parts[0]!.test(l) };
    }
    case "PropertyIsLike": {
      const { get } = getter(text(node.PropertyName));
      const re = likeRegex(text(node.Literal), String(node["@wildCard"] ?? "%"), String(node["@singleChar"] ?? "_"), String(node["@escapeChar"] ?? node["@escape"] ?? "\\"), String(node["@matchCase"] ?? "false") === "true");
      return { test: (l) => values(get(l)).some((v) => re.test(String(v ?? ""))) };
    }
    case "PropertyIsBetween": {
      const { get, date } = getter(text(node.PropertyName));
      const lo = text(child(node, "LowerBoundary")?.Literal);
      const hi = text(child(node, "UpperBoundary")?.Literal);
      if (date) {
        const a = parseDate(lo, "LowerBoundary") ?? -Infinity;
        const b = parseDate(hi, "UpperBoundary") ?? Infinity;
        return { test: (l) => { const v = get(l) as number | null; return v !== null && v !== undefined && v >= a && v <= b; } };
      }
      return { test: (l) => values(get(l)).some((v) => String(v) >= lo && String(v) <= hi) };
    }
    case "PropertyIsNull": {
      const { get } = getter(text(node.PropertyName));
      return { test: (l) => { const v = get(l); return v === null || v === undefined || v === ""; } };
    }
    case "BBOX": {
      const b = envelope(node);
      return {
        bbox: b,
        test: (l) => !!l.bbox && l.bbox[2] >= b[0] && l.bbox[0] <= b[2] && l.bbox[3] >= b[1] && l.bbox[1] <= b[3],
      };
    }
    case "FeatureId": {
      const id = String(node["@fid"] ?? "");
      return { test: (l) => l.identifier === id };
    }
    default:
      return { test: compare(op, node) };
  }
}

/** Compiles an ogc:Filter element (already parsed, namespace prefixes dropped). */
export function compileFilter(filter: XmlNode | undefined): CompiledFilter {
  if (!filter) return { test: () => true };
  const top = ops(filter);
  if (top.length === 0) return { test: () => true };
  if (top.length > 1) return compileOp("And", filter, 0);
  return compileOp(top[0]![0], top[0]![1], 0);
}

/** A tiny CQL subset for GET requests: `prop LIKE 'x'`, `prop = 'x'`, joined by AND (what MetaSearch and OWSLib send as CQL_TEXT). */
export function compileCql(cql: string): CompiledFilter {
  const parts = cql.split(/\s+AND\s+/i).map((p) => p.trim()).filter(Boolean);
  const compiled = parts.map((p): CompiledFilter => {
    const m = /^([\w:]+)\s+(I?LIKE|=|<>|<=|>=|<|>)\s+'((?:[^']|'')*)'$/i.exec(p);
    if (!m) throw new FilterError(`CQL_TEXT: cannot read "${p}" (supported: prop LIKE 'x', prop = 'x', joined by AND)`);
    const [, prop, op, lit] = m as unknown as [string, string, string, string];
    const literal = lit.replace(/''/g, "'");
    if (/like/i.test(op)) return compileOp("PropertyIsLike", { PropertyName: prop, Literal: literal, "@wildCard": "%", "@singleChar": "_", "@escapeChar": "\\" } as XmlNode, 0);
    const name = { "=": "PropertyIsEqualTo", "<>": "PropertyIsNotEqualTo", "<": "PropertyIsLessThan", ">": "PropertyIsGreaterThan", "<=": "PropertyIsLessThanOrEqualTo", ">=": "PropertyIsGreaterThanOrEqualTo" }[op]!;
    return compileOp(name, { PropertyName: prop, Literal: literal } as XmlNode, 0);
  });
  return { test: (l) => compiled.every((c) => c.test(l)) };
}
