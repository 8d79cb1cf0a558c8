/**
 * GML 2 / 3.1.1 / 3.2 to GeoJSON. Reads what WFS servers and GDAL write: `wfs:FeatureCollection` (or any
 * `*:FeatureCollection`) with `gml:featureMember(s)` or `wfs:member`, and single feature elements. The
 * geometry property is the child that holds a GML geometry, whatever its name; coordinates are turned to
 * lon lat by the srsName's axis order (or `axisOrder`).
 */
import { GeoWatchError } from "@geowatch/core";
import { axisOrderOf, GML_NS, type AxisOrder, type Feature, type Geometry, type GmlVersion, type Position } from "./gml-common.js";
import {
  asArray, attr, isElementKey, localName, namespacesOf, parseExceptionReport, parseXml, parseXmlParts, prefixOf, rootElement, textOf,
  type XmlElement, type XmlValue,
} from "./xml.js";

export interface DecodeOptions {
  /**
   * The GML version expected. When set, a document in the other GML namespace (3.2 against 2/3.1.1) is
   * a DECODE error, which catches a server answering in another output format than asked. Every version is read.
   */
  version?: "2" | GmlVersion;
  /** Overrides the axis order every srsName implies. */
  axisOrder?: AxisOrder;
  /** Assumed for geometries without an srsName (on themselves or an enclosing geometry). Default: none, read as x y. */
  srsName?: string;
  /**
   * Property values are text in GML. By default `true`/`false` become booleans and decimal numbers
   * (safe integers, or with a fraction or exponent) become numbers; with `false` every value stays text.
   */
  inferTypes?: boolean;
  /** Types by property name (from DescribeFeatureType), applied instead of inference. */
  propertyTypes?: Record<string, "string" | "number" | "boolean">;
  /** Largest document when given text or bytes. Default 16 MiB. */
  maxBytes?: number;
}

const CODEC = "gml";

function decodeError(message: string, path: string): GeoWatchError {
  return new GeoWatchError("DECODE", `${message} (at ${path})`, { backend: CODEC, path });
}

const GEOMETRIES = new Set([
  "Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString", "MultiCurve", "MultiPolygon", "MultiSurface",
  "MultiGeometry", "Curve", "Surface", "Envelope", "Box", "CompositeCurve", "CompositeSurface", "OrientableCurve", "OrientableSurface",
  "Ring", "Solid", "MultiSolid", "Tin", "TriangulatedSurface", "PolyhedralSurface", "Arc", "Circle",
]);
const GML_URIS = new Set([GML_NS["3.1.1"], GML_NS["3.2"]]);
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** The first child element holding a geometry: `[qualified name, element]`. */
function geometryChild(el: XmlValue): [string, XmlValue] | undefined {
  if (typeof el !== "object" || Array.isArray(el)) return undefined;
  for (const key in el) if (isElementKey(key) && GEOMETRIES.has(localName(key))) return [key, el[key]!];
  return undefined;
}

/** Element children as `[qualified name, element]`, repeats expanded in order. */
function elementChildren(el: XmlValue): [string, XmlValue][] {
  const out: [string, XmlValue][] = [];
  if (typeof el !== "object" || Array.isArray(el)) return out;
  for (const key in el) {
    if (!isElementKey(key)) continue;
    const v = el[key]!;
    if (Array.isArray(v)) for (const x of v) out.push([key, x]);
    else out.push([key, v]);
  }
  return out;
}

function children(el: XmlValue, local: string): [string, XmlValue][] {
  const out: [string, XmlValue][] = [];
  if (typeof el !== "object" || Array.isArray(el)) return out;
  for (const key in el) {
    if (!isElementKey(key) || localName(key) !== local) continue;
    for (const x of asArray(el[key]!)) out.push([key, x]);
  }
  return out;
}

function child(el: XmlValue, local: string): [string, XmlValue] | undefined {
  return children(el, local)[0];
}

class GeometryReader {
  constructor(readonly opts: DecodeOptions) {}

  private swapFor(srs: string | undefined): boolean {
    return (this.opts.axisOrder ?? axisOrderOf(srs ?? this.opts.srsName)) === "latlon";
  }

  private numbers(text: string, path: string): number[] {
    const t = text.trim();
    if (t === "") throw decodeError("no coordinates", path);
    const parts = t.split(/\s+/);
    const out = new Array<number>(parts.length);
    for (let i = 0; i < parts.length; i++) {
      const n = Number(parts[i]);
      if (!Number.isFinite(n)) throw decodeError(`coordinate ${JSON.stringify(parts[i])} is not a number`, path);
      out[i] = n;
    }
    return out;
  }

  private positions(values: number[], dim: number, swap: boolean, path: string): Position[] {
    if (values.length % dim !== 0) throw decodeError(`${values.length} numbers do not make positions of ${dim} coordinates`, path);
    const out: Position[] = [];
    for (let i = 0; i < values.length; i += dim) {
      const p = values.slice(i, i + dim);
      if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
      out.push(p);
    }
    return out;
  }

  /** GML 2 `gml:coordinates` with its cs/ts/decimal separators. */
  private coordinates(el: XmlValue, swap: boolean, path: string): Position[] {
    const cs = attr(el, "cs") ?? ",";
    const ts = attr(el, "ts") ?? " ";
    const dec = attr(el, "decimal") ?? ".";
    const text = textOf(el).trim();
    if (text === "") throw decodeError("no coordinates", path);
    const tuples = ts.trim() === "" ? text.split(/\s+/) : text.split(ts).map((s) => s.trim()).filter(Boolean);
    return tuples.map((tuple, i) => {
      const p = tuple.split(cs).map((s) => {
        const n = Number(dec === "." ? s.trim() : s.trim().replace(dec, "."));
        if (!Number.isFinite(n)) throw decodeError(`coordinate ${JSON.stringify(s)} is not a number`, `${path}[${i}]`);
        return n;
      });
      if (p.length < 2) throw decodeError(`a coordinate tuple needs at least 2 numbers, got ${JSON.stringify(tuple)}`, `${path}[${i}]`);
      if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
      return p;
    });
  }

  /** The positions of a point list (LineString, LinearRing, LineStringSegment): posList, pos*, coordinates or coord*. */
  private pointList(el: XmlValue, srs: string | undefined, dim: number | undefined, path: string): Position[] {
    const swap = this.swapFor(srs);
    const list = child(el, "posList");
    if (list) {
      const [name, pl] = list;
      const d = Number(attr(pl, "srsDimension") ?? attr(pl, "dimension") ?? dim ?? 2);
      return this.positions(this.numbers(textOf(pl), `${path}/${name}`), d, swap, `${path}/${name}`);
    }
    const coords = child(el, "coordinates");
    if (coords) return this.coordinates(coords[1], swap, `${path}/${coords[0]}`);
    const out: Position[] = [];
    for (const [name, p] of elementChildren(el)) {
      const local = localName(name);
      if (local === "pos") out.push(this.pos(p, dim, swap, `${path}/${name}`));
      else if (local === "coord") out.push(this.coord(p, swap, `${path}/${name}`));
      else if (local === "pointProperty" || local === "pointRep") {
        const g = geometryChild(p);
        if (!g || localName(g[0]) !== "Point") throw decodeError("expected a gml:Point", `${path}/${name}`);
        out.push((this.read(g[0], g[1], `${path}/${name}/${g[0]}`, srs, dim) as { coordinates: Position }).coordinates);
      }
    }
    if (out.length === 0) throw decodeError("no positions (posList, pos, coordinates or coord)", path);
    return out;
  }

  private pos(el: XmlValue, dim: number | undefined, swap: boolean, path: string): Position {
    const v = this.numbers(textOf(el), path);
    const d = Number(attr(el, "srsDimension") ?? dim ?? v.length);
    if (v.length !== d || d < 2) throw decodeError(`a position needs ${d < 2 ? "at least 2" : d} coordinates, got ${v.length}`, path);
    if (swap) [v[0], v[1]] = [v[1]!, v[0]!];
    return v;
  }

  private coord(el: XmlValue, swap: boolean, path: string): Position {
    const get = (n: string) => child(el, n);
    const x = get("X");
    const y = get("Y");
    if (!x || !y) throw decodeError("gml:coord needs X and Y", path);
    const p = [Number(textOf(x[1])), Number(textOf(y[1]))];
    const z = get("Z");
    if (z) p.push(Number(textOf(z[1])));
    if (p.some((n) => !Number.isFinite(n))) throw decodeError("gml:coord has a coordinate that is not a number", path);
    if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
    return p;
  }

  private ring(el: XmlValue, srs: string | undefined, dim: number | undefined, path: string): Position[] {
    const g = geometryChild(el);
    if (!g) throw decodeError("expected a gml:LinearRing", path);
    const [name, ring] = g;
    const local = localName(name);
    const rpath = `${path}/${name}`;
    let pts: Position[];
    if (local === "LinearRing") pts = this.pointList(ring, srs, dim, rpath);
    else if (local === "Ring") {
      pts = [];
      for (const [mname, m] of children(ring, "curveMember")) {
        const line = this.member(m, srs, dim, `${rpath}/${mname}`);
        if (line.type !== "LineString") throw decodeError(`a ring member must be a curve, got ${line.type}`, `${rpath}/${mname}`);
        pts.push(...(pts.length > 0 ? line.coordinates.slice(1) : line.coordinates));
      }
    } else throw decodeError(`expected a gml:LinearRing, got ${name}`, rpath);
    if (pts.length < 4) throw decodeError(`a linear ring needs at least 4 positions, got ${pts.length}`, rpath);
    return pts;
  }

  private polygon(el: XmlValue, srs: string | undefined, dim: number | undefined, path: string): Position[][] {
    const ext = child(el, "exterior") ?? child(el, "outerBoundaryIs");
    if (!ext) {
      // An empty polygon (`<gml:Polygon/>`) has no rings.
      if (elementChildren(el).length === 0) return [];
      throw decodeError("a polygon needs gml:exterior (or gml:outerBoundaryIs)", path);
    }
    const rings = [this.ring(ext[1], srs, dim, `${path}/${ext[0]}`)];
    for (const [name, r] of [...children(el, "interior"), ...children(el, "innerBoundaryIs")]) rings.push(this.ring(r, srs, dim, `${path}/${name}`));
    return rings;
  }

  /** The geometry inside a member property (`gml:pointMember`, `gml:surfaceMember`, ...). */
  private member(el: XmlValue, srs: string | undefined, dim: number | undefined, path: string): Geometry {
    const g = geometryChild(el);
    if (!g) {
      if (attr(el, "href") !== undefined) throw decodeError("members by reference (xlink:href) are not supported", path);
      throw decodeError("member holds no GML geometry", path);
    }
    return this.read(g[0], g[1], `${path}/${g[0]}`, srs, dim);
  }

  /** Every geometry of `member` children and of `members` containers. */
  private members(el: XmlValue, one: string, many: string, srs: string | undefined, dim: number | undefined, path: string): Geometry[] {
    const out: Geometry[] = [];
    for (const [name, m] of children(el, one)) out.push(this.member(m, srs, dim, `${path}/${name}`));
    for (const [name, ms] of children(el, many)) {
      for (const [gname, g] of elementChildren(ms)) out.push(this.read(gname, g, `${path}/${name}/${gname}`, srs, dim));
    }
    return out;
  }

  read(name: string, el: XmlValue, path: string, inheritedSrs?: string, inheritedDim?: number): Geometry {
    const srs = attr(el, "srsName") ?? inheritedSrs;
    const dimAttr = attr(el, "srsDimension");
    const dim = dimAttr !== undefined ? Number(dimAttr) : inheritedDim;
    const local = localName(name);
    switch (local) {
      case "Point": {
        const swap = this.swapFor(srs);
        const pos = child(el, "pos");
        if (pos) return { type: "Point", coordinates: this.pos(pos[1], dim, swap, `${path}/${pos[0]}`) };
        const pts = this.pointList(el, srs, dim, path);
        if (pts.length !== 1) throw decodeError(`a point needs 1 position, got ${pts.length}`, path);
        return { type: "Point", coordinates: pts[0]! };
      }
      case "LineString":
      case "LinearRing": {
        const pts = this.pointList(el, srs, dim, path);
        if (pts.length < 2) throw decodeError(`a line string needs at least 2 positions, got ${pts.length}`, path);
        return { type: "LineString", coordinates: pts };
      }
      case "Curve": {
        const segs = child(el, "segments");
        if (!segs) throw decodeError("gml:Curve needs gml:segments", path);
        const pts: Position[] = [];
        for (const [sname, seg] of elementChildren(segs[1])) {
          if (localName(sname) !== "LineStringSegment") throw decodeError(`curve segment ${sname} is not supported (only gml:LineStringSegment)`, `${path}/${segs[0]}/${sname}`);
          const p = this.pointList(seg, srs, dim, `${path}/${segs[0]}/${sname}`);
          pts.push(...(pts.length > 0 ? p.slice(1) : p));
        }
        return { type: "LineString", coordinates: pts };
      }
      case "Polygon":
        return { type: "Polygon", coordinates: this.polygon(el, srs, dim, path) };
      case "Surface": {
        const patches = child(el, "patches");
        const polys = patches ? elementChildren(patches[1]) : [];
        if (polys.length !== 1 || localName(polys[0]![0]) !== "PolygonPatch") throw decodeError("gml:Surface is read only with one gml:PolygonPatch", path);
        return { type: "Polygon", coordinates: this.polygon(polys[0]![1], srs, dim, `${path}/${patches![0]}/${polys[0]![0]}`) };
      }
      case "Envelope":
      case "Box": {
        const swap = this.swapFor(srs);
        let lo: Position;
        let hi: Position;
        const lower = child(el, "lowerCorner");
        const upper = child(el, "upperCorner");
        if (lower && upper) {
          lo = this.pos(lower[1], dim, swap, `${path}/${lower[0]}`);
          hi = this.pos(upper[1], dim, swap, `${path}/${upper[0]}`);
        } else {
          const pts = this.pointList(el, srs, dim, path);
          if (pts.length !== 2) throw decodeError("a box needs 2 corners", path);
          [lo, hi] = pts as [Position, Position];
        }
        const [x0, y0, x1, y1] = [lo[0]!, lo[1]!, hi[0]!, hi[1]!];
        return { type: "Polygon", coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] };
      }
      case "MultiPoint":
        return { type: "MultiPoint", coordinates: this.members(el, "pointMember", "pointMembers", srs, dim, path).map((g, i) => only(g, "Point", `${path}[${i}]`).coordinates) };
      case "MultiLineString":
      case "MultiCurve":
        return {
          type: "MultiLineString",
          coordinates: [...this.members(el, "lineStringMember", "lineStringMembers", srs, dim, path), ...this.members(el, "curveMember", "curveMembers", srs, dim, path)].map((g, i) => only(g, "LineString", `${path}[${i}]`).coordinates),
        };
      case "MultiPolygon":
      case "MultiSurface":
        return {
          type: "MultiPolygon",
          coordinates: [...this.members(el, "polygonMember", "polygonMembers", srs, dim, path), ...this.members(el, "surfaceMember", "surfaceMembers", srs, dim, path)].map((g, i) => only(g, "Polygon", `${path}[${i}]`).coordinates),
        };
      case "MultiGeometry":
        return { type: "GeometryCollection", geometries: this.members(el, "geometryMember", "geometryMembers", srs, dim, path) };
      default:
        throw decodeError(`GML geometry ${name} is not supported`, path);
    }
  }
}

function only<T extends Geometry["type"]>(g: Geometry, type: T, path: string): Extract<Geometry, { type: T }> {
  if (g.type !== type) throw decodeError(`expected a ${type} member, got ${g.type}`, path);
  return g as Extract<Geometry, { type: T }>;
}

/**
 * The GeoJSON geometry of a parsed element that holds one GML geometry: a geometry property
 * (`{ "gml:Point": {...} }` as parseXml gives it) or a parsed geometry document.
 */
export function decodeGeometry(node: XmlValue, opts: DecodeOptions = {}, path = ""): Geometry {
  const g = geometryChild(node);
  if (!g) throw decodeError("no GML geometry element", path || "(root)");
  return new GeometryReader(opts).read(g[0], g[1], path ? `${path}/${g[0]}` : g[0]);
}

class FeatureReader {
  readonly geometry: GeometryReader;
  readonly infer: boolean;
  readonly types: Record<string, "string" | "number" | "boolean"> | undefined;
  /** Prefixes bound to a GML namespace: children in it (boundedBy, name, description) are not properties. */
  readonly gmlPrefixes = new Set(["gml"]);
  /** Members seen per collection path. */
  readonly members = new Map<string, number>();

  constructor(readonly opts: DecodeOptions) {
    this.geometry = new GeometryReader(opts);
    this.infer = opts.inferTypes !== false;
    this.types = opts.propertyTypes;
  }

  typed(key: string, text: string, path: string): unknown {
    const t = this.types?.[key];
    if (t !== undefined) {
      if (t === "string") return text;
      const s = text.trim();
      if (t === "boolean") {
        if (s === "true" || s === "1") return true;
        if (s === "false" || s === "0") return false;
        throw decodeError(`${JSON.stringify(text)} is not a boolean`, path);
      }
      const n = Number(s);
      if (s === "" || !Number.isFinite(n)) throw decodeError(`${JSON.stringify(text)} is not a number`, path);
      return n;
    }
    if (!this.infer) return text;
    if (text === "true") return true;
    if (text === "false") return false;
    if (text.length > 0 && text.length < 40 && NUMBER.test(text)) {
      const n = Number(text);
      // Long integer ids (above 2^53) stay text: as numbers they would change.
      if (Number.isSafeInteger(n) || /[.eE]/.test(text)) return n;
    }
    return text;
  }

  value(key: string, el: XmlValue, path: string, feature: Feature): unknown {
    if (typeof el === "string") return this.typed(key, el, path);
    if (Array.isArray(el)) return el.map((x, i) => this.value(key, x, `${path}[${i}]`, feature));
    if (attr(el, "nil") === "true") return null;
    const g = geometryChild(el);
    if (g) {
      const geom = this.geometry.read(g[0], g[1], `${path}/${g[0]}`);
      if (feature.geometry === null) {
        feature.geometry = geom;
        return undefined;
      }
      return geom;
    }
    let nested: Record<string, unknown> | undefined;
    for (const k in el) {
      if (!isElementKey(k)) continue;
      nested ??= {};
      nested[localName(k)] = this.value(localName(k), el[k]!, `${path}/${k}`, feature);
    }
    return nested ?? this.typed(key, textOf(el), path);
  }

  feature(name: string, el: XmlValue, path: string): Feature {
    if (typeof el !== "object" || Array.isArray(el)) return { type: "Feature", geometry: null, properties: {} };
    const id = attr(el, "gml:id") ?? attr(el, "fid") ?? attr(el, "id");
    const feature: Feature = id !== undefined ? { type: "Feature", id, geometry: null, properties: {} } : { type: "Feature", geometry: null, properties: {} };
    const props = feature.properties!;
    for (const key in el) {
      if (!isElementKey(key) || this.gmlPrefixes.has(prefixOf(key))) continue;
      const local = localName(key);
      const v = this.value(local, el[key]!, `${path}/${key}`, feature);
      if (v !== undefined) props[local] = v;
    }
    return feature;
  }

  /** Reads the root's namespace declarations: the GML prefixes, and the version check. */
  begin(root: [string, XmlValue], opts: DecodeOptions): void {
    let gmlUri: string | undefined;
    for (const [prefix, uri] of namespacesOf(root[1])) {
      if (GML_URIS.has(uri)) {
        this.gmlPrefixes.add(prefix);
        gmlUri = uri;
      }
    }
    if (opts.version && gmlUri) {
      const want = opts.version === "3.2" ? GML_NS["3.2"] : GML_NS["3.1.1"];
      if (gmlUri !== want) throw decodeError(`expected GML ${opts.version} (namespace ${want}), the document uses ${gmlUri}`, root[0]);
    }
  }

  collect(name: string, el: XmlValue, path: string, out: Feature[]): void {
    const local = localName(name);
    if (local !== "FeatureCollection") {
      out.push(this.feature(name, el, path));
      return;
    }
    if (typeof el !== "object" || Array.isArray(el)) return;
    for (const key in el) {
      if (!isElementKey(key)) continue;
      const ml = localName(key);
      if (ml === "featureMember" || ml === "member") {
        const list = asArray(el[key]!);
        // Counted across the parts of a document read in parts, so that paths name the member in the whole.
        const counterKey = `${path}/${key}`;
        const before = this.members.get(counterKey) ?? 0;
        this.members.set(counterKey, before + list.length);
        for (let i = 0; i < list.length; i++) {
          const mpath = `${path}/${key}[${before + i + 1}]`;
          const inner = elementChildren(list[i]!);
          if (inner.length === 0 && attr(list[i]!, "href") !== undefined) throw decodeError("members by reference (xlink:href) are not supported", mpath);
          for (const [fname, f] of inner) this.collect(fname, f, `${mpath}/${fname}`, out);
        }
      } else if (ml === "featureMembers" || ml === "members") {
        for (const m of asArray(el[key]!)) for (const [fname, f] of elementChildren(m)) this.collect(fname, f, `${path}/${key}/${fname}`, out);
      }
    }
  }
}

/** Parses `input` (unless already parsed), refusing OWS exception reports with the server's text. */
export function gmlDocument(input: string | Uint8Array | XmlElement, opts: DecodeOptions): XmlElement {
  const doc = typeof input === "string" || input instanceof Uint8Array ? parseXml(input, { what: "GML", maxBytes: opts.maxBytes }) : input;
  refuseException(doc);
  return doc;
}

function refuseException(doc: XmlElement): void {
  const ex = parseExceptionReport(doc);
  if (ex) throw new GeoWatchError("DECODE", `the server answered with an exception${ex.code ? ` (${ex.code})` : ""}: ${ex.text}`, { backend: CODEC, path: ex.locator });
}

/**
 * Features of a GML document (text, bytes, or parsed by parseXml): every member of a FeatureCollection
 * (nested WFS 2.0 collections included), or the one feature a document holds. Each feature's id is its
 * `gml:id` (or GML 2 `fid`); its geometry is the first property holding a GML geometry, further ones stay
 * properties (as GeoJSON geometries); children in the GML namespace (boundedBy, name) are not properties.
 * Text and bytes are parsed in parts of about 1 MiB of members, so a large collection never has its whole
 * element tree in memory.
 */
export function decodeFeatures(input: string | Uint8Array | XmlElement, opts: DecodeOptions = {}): Feature[] {
  const parts = typeof input === "string" || input instanceof Uint8Array ? parseXmlParts(input, { what: "GML", maxBytes: opts.maxBytes }) : [input];
  const reader = new FeatureReader(opts);
  const out: Feature[] = [];
  let first = true;
  for (const doc of parts) {
    const root = rootElement(doc);
    if (!root) throw decodeError("no root element", "(root)");
    if (first) {
      refuseException(doc);
      reader.begin(root, opts);
      first = false;
    }
    reader.collect(root[0], root[1], root[0], out);
  }
  return out;
}

/** True when the parsed document is a feature collection rather than one feature. */
export function isFeatureCollectionDocument(doc: XmlElement): boolean {
  const root = rootElement(doc);
  return root !== undefined && localName(root[0]) === "FeatureCollection";
}

