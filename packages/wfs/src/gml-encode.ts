/**
 * GeoJSON to GML 3.1.1 / 3.2 by string building (no DOM). Coordinates are written in the axis order the
 * srsName implies (or `axisOrder`), numbers in JavaScript's shortest round-trip form, text XML-escaped.
 */
import { GeoWatchError } from "@geowatch/core";
import {
  axisOrderOf, DEFAULT_SRS, GML_NS, NCNAME, WFS_NS, XSI_NS,
  type AxisOrder, type Feature, type Geometry, type GmlVersion, type Position,
} from "./gml-common.js";
import { escapeAttr, escapeXml } from "./xml.js";

export interface EncodeGeometryOptions {
  version: GmlVersion;
  /** Written on the geometry; default EPSG:4326 in the version's form (URN for 3.1.1, URI for 3.2). */
  srsName?: string;
  /** Overrides the order the srsName implies (servers differ: QGIS Server reads lon lat even with the URN). */
  axisOrder?: AxisOrder;
  /** `gml:id` of the geometry (GML 3.2 requires one; members get `<id>.<n>`). Default: generated. */
  gmlId?: string;
  /** Declare `xmlns:gml` on the geometry element (for a standalone geometry document). Default false. */
  declareNamespace?: boolean;
}

export interface EncodeFeatureOptions extends Omit<EncodeGeometryOptions, "gmlId" | "declareNamespace"> {
  /** The feature type's element name: `points` or `qgs:points` (a prefix here wins over `namespacePrefix`). */
  featureType: string;
  namespacePrefix: string;
  namespaceUri: string;
  /** The element that holds the geometry. Default `geometry`. */
  geometryName?: string;
  /** A null property: `nil` writes `<p xsi:nil="true"/>` (kept), `omit` leaves it out (for servers that refuse xsi:nil). Default `nil`. */
  nulls?: "nil" | "omit";
  /** Declare the gml, feature and xsi namespaces on the feature element. Default true; false when a parent (a Transaction, a collection) declares them. */
  declareNamespaces?: boolean;
}

export interface EncodeCollectionOptions extends Omit<EncodeFeatureOptions, "declareNamespaces"> {
  /** `numberMatched` of a WFS 2.0 collection. Default "unknown". */
  numberMatched?: number | "unknown";
}

const CODEC = "gml";

function encodeError(message: string, path: string): GeoWatchError {
  return new GeoWatchError("ENCODE", `${message} (at ${path})`, { backend: CODEC, path });
}

let generated = 0;
/** A document-unique gml:id for geometries of features without an id. */
function nextId(): string {
  generated = (generated + 1) % Number.MAX_SAFE_INTEGER;
  return `gw${generated.toString(36)}`;
}

/** Writes one geometry tree. Holds the options that do not change within it. */
class GeometryWriter {
  readonly v32: boolean;
  readonly swap: boolean;
  constructor(
    readonly version: GmlVersion,
    readonly srsName: string,
    axisOrder: AxisOrder | undefined,
  ) {
    this.v32 = version === "3.2";
    this.swap = (axisOrder ?? axisOrderOf(srsName)) === "latlon";
  }

  /** `x y` (or `y x`), plus any further ordinates; checks the position. */
  /** `path` (with `[index]` when given) is built only for an error: it is not per coordinate work. */
  private pos(c: unknown, path: string, index?: number): string {
    if (!Array.isArray(c) || c.length < 2 || c.length > 4) throw encodeError("a position must be an array of 2 to 4 numbers", at(path, index));
    for (let i = 0; i < c.length; i++) {
      const n = c[i];
      if (typeof n !== "number" || !Number.isFinite(n)) throw encodeError(`coordinate ${i} is ${typeof n === "number" ? String(n) : typeof n}, not a finite number`, at(path, index));
    }
    let s = this.swap ? `${c[1]} ${c[0]}` : `${c[0]} ${c[1]}`;
    for (let i = 2; i < c.length; i++) s += ` ${c[i]}`;
    return s;
  }

  private dimAttr(dim: number): string {
    return dim === 2 ? "" : ` srsDimension="${dim}"`;
  }

  private posList(coords: unknown, min: number, what: string, path: string): string {
    if (!Array.isArray(coords) || coords.length < min) throw encodeError(`${what} needs at least ${min} positions`, path);
    const dim = Array.isArray(coords[0]) ? (coords[0] as unknown[]).length : 2;
    let s = "";
    for (let i = 0; i < coords.length; i++) {
      const c = coords[i] as Position;
      if (Array.isArray(c) && c.length !== dim) throw encodeError(`position has ${c.length} coordinates where the first has ${dim}`, at(path, i));
      s += i === 0 ? this.pos(c, path, i) : ` ${this.pos(c, path, i)}`;
    }
    return `<gml:posList${this.dimAttr(dim)}>${s}</gml:posList>`;
  }

  private ring(coords: unknown, path: string): string {
    if (Array.isArray(coords) && coords.length >= 4) {
      const a = coords[0] as unknown[];
      const b = coords[coords.length - 1] as unknown[];
      if (Array.isArray(a) && Array.isArray(b) && (a.length !== b.length || a.some((x, i) => x !== b[i]))) {
        throw encodeError("a linear ring must end where it starts", path);
      }
    }
    return `<gml:LinearRing>${this.posList(coords, 4, "a linear ring", path)}</gml:LinearRing>`;
  }

  private open(name: string, id: string | undefined, srs: boolean, ns: string): string {
    let s = `<gml:${name}`;
    if (ns) s += ns;
    if (this.v32 && id !== undefined) s += ` gml:id="${escapeAttr(id)}"`;
    if (srs) s += ` srsName="${escapeAttr(this.srsName)}"`;
    return `${s}>`;
  }

  private polygonBody(rings: unknown, path: string): string {
    if (!Array.isArray(rings) || rings.length === 0) throw encodeError("a polygon needs an exterior ring", path);
    let s = `<gml:exterior>${this.ring(rings[0], `${path}[0]`)}</gml:exterior>`;
    for (let i = 1; i < rings.length; i++) s += `<gml:interior>${this.ring(rings[i], `${path}[${i}]`)}</gml:interior>`;
    return s;
  }

  private list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) throw encodeError("must be an array", path);
    return value;
  }

  /** One geometry element; `top` carries srsName and namespace declarations. */
  write(g: Geometry, id: string | undefined, top: boolean, path: string, ns = ""): string {
    if (typeof g !== "object" || g === null) throw encodeError("a geometry must be an object", path);
    const cpath = `${path}.coordinates`;
    const c = (g as { coordinates?: unknown }).coordinates;
    switch (g.type) {
      case "Point":
        return `${this.open("Point", id, top, ns)}<gml:pos${this.dimAttr(Array.isArray(c) ? c.length : 2)}>${this.pos(c, cpath)}</gml:pos></gml:Point>`;
      case "LineString":
        return `${this.open("LineString", id, top, ns)}${this.posList(c, 2, "a line string", cpath)}</gml:LineString>`;
      case "Polygon":
        return `${this.open("Polygon", id, top, ns)}${this.polygonBody(c, cpath)}</gml:Polygon>`;
      case "MultiPoint": {
        let s = this.open("MultiPoint", id, top, ns);
        const pts = this.list(c, cpath);
        for (let i = 0; i < pts.length; i++) {
          const p = pts[i];
          s += `<gml:pointMember>${this.open("Point", sub(id, i), false, "")}<gml:pos${this.dimAttr(Array.isArray(p) ? p.length : 2)}>${this.pos(p, cpath, i)}</gml:pos></gml:Point></gml:pointMember>`;
        }
        return `${s}</gml:MultiPoint>`;
      }
      case "MultiLineString": {
        // GML 3.2 has no MultiLineString; 3.1.1 keeps it (deprecated there, but the type WFS 1.1 servers read).
        const [multi, member] = this.v32 ? ["MultiCurve", "curveMember"] : ["MultiLineString", "lineStringMember"];
        let s = this.open(multi, id, top, ns);
        const lines = this.list(c, cpath);
        for (let i = 0; i < lines.length; i++) {
          s += `<gml:${member}>${this.open("LineString", sub(id, i), false, "")}${this.posList(lines[i], 2, "a line string", `${cpath}[${i}]`)}</gml:LineString></gml:${member}>`;
        }
        return `${s}</gml:${multi}>`;
      }
      case "MultiPolygon": {
        const [multi, member] = this.v32 ? ["MultiSurface", "surfaceMember"] : ["MultiPolygon", "polygonMember"];
        let s = this.open(multi, id, top, ns);
        const polys = this.list(c, cpath);
        for (let i = 0; i < polys.length; i++) {
          s += `<gml:${member}>${this.open("Polygon", sub(id, i), false, "")}${this.polygonBody(polys[i], `${cpath}[${i}]`)}</gml:Polygon></gml:${member}>`;
        }
        return `${s}</gml:${multi}>`;
      }
      case "GeometryCollection": {
        let s = this.open("MultiGeometry", id, top, ns);
        const gs = this.list((g as { geometries?: unknown }).geometries, `${path}.geometries`);
        for (let i = 0; i < gs.length; i++) {
          s += `<gml:geometryMember>${this.write(gs[i] as Geometry, sub(id, i), false, `${path}.geometries[${i}]`)}</gml:geometryMember>`;
        }
        return `${s}</gml:MultiGeometry>`;
      }
      default:
        throw encodeError(`unknown geometry type ${JSON.stringify((g as { type?: unknown }).type)}`, `${path}.type`);
    }
  }
}

const sub = (id: string | undefined, i: number): string | undefined => (id === undefined ? undefined : `${id}.${i}`);
const at = (path: string, index: number | undefined): string => (index === undefined ? path : `${path}[${index}]`);

function writerFor(opts: { version: GmlVersion; srsName?: string; axisOrder?: AxisOrder }): GeometryWriter {
  if (opts.version !== "3.1.1" && opts.version !== "3.2") {
    throw new GeoWatchError("ENCODE", `GML version must be "3.1.1" or "3.2" (got ${JSON.stringify(opts.version)})`, { backend: CODEC });
  }
  return new GeometryWriter(opts.version, opts.srsName ?? DEFAULT_SRS[opts.version], opts.axisOrder);
}

/** One GML geometry element for a GeoJSON geometry. */
export function encodeGeometry(geometry: Geometry, opts: EncodeGeometryOptions): string {
  const w = writerFor(opts);
  const ns = opts.declareNamespace ? ` xmlns:gml="${GML_NS[opts.version]}"` : "";
  return w.write(geometry, opts.gmlId ?? (w.v32 ? nextId() : undefined), true, "geometry", ns);
}

/** The feature element's qualified name and namespace prefix. */
function qualify(featureType: string, prefix: string): [string, string] {
  const i = featureType.indexOf(":");
  const p = i < 0 ? prefix : featureType.slice(0, i);
  const local = i < 0 ? featureType : featureType.slice(i + 1);
  if (!NCNAME.test(local) || (p !== "" && !NCNAME.test(p))) {
    throw new GeoWatchError("ENCODE", `feature type ${JSON.stringify(featureType)} is not an XML name`, { backend: CODEC, path: "featureType" });
  }
  return [p ? `${p}:${local}` : local, p];
}

/** A gml:id from a GeoJSON id: kept when it is an XML name, else `<type>.<id>` (servers' own form, `points.12`). */
export function gmlIdOf(id: string | number, typeLocal: string): string {
  const s = String(id);
  return NCNAME.test(s) ? s : `${typeLocal}.${s}`;
}

interface Prepared {
  w: GeometryWriter;
  qname: string;
  prefix: string;
  typeLocal: string;
  geometryName: string;
  nil: boolean;
}

function prepare(opts: EncodeFeatureOptions): Prepared {
  const [qname, prefix] = qualify(opts.featureType, opts.namespacePrefix);
  const geometryName = opts.geometryName ?? "geometry";
  if (!NCNAME.test(geometryName)) throw new GeoWatchError("ENCODE", `geometry name ${JSON.stringify(geometryName)} is not an XML name`, { backend: CODEC, path: "geometryName" });
  return { w: writerFor(opts), qname, prefix, typeLocal: qname.slice(qname.indexOf(":") + 1), geometryName, nil: (opts.nulls ?? "nil") === "nil" };
}

function namespaceDecls(version: GmlVersion, prefix: string, uri: string): string {
  let s = ` xmlns:gml="${GML_NS[version]}" xmlns:xsi="${XSI_NS}"`;
  if (prefix) s += ` xmlns:${prefix}="${escapeAttr(uri)}"`;
  return s;
}

function propertyValue(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case "string":
      return escapeXml(value);
    case "number":
      if (!Number.isFinite(value)) throw encodeError(`${value} cannot be written as a number`, path);
      return String(value);
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      return undefined;
    case "object":
      // GML simple features have no nested values: an object or array is written as its JSON text.
      return escapeXml(JSON.stringify(value));
    default:
      throw encodeError(`a ${typeof value} cannot be written as a property`, path);
  }
}

function writeFeature(feature: Feature, p: Prepared, ns: string, path: string): string {
  if (typeof feature !== "object" || feature === null || feature.type !== "Feature") {
    throw encodeError(`expected a GeoJSON Feature, got ${feature === null ? "null" : typeof feature === "object" ? `type ${JSON.stringify((feature as { type?: unknown }).type)}` : typeof feature}`, path);
  }
  const pfx = p.prefix ? `${p.prefix}:` : "";
  const fid = feature.id === undefined || feature.id === null ? undefined : gmlIdOf(feature.id, p.typeLocal);
  let s = `<${p.qname}${ns}`;
  if (fid !== undefined) s += ` gml:id="${escapeAttr(fid)}"`;
  s += ">";
  if (feature.geometry !== null && feature.geometry !== undefined) {
    const gid = fid !== undefined ? `${fid}.geom` : p.w.v32 ? nextId() : undefined;
    s += `<${pfx}${p.geometryName}>${p.w.write(feature.geometry, gid, true, `${path}.geometry`)}</${pfx}${p.geometryName}>`;
  }
  const props = feature.properties;
  if (props !== null && props !== undefined) {
    if (typeof props !== "object" || Array.isArray(props)) throw encodeError("properties must be an object or null", `${path}.properties`);
    for (const key in props) {
      const ppath = `${path}.properties.${key}`;
      if (!NCNAME.test(key) || key.includes(":")) throw encodeError(`property name ${JSON.stringify(key)} is not an XML element name`, ppath);
      if (key === p.geometryName) throw encodeError(`property ${JSON.stringify(key)} has the geometry element's name`, ppath);
      const value = props[key];
      if (value === null) {
        if (p.nil) s += `<${pfx}${key} xsi:nil="true"/>`;
        continue;
      }
      const text = propertyValue(value, ppath);
      if (text !== undefined) s += `<${pfx}${key}>${text}</${pfx}${key}>`;
    }
  }
  return `${s}</${p.qname}>`;
}

/**
 * One feature element: the geometry under `geometryName` first, then every property as a child element
 * in key order. Values are kept: 0, "", false as written, null as `xsi:nil="true"` (or left out with
 * `nulls: "omit"`), objects and arrays as their JSON text. A GeoJSON id becomes the `gml:id`.
 */
export function encodeFeature(feature: Feature, opts: EncodeFeatureOptions): string {
  const p = prepare(opts);
  const ns = opts.declareNamespaces === false ? "" : namespaceDecls(opts.version, p.prefix, opts.namespaceUri);
  return writeFeature(feature, p, ns, "feature");
}

/**
 * A `wfs:FeatureCollection` document: WFS 2.0 with `wfs:member` for GML 3.2, WFS 1.1 with
 * `gml:featureMember` for GML 3.1.1 (what GetFeature answers and GDAL reads).
 */
export function encodeFeatureCollection(features: Feature[], opts: EncodeCollectionOptions): string {
  return encodeFeatureCollectionBytes(features, opts).toString("utf8");
}

/**
 * encodeFeatureCollection as UTF-8 bytes. Each feature's text goes into a growing buffer as it is made:
 * one string built by appending for the whole document would hold millions of rope pieces until it is
 * flattened (6-7x the document's size in heap for 100,000 features).
 */
export function encodeFeatureCollectionBytes(features: Feature[], opts: EncodeCollectionOptions): Buffer {
  const p = prepare(opts);
  const v = opts.version;
  const stamp = new Date().toISOString();
  const out = new ByteWriter(Math.max(4096, features.length * 256));
  let head = `<?xml version="1.0" encoding="UTF-8"?>\n<wfs:FeatureCollection xmlns:wfs="${WFS_NS[v]}"${namespaceDecls(v, p.prefix, opts.namespaceUri)}`;
  head += v === "3.2"
    ? ` numberMatched="${opts.numberMatched ?? "unknown"}" numberReturned="${features.length}" timeStamp="${stamp}">\n`
    : ` numberOfFeatures="${features.length}" timeStamp="${stamp}">\n`;
  out.write(head);
  const [open, close] = v === "3.2" ? ["<wfs:member>", "</wfs:member>\n"] : ["<gml:featureMember>", "</gml:featureMember>\n"];
  for (let i = 0; i < features.length; i++) out.write(open + writeFeature(features[i]!, p, "", `features[${i}]`) + close);
  out.write("</wfs:FeatureCollection>\n");
  return out.bytes();
}

class ByteWriter {
  private buf: Buffer;
  private len = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  write(s: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    if (this.len + s.length * 3 > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + s.length * 3));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.len += this.buf.write(s, this.len, "utf8");
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
