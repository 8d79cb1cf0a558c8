/**
 * GML 2 / 3.1.1 / 3.2 to GeoJSON. Reads what WFS servers and GDAL write: `wfs:FeatureCollection` (or any
 * `*:FeatureCollection`) with `gml:featureMember(s)` or `wfs:member`, and single feature elements. The
 * geometry property is the child that holds a GML geometry, whatever its name; coordinates are turned to
 * lon lat by the srsName's axis order (or `axisOrder`). It reads fast-xml-parser's ordered form directly
 * (document order kept, no element-form objects built); element-form input is converted first.
 */
import { GeoWatchError } from "@geowatch/core";
import { axisOrderOf, GML_NS, type AxisOrder, type Feature, type Geometry, type GmlVersion, type Position } from "./gml-common.js";
import {
  decodeEntities, localName as sliceLocalName, parseExceptionReport, parseOrderedParts, prefixOf, rootElement, toOrdered,
  type OrderedNode, type XmlElement, type XmlValue,
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
const SHORT_EPSG = /^EPSG:\d+$/i;
const WFS11_NS = "http://www.opengis.net/wfs";
/** Number() reads 0x/0b/0o literals; coordinates are decimal. */
const RADIX_PREFIX = /^0[xXbBoO]/;
const TEXT = "#text";
const CDATA = "#cdata";

/** Local names by qualified name: documents use a few names millions of times, so slice each once. */
const LOCAL = new Map<string, string>();
function localName(qname: string): string {
  let l = LOCAL.get(qname);
  if (l === undefined) {
    l = sliceLocalName(qname);
    if (LOCAL.size > 10_000) LOCAL.clear();
    LOCAL.set(qname, l);
  }
  return l;
}

/** An element in the ordered form: its qualified name and its node. */
type El = [name: string, node: OrderedNode];

/** The node's name: its first key (the attributes come after it). */
function nameOf(node: OrderedNode): string {
  for (const k in node) return k;
  return "";
}

function kids(el: El): OrderedNode[] {
  return el[1][el[0]] as OrderedNode[];
}

/** The element children, in document order. */
function elements(el: El): El[] {
  const out: El[] = [];
  for (const c of kids(el)) {
    const n = nameOf(c);
    if (n !== TEXT && n !== CDATA && n !== "") out.push([n, c]);
  }
  return out;
}

function children(el: El, local: string): El[] {
  const out: El[] = [];
  for (const c of kids(el)) {
    const n = nameOf(c);
    if (n !== TEXT && n !== CDATA && localName(n) === local) out.push([n, c]);
  }
  return out;
}

function child(el: El, local: string): El | undefined {
  for (const c of kids(el)) {
    const n = nameOf(c);
    if (n !== TEXT && n !== CDATA && localName(n) === local) return [n, c];
  }
  return undefined;
}

/** The first child element holding a geometry. */
function geometryChild(el: El): El | undefined {
  for (const c of kids(el)) {
    const n = nameOf(c);
    if (GEOMETRIES.has(localName(n))) return [n, c];
  }
  return undefined;
}

/** An attribute by qualified name, or by local name under any prefix when `name` has none. */
function attr(el: El, name: string): string | undefined {
  const attrs = el[1][":@"] as Record<string, string> | undefined;
  if (attrs === undefined) return undefined;
  const direct = attrs[`@_${name}`];
  if (direct !== undefined || name.includes(":")) return direct === undefined ? undefined : decodeEntities(direct);
  for (const k in attrs) if (localName(k.slice(2)) === name) return decodeEntities(attrs[k]!);
  return undefined;
}

/** The element's own text and CDATA. */
function text(el: El): string {
  let s = "";
  for (const c of kids(el)) {
    const t = c[TEXT];
    if (t !== undefined) s += decodeEntities(t as string);
    else if (c[CDATA] !== undefined) for (const x of c[CDATA] as OrderedNode[]) s += (x[TEXT] as string | undefined) ?? "";
  }
  return s;
}

function hasElements(el: El): boolean {
  for (const c of kids(el)) {
    const n = nameOf(c);
    if (n !== TEXT && n !== CDATA && n !== "") return true;
  }
  return false;
}

class GeometryReader {
  constructor(readonly opts: DecodeOptions) {}

  /**
   * Set for a WFS 1.1 response in GML 3.1.1: MapServer and QGIS Server label it `EPSG:4326` and write
   * latitude first, so there the short form follows the EPSG axis order (GDAL's files and GML 2 keep x y).
   */
  shortFormIsEpsgOrder = false;

  /** Whether to swap the first two ordinates; `gml2` for `gml:coordinates`/`gml:coord`, which are always x y unless overridden. */
  private swapFor(srs: string | undefined, gml2 = false): boolean {
    if (this.opts.axisOrder) return this.opts.axisOrder === "latlon";
    const name = srs ?? this.opts.srsName;
    if (!gml2 && this.shortFormIsEpsgOrder && name !== undefined && SHORT_EPSG.test(name)) return axisOrderOf(`urn:ogc:def:crs:EPSG::${name.slice(5)}`) === "latlon";
    return axisOrderOf(name) === "latlon";
  }

  /** The whitespace-separated numbers of a pos/posList, scanned without a split. */
  private numbers(s: string, path: string): number[] {
    const out: number[] = [];
    const len = s.length;
    let i = 0;
    for (;;) {
      while (i < len && s.charCodeAt(i) <= 32) i++;
      if (i >= len) break;
      let j = i + 1;
      while (j < len && s.charCodeAt(j) > 32) j++;
      const word = s.slice(i, j);
      const n = +word;
      if (!Number.isFinite(n) || (word.charCodeAt(0) === 48 && RADIX_PREFIX.test(word))) throw decodeError(`coordinate ${JSON.stringify(word)} is not a number`, path);
      out.push(n);
      i = j;
    }
    if (out.length === 0) throw decodeError("no coordinates", path);
    return out;
  }

  /** A 2D posList straight into positions (the common case: no intermediate array of numbers). */
  private pairs(s: string, swap: boolean, path: string): Position[] {
    const out: Position[] = [];
    const len = s.length;
    let i = 0;
    let first = 0;
    let half = false;
    for (;;) {
      while (i < len && s.charCodeAt(i) <= 32) i++;
      if (i >= len) break;
      let j = i + 1;
      while (j < len && s.charCodeAt(j) > 32) j++;
      const word = s.slice(i, j);
      const n = +word;
      if (!Number.isFinite(n) || (word.charCodeAt(0) === 48 && RADIX_PREFIX.test(word))) throw decodeError(`coordinate ${JSON.stringify(word)} is not a number`, path);
      if (half) out.push(swap ? [n, first] : [first, n]);
      else first = n;
      half = !half;
      i = j;
    }
    if (half) throw decodeError(`${out.length * 2 + 1} numbers do not make positions of 2 coordinates`, path);
    if (out.length === 0) throw decodeError("no coordinates", path);
    return out;
  }

  private positions(values: number[], dim: number, swap: boolean, path: string): Position[] {
    if (!(dim >= 2) || values.length % dim !== 0) throw decodeError(`${values.length} numbers do not make positions of ${dim} coordinates`, path);
    const out: Position[] = new Array(values.length / dim);
    for (let i = 0, k = 0; i < values.length; i += dim, k++) {
      const p = dim === 2 ? [values[i]!, values[i + 1]!] : values.slice(i, i + dim);
      if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
      out[k] = p;
    }
    return out;
  }

  /** GML 2 `gml:coordinates` with its cs/ts/decimal separators. */
  private coordinates(el: El, swap: boolean, path: string): Position[] {
    const cs = attr(el, "cs") ?? ",";
    const ts = attr(el, "ts") ?? " ";
    const dec = attr(el, "decimal") ?? ".";
    const t = text(el).trim();
    if (t === "") throw decodeError("no coordinates", path);
    const tuples = ts.trim() === "" ? t.split(/\s+/) : t.split(ts).map((x) => x.trim()).filter(Boolean);
    return tuples.map((tuple, i) => {
      const p = tuple.split(cs).map((x) => {
        const n = Number(dec === "." ? x.trim() : x.trim().replace(dec, "."));
        if (!Number.isFinite(n) || RADIX_PREFIX.test(x.trim())) throw decodeError(`coordinate ${JSON.stringify(x)} is not a number`, `${path}[${i}]`);
        return n;
      });
      if (p.length < 2) throw decodeError(`a coordinate tuple needs at least 2 numbers, got ${JSON.stringify(tuple)}`, `${path}[${i}]`);
      if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
      return p;
    });
  }

  /** The positions of a point list (LineString, LinearRing, LineStringSegment): posList, pos*, coordinates or coord*. */
  private pointList(el: El, srs: string | undefined, dim: number | undefined, path: string): Position[] {
    const swap = this.swapFor(srs);
    const list = child(el, "posList");
    if (list) {
      const d = Number(attr(list, "srsDimension") ?? attr(list, "dimension") ?? dim ?? 2);
      const lpath = `${path}/${list[0]}`;
      return d === 2 ? this.pairs(text(list), swap, lpath) : this.positions(this.numbers(text(list), lpath), d, swap, lpath);
    }
    const coords = child(el, "coordinates");
    if (coords) return this.coordinates(coords, this.swapFor(srs, true), `${path}/${coords[0]}`);
    const out: Position[] = [];
    for (const c of elements(el)) {
      const local = localName(c[0]);
      if (local === "pos") out.push(this.pos(c, dim, swap, `${path}/${c[0]}`));
      else if (local === "coord") out.push(this.coord(c, this.swapFor(srs, true), `${path}/${c[0]}`));
      else if (local === "pointProperty" || local === "pointRep") {
        const g = geometryChild(c);
        if (!g || localName(g[0]) !== "Point") throw decodeError("expected a gml:Point", `${path}/${c[0]}`);
        out.push((this.read(g, `${path}/${c[0]}/${g[0]}`, srs, dim) as { coordinates: Position }).coordinates);
      }
    }
    if (out.length === 0) throw decodeError("no positions (posList, pos, coordinates or coord)", path);
    return out;
  }

  private pos(el: El, dim: number | undefined, swap: boolean, path: string): Position {
    const v = this.numbers(text(el), path);
    const d = Number(attr(el, "srsDimension") ?? dim ?? v.length);
    if (v.length !== d || d < 2) throw decodeError(`a position needs ${d < 2 ? "at least 2" : d} coordinates, got ${v.length}`, path);
    if (swap) [v[0], v[1]] = [v[1]!, v[0]!];
    return v;
  }

  private coord(el: El, swap: boolean, path: string): Position {
    const x = child(el, "X");
    const y = child(el, "Y");
    if (!x || !y) throw decodeError("gml:coord needs X and Y", path);
    const p = [Number(text(x)), Number(text(y))];
    const z = child(el, "Z");
    if (z) p.push(Number(text(z)));
    if (p.some((n) => !Number.isFinite(n))) throw decodeError("gml:coord has a coordinate that is not a number", path);
    if (swap) [p[0], p[1]] = [p[1]!, p[0]!];
    return p;
  }

  private ring(el: El, srs: string | undefined, dim: number | undefined, path: string): Position[] {
    const g = geometryChild(el);
    if (!g) throw decodeError("expected a gml:LinearRing", path);
    const local = localName(g[0]);
    const rpath = `${path}/${g[0]}`;
    let pts: Position[];
    if (local === "LinearRing") pts = this.pointList(g, srs, dim, rpath);
    else if (local === "Ring") {
      pts = [];
      for (const m of children(g, "curveMember")) {
        const line = this.member(m, srs, dim, `${rpath}/${m[0]}`);
        if (line.type !== "LineString") throw decodeError(`a ring member must be a curve, got ${line.type}`, `${rpath}/${m[0]}`);
        pts.push(...(pts.length > 0 ? line.coordinates.slice(1) : line.coordinates));
      }
    } else throw decodeError(`expected a gml:LinearRing, got ${g[0]}`, rpath);
    if (pts.length < 4) throw decodeError(`a linear ring needs at least 4 positions, got ${pts.length}`, rpath);
    return pts;
  }

  private polygon(el: El, srs: string | undefined, dim: number | undefined, path: string): Position[][] {
    const ext = child(el, "exterior") ?? child(el, "outerBoundaryIs");
    if (!ext) {
      // An empty polygon (`<gml:Polygon/>`) has no rings.
      if (!hasElements(el)) return [];
      throw decodeError("a polygon needs gml:exterior (or gml:outerBoundaryIs)", path);
    }
    const rings = [this.ring(ext, srs, dim, `${path}/${ext[0]}`)];
    for (const c of elements(el)) {
      const local = localName(c[0]);
      if (local === "interior" || local === "innerBoundaryIs") rings.push(this.ring(c, srs, dim, `${path}/${c[0]}`));
    }
    return rings;
  }

  /** The geometry inside a member property (`gml:pointMember`, `gml:surfaceMember`, ...). */
  private member(el: El, srs: string | undefined, dim: number | undefined, path: string): Geometry {
    const g = geometryChild(el);
    if (!g) {
      if (attr(el, "href") !== undefined) throw decodeError("members by reference (xlink:href) are not supported", path);
      throw decodeError("member holds no GML geometry", path);
    }
    return this.read(g, `${path}/${g[0]}`, srs, dim);
  }

  /** Every geometry of `one` member children and of `many` containers, in document order. */
  private members(el: El, one: string[], many: string[], srs: string | undefined, dim: number | undefined, path: string): Geometry[] {
    const out: Geometry[] = [];
    for (const c of elements(el)) {
      const local = localName(c[0]);
      if (one.includes(local)) out.push(this.member(c, srs, dim, `${path}/${c[0]}`));
      else if (many.includes(local)) for (const g of elements(c)) out.push(this.read(g, `${path}/${c[0]}/${g[0]}`, srs, dim));
    }
    return out;
  }

  read(el: El, path: string, inheritedSrs?: string, inheritedDim?: number): Geometry {
    const srs = attr(el, "srsName") ?? inheritedSrs;
    const dimAttr = attr(el, "srsDimension");
    const dim = dimAttr !== undefined ? Number(dimAttr) : inheritedDim;
    const name = el[0];
    switch (localName(name)) {
      case "Point": {
        const swap = this.swapFor(srs);
        const pos = child(el, "pos");
        if (pos) return { type: "Point", coordinates: this.pos(pos, dim, swap, `${path}/${pos[0]}`) };
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
        for (const seg of elements(segs)) {
          const spath = `${path}/${segs[0]}/${seg[0]}`;
          if (localName(seg[0]) !== "LineStringSegment") throw decodeError(`curve segment ${seg[0]} is not supported (only gml:LineStringSegment)`, spath);
          const p = this.pointList(seg, srs, dim, spath);
          pts.push(...(pts.length > 0 ? p.slice(1) : p));
        }
        return { type: "LineString", coordinates: pts };
      }
      case "Polygon":
        return { type: "Polygon", coordinates: this.polygon(el, srs, dim, path) };
      case "Surface": {
        const patches = child(el, "patches");
        const polys = patches ? elements(patches) : [];
        if (polys.length !== 1 || localName(polys[0]![0]) !== "PolygonPatch") throw decodeError("gml:Surface is read only with one gml:PolygonPatch", path);
        return { type: "Polygon", coordinates: this.polygon(polys[0]!, srs, dim, `${path}/${patches![0]}/${polys[0]![0]}`) };
      }
      case "Envelope":
      case "Box": {
        const swap = this.swapFor(srs);
        let lo: Position;
        let hi: Position;
        const lower = child(el, "lowerCorner");
        const upper = child(el, "upperCorner");
        if (lower && upper) {
          lo = this.pos(lower, dim, swap, `${path}/${lower[0]}`);
          hi = this.pos(upper, dim, swap, `${path}/${upper[0]}`);
        } else {
          const pts = this.pointList(el, srs, dim, path);
          if (pts.length !== 2) throw decodeError("a box needs 2 corners", path);
          [lo, hi] = pts as [Position, Position];
        }
        const [x0, y0, x1, y1] = [lo[0]!, lo[1]!, hi[0]!, hi[1]!];
        return { type: "Polygon", coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] };
      }
      case "MultiPoint":
        return { type: "MultiPoint", coordinates: this.members(el, ["pointMember"], ["pointMembers"], srs, dim, path).map((g, i) => only(g, "Point", `${path}[${i}]`).coordinates) };
      case "MultiLineString":
      case "MultiCurve":
        return {
          type: "MultiLineString",
          coordinates: this.members(el, ["lineStringMember", "curveMember"], ["lineStringMembers", "curveMembers"], srs, dim, path).map((g, i) => only(g, "LineString", `${path}[${i}]`).coordinates),
        };
      case "MultiPolygon":
      case "MultiSurface":
        return {
          type: "MultiPolygon",
          coordinates: this.members(el, ["polygonMember", "surfaceMember"], ["polygonMembers", "surfaceMembers"], srs, dim, path).map((g, i) => only(g, "Polygon", `${path}[${i}]`).coordinates),
        };
      case "MultiGeometry":
        return { type: "GeometryCollection", geometries: this.members(el, ["geometryMember"], ["geometryMembers"], srs, dim, path) };
      default:
        throw decodeError(`GML geometry ${name} is not supported`, path);
    }
  }
}

function only<T extends Geometry["type"]>(g: Geometry, type: T, path: string): Extract<Geometry, { type: T }> {
  if (g.type !== type) throw decodeError(`expected a ${type} member, got ${g.type}`, path);
  return g as Extract<Geometry, { type: T }>;
}

/** The one element an element-form value (a document, or a property element's content) holds as ordered nodes. */
function orderedOf(node: XmlValue): El[] {
  if (typeof node !== "object" || Array.isArray(node)) return [];
  const out: El[] = [];
  for (const k in node) {
    if (k.startsWith("@") || k.startsWith("#") || k.startsWith("?")) continue;
    for (const n of toOrdered(k, node[k]!)) out.push([k, n]);
  }
  return out;
}

/**
 * The GeoJSON geometry of a parsed element that holds one GML geometry: a geometry property
 * (`{ "gml:Point": {...} }` as parseXml gives it) or a parsed geometry document.
 */
export function decodeGeometry(node: XmlValue, opts: DecodeOptions = {}, path = ""): Geometry {
  const g = orderedOf(node).find((e) => GEOMETRIES.has(localName(e[0])));
  if (!g) throw decodeError("no GML geometry element", path || "(root)");
  return new GeometryReader(opts).read(g, path ? `${path}/${g[0]}` : g[0]);
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

  typed(key: string, value: string, path: string): unknown {
    const t = this.types?.[key];
    if (t !== undefined) {
      if (t === "string") return value;
      const s = value.trim();
      if (t === "boolean") {
        if (s === "true" || s === "1") return true;
        if (s === "false" || s === "0") return false;
        throw decodeError(`${JSON.stringify(value)} is not a boolean`, path);
      }
      const n = Number(s);
      if (s === "" || !Number.isFinite(n) || RADIX_PREFIX.test(s)) throw decodeError(`${JSON.stringify(value)} is not a number`, path);
      return n;
    }
    if (!this.infer) return value;
    if (value === "true") return true;
    if (value === "false") return false;
    if (value.length > 0 && value.length < 40 && NUMBER.test(value)) {
      const n = Number(value);
      // Long integer ids (above 2^53) stay text: as numbers they would change.
      if (Number.isSafeInteger(n) || /[.eE]/.test(value)) return n;
    }
    return value;
  }

  /** A property element's value; a geometry becomes the feature's geometry when it has none yet (then undefined). */
  value(el: El, path: string, feature: Feature): unknown {
    const key = localName(el[0]);
    if (attr(el, "nil") === "true") return null;
    // Most properties are text: settle those before looking for a geometry.
    if (!hasElements(el)) return this.typed(key, text(el), path);
    const g = geometryChild(el);
    if (g) {
      const geom = this.geometry.read(g, `${path}/${g[0]}`);
      if (feature.geometry === null) {
        feature.geometry = geom;
        return undefined;
      }
      return geom;
    }
    const time = temporal(el);
    if (time !== undefined) return time;
    let nested: Record<string, unknown> | undefined;
    for (const c of elements(el)) {
      nested ??= {};
      add(nested, localName(c[0]), this.value(c, `${path}/${c[0]}`, feature));
    }
    return nested ?? this.typed(key, text(el), path);
  }

  feature(el: El, path: string): Feature {
    const id = attr(el, "gml:id") ?? attr(el, "fid") ?? attr(el, "id");
    const feature: Feature = id !== undefined ? { type: "Feature", id, geometry: null, properties: {} } : { type: "Feature", geometry: null, properties: {} };
    const props = feature.properties!;
    for (const c of elements(el)) {
      if (this.gmlPrefixes.has(prefixOf(c[0]))) continue;
      const v = this.value(c, `${path}/${c[0]}`, feature);
      if (v !== undefined) add(props, localName(c[0]), v);
    }
    return feature;
  }

  /** Reads the root's namespace declarations: the GML prefixes, and the version check. */
  begin(root: El, opts: DecodeOptions): void {
    let gmlUri: string | undefined;
    const attrs = (root[1][":@"] ?? {}) as Record<string, string>;
    for (const k in attrs) {
      if (!k.startsWith("@_xmlns:")) continue;
      const uri = decodeEntities(attrs[k]!);
      if (GML_URIS.has(uri)) {
        this.gmlPrefixes.add(k.slice(8));
        gmlUri = uri;
      }
    }
    const rootNs = attrs[`@_xmlns:${prefixOf(root[0])}`] ?? (prefixOf(root[0]) === "" ? attrs["@_xmlns"] : undefined);
    this.geometry.shortFormIsEpsgOrder = rootNs === WFS11_NS && gmlUri === GML_NS["3.1.1"] && opts.version !== "2";
    if (opts.version && gmlUri) {
      const want = opts.version === "3.2" ? GML_NS["3.2"] : GML_NS["3.1.1"];
      if (gmlUri !== want) throw decodeError(`expected GML ${opts.version} (namespace ${want}), the document uses ${gmlUri}`, root[0]);
    }
  }

  collect(el: El, path: string, out: Feature[]): void {
    if (localName(el[0]) !== "FeatureCollection") {
      out.push(this.feature(el, path));
      return;
    }
    for (const c of elements(el)) {
      const ml = localName(c[0]);
      if (ml === "featureMember" || ml === "member") {
        // Counted across the parts of a document read in parts, so that paths name the member in the whole.
        const counterKey = `${path}/${c[0]}`;
        const n = (this.members.get(counterKey) ?? 0) + 1;
        this.members.set(counterKey, n);
        const mpath = `${counterKey}[${n}]`;
        const inner = elements(c);
        if (inner.length === 0 && attr(c, "href") !== undefined) throw decodeError("members by reference (xlink:href) are not supported", mpath);
        for (const f of inner) this.collect(f, `${mpath}/${f[0]}`, out);
      } else if (ml === "featureMembers" || ml === "members") {
        for (const f of elements(c)) this.collect(f, `${path}/${c[0]}/${f[0]}`, out);
      } else if (ml === "truncatedResponse") {
        // WFS 2.0: the server stopped part way (an error after it began to answer); what came is not the whole answer.
        const texts = findText(c, "ExceptionText");
        throw decodeError(`the server cut the response short${texts ? `: ${texts}` : ""}`, `${path}/${c[0]}`);
      }
    }
  }
}

/**
 * A GML temporal value as text: an element holding `gml:timePosition` (MapServer writes date properties so
 * in GML 3.2) or a `gml:TimeInstant`, its time; a `gml:TimePeriod`, the ISO 8601 interval `begin/end`.
 */
function temporal(el: El): string | undefined {
  const els = elements(el);
  if (els.length !== 1) return undefined;
  const only = els[0]!;
  switch (localName(only[0])) {
    case "timePosition":
      return text(only).trim();
    case "TimeInstant": {
      const t = child(only, "timePosition");
      return t ? text(t).trim() : undefined;
    }
    case "TimePeriod": {
      const edge = (pos: string, inst: string) => {
        const direct = child(only, pos);
        if (direct) return text(direct).trim();
        const wrapped = child(only, inst);
        const ti = wrapped && child(wrapped, "TimeInstant");
        const tp = ti && child(ti, "timePosition");
        return tp ? text(tp).trim() : "..";
      };
      return `${edge("beginPosition", "begin")}/${edge("endPosition", "end")}`;
    }
    default:
      return undefined;
  }
}

/** The texts of every descendant named `local`, joined by "; ". */
function findText(el: El, local: string): string {
  const out: string[] = [];
  const walk = (e: El) => {
    for (const c of elements(e)) {
      if (localName(c[0]) === local) out.push(text(c).trim());
      else walk(c);
    }
  };
  walk(el);
  return out.filter(Boolean).join("; ");
}

/** Sets `key`, turning repeats of one property into an array (a single value is never an array). */
function add(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (!Object.hasOwn(obj, key)) obj[key] = value;
  else {
    const had = obj[key];
    if (Array.isArray(had)) had.push(value);
    else obj[key] = [had, value];
  }
}

function refuseException(doc: XmlElement): void {
  const ex = parseExceptionReport(doc);
  if (ex) throw new GeoWatchError("DECODE", `the server answered with an exception${ex.code ? ` (${ex.code})` : ""}: ${ex.text}`, { backend: CODEC, path: ex.locator });
}

const EXCEPTION_ROOTS = new Set(["ExceptionReport", "ServiceExceptionReport"]);

/** What a GML document holds: its features, and whether it is a collection (rather than one feature). */
export interface DecodedGml {
  features: Feature[];
  collection: boolean;
}

/**
 * decodeFeatures, also saying whether the document was a collection. Text and bytes are parsed in parts
 * of about 1 MiB of members, so a large collection never has its whole tree in memory.
 */
export function decodeGml(input: string | Uint8Array | XmlElement, opts: DecodeOptions = {}): DecodedGml {
  const reader = new FeatureReader(opts);
  const out: Feature[] = [];
  let collection = false;
  let first = true;
  const parts: Iterable<El> =
    typeof input === "string" || input instanceof Uint8Array
      ? (function* () {
          for (const node of parseOrderedParts(input, { what: "GML", maxBytes: opts.maxBytes })) yield [nameOf(node), node] as El;
        })()
      : orderedOf(input).slice(0, 1);
  for (const root of parts) {
    if (first) {
      first = false;
      if (EXCEPTION_ROOTS.has(localName(root[0]))) {
        // Rare and small: the element-form helper reads it.
        refuseException(typeof input === "string" || input instanceof Uint8Array ? { [root[0]]: elementForm(root) } : input);
      }
      reader.begin(root, opts);
      collection = localName(root[0]) === "FeatureCollection";
    }
    reader.collect(root, root[0], out);
  }
  if (first) throw decodeError("no root element", "(root)");
  return { features: out, collection };
}

/** The element form of an ordered element (for the exception report reader). */
function elementForm(el: El): XmlValue {
  const attrs = el[1][":@"] as Record<string, string> | undefined;
  const obj: XmlElement = {};
  if (attrs) for (const k in attrs) obj[k] = decodeEntities(attrs[k]!);
  let any = attrs !== undefined;
  for (const c of elements(el)) {
    any = true;
    const v = elementForm(c);
    const had = obj[c[0]];
    obj[c[0]] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  const t = text(el);
  if (!any) return t;
  if (t.trim() !== "") obj[TEXT] = t;
  return obj;
}

/**
 * Features of a GML document (text, bytes, or parsed by parseXml): every member of a FeatureCollection
 * (nested WFS 2.0 collections included), or the one feature a document holds, in document order. Each
 * feature's id is its `gml:id` (or GML 2 `fid`); its geometry is the first property holding a GML geometry,
 * further ones stay properties (as GeoJSON geometries); children in the GML namespace (boundedBy, name)
 * are not properties; a property element repeated becomes an array.
 */
export function decodeFeatures(input: string | Uint8Array | XmlElement, opts: DecodeOptions = {}): Feature[] {
  return decodeGml(input, opts).features;
}

/** True when the parsed document is a feature collection rather than one feature. */
export function isFeatureCollectionDocument(doc: XmlElement): boolean {
  const root = rootElement(doc);
  return root !== undefined && localName(root[0]) === "FeatureCollection";
}
