/**
 * Where a row's geometry is: a column holding GeoJSON (object or JSON text) named geometry/geom/the_geom/
 * geojson, else a latitude/longitude column pair (decimalLatitude/decimalLongitude, latitude/longitude,
 * lat/lon|lng, y/x). Rows without a usable geometry get a null geometry.
 */
import type { Field } from "../sources/datastore.js";

export interface Geometry {
  type: string;
  coordinates?: unknown;
  geometries?: Geometry[];
}

export interface GeometrySource {
  /** Column indexes the geometry came from (left out of the properties). */
  columns: number[];
  /** "POINT" for coordinate pairs, "GEOMETRY" for GeoJSON columns. */
  kind: "POINT" | "GEOMETRY";
  read(row: unknown[]): Geometry | null;
}

const GEOM_NAMES = ["geometry", "geom", "the_geom", "geojson", "wkb_geometry", "shape"];
const PAIRS: [string, string][] = [
  ["decimallatitude", "decimallongitude"],
  ["decimal latitude", "decimal longitude"],
  ["latitude", "longitude"],
  ["lat", "lon"],
  ["lat", "lng"],
  ["y", "x"],
];

const num = (v: unknown): number | undefined => {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
};

export function geometrySource(fields: Field[]): GeometrySource | undefined {
  const names = fields.map((f) => f.id.toLowerCase());
  const g = names.findIndex((n) => GEOM_NAMES.includes(n));
  if (g >= 0) {
    return {
      columns: [g],
      kind: "GEOMETRY",
      read(row) {
        let v = row[g];
        if (typeof v === "string") {
          try {
            v = JSON.parse(v);
          } catch {
            return null;
          }
        }
        return v !== null && typeof v === "object" && typeof (v as Geometry).type === "string" ? (v as Geometry) : null;
      },
    };
  }
  for (const [latName, lonName] of PAIRS) {
    const la = names.indexOf(latName);
    const lo = names.indexOf(lonName);
    if (la >= 0 && lo >= 0) {
      return {
        columns: [la, lo],
        kind: "POINT",
        read(row) {
          const lat = num(row[la]);
          const lon = num(row[lo]);
          if (lat === undefined || lon === undefined || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
          return { type: "Point", coordinates: [lon, lat] };
        },
      };
    }
  }
  return undefined;
}

const WKB_TYPES: Record<string, number> = { Point: 1, LineString: 2, Polygon: 3, MultiPoint: 4, MultiLineString: 5, MultiPolygon: 6, GeometryCollection: 7 };

/** Little-endian 2D WKB of a GeoJSON geometry, and its envelope [minx, maxx, miny, maxy]. */
export function toWkb(g: Geometry): { wkb: Buffer; env: [number, number, number, number] } {
  const parts: Buffer[] = [];
  const env: [number, number, number, number] = [Infinity, -Infinity, Infinity, -Infinity];
  const head = (type: number) => {
    const b = Buffer.alloc(5);
    b.writeUInt8(1, 0);
    b.writeUInt32LE(type, 1);
    parts.push(b);
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n, 0);
    parts.push(b);
  };
  const pts = (cs: number[][]) => {
    const b = Buffer.alloc(cs.length * 16);
    cs.forEach((c, i) => {
      const x = Number(c[0]);
      const y = Number(c[1]);
      b.writeDoubleLE(x, i * 16);
      b.writeDoubleLE(y, i * 16 + 8);
      if (x < env[0]) env[0] = x;
      if (x > env[1]) env[1] = x;
      if (y < env[2]) env[2] = y;
      if (y > env[3]) env[3] = y;
    });
    parts.push(b);
  };
  const rings = (rs: number[][][]) => {
    u32(rs.length);
    for (const r of rs) {
      u32(r.length);
      pts(r);
    }
  };
  const walk = (geom: Geometry) => {
    const type = WKB_TYPES[geom.type];
    if (type === undefined) throw new Error(`unknown geometry type ${geom.type}`);
    head(type);
    const c = geom.coordinates as never;
    switch (geom.type) {
      case "Point":
        pts([c]);
        break;
      case "LineString":
        u32((c as number[][]).length);
        pts(c);
        break;
      case "Polygon":
        rings(c);
        break;
      case "MultiPoint":
        u32((c as number[][]).length);
        for (const p of c as number[][]) {
          head(1);
          pts([p]);
        }
        break;
      case "MultiLineString":
        u32((c as number[][][]).length);
        for (const l of c as number[][][]) {
          head(2);
          u32(l.length);
          pts(l);
        }
        break;
      case "MultiPolygon":
        u32((c as number[][][][]).length);
        for (const p of c as number[][][][]) {
          head(3);
          rings(p);
        }
        break;
      case "GeometryCollection":
        u32(geom.geometries?.length ?? 0);
        for (const sub of geom.geometries ?? []) walk(sub);
        break;
    }
  };
  walk(g);
  return { wkb: Buffer.concat(parts), env };
}

/** A GeoPackage geometry blob: the "GP" header (SRS 4326, little-endian, an envelope except for points) + WKB. */
export function gpkgBlob(g: Geometry): { blob: Buffer; env: [number, number, number, number] } {
  const { wkb, env } = toWkb(g);
  const withEnv = g.type !== "Point";
  const head = Buffer.alloc(8 + (withEnv ? 32 : 0));
  head.write("GP", 0, "ascii");
  head.writeUInt8(0, 2);
  head.writeUInt8(((withEnv ? 1 : 0) << 1) | 1, 3);
  head.writeInt32LE(4326, 4);
  if (withEnv) env.forEach((v, i) => head.writeDoubleLE(v, 8 + i * 8));
  return { blob: Buffer.concat([head, wkb]), env };
}
