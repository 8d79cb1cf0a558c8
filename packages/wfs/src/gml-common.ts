/** GML versions, namespaces, srsName forms and axis order, shared by the encoder and the decoder. */

/** The GML versions written: 3.1.1 (WFS 1.1.0) and 3.2 (WFS 2.0.0). "2" (WFS 1.0.0) is read only. */
export type GmlVersion = "3.1.1" | "3.2";
/** Order of the first two coordinates in GML: `lonlat` (x y, GeoJSON's) or `latlon` (y x). */
export type AxisOrder = "lonlat" | "latlon";

export const GML_NS: Record<GmlVersion, string> = {
  "3.1.1": "http://www.opengis.net/gml",
  "3.2": "http://www.opengis.net/gml/3.2",
};
export const WFS_NS: Record<GmlVersion, string> = {
  "3.1.1": "http://www.opengis.net/wfs",
  "3.2": "http://www.opengis.net/wfs/2.0",
};
export const XSI_NS = "http://www.w3.org/2001/XMLSchema-instance";

/** The srsName written when none is given: EPSG:4326 in each version's own form (both lat lon). */
export const DEFAULT_SRS: Record<GmlVersion, string> = {
  "3.1.1": "urn:ogc:def:crs:EPSG::4326",
  "3.2": "http://www.opengis.net/def/crs/EPSG/0/4326",
};

export type Position = number[];
export interface Point { type: "Point"; coordinates: Position; bbox?: number[] }
export interface MultiPoint { type: "MultiPoint"; coordinates: Position[]; bbox?: number[] }
export interface LineString { type: "LineString"; coordinates: Position[]; bbox?: number[] }
export interface MultiLineString { type: "MultiLineString"; coordinates: Position[][]; bbox?: number[] }
export interface Polygon { type: "Polygon"; coordinates: Position[][]; bbox?: number[] }
export interface MultiPolygon { type: "MultiPolygon"; coordinates: Position[][][]; bbox?: number[] }
export interface GeometryCollection { type: "GeometryCollection"; geometries: Geometry[]; bbox?: number[] }
/** An RFC 7946 geometry. */
export type Geometry = Point | MultiPoint | LineString | MultiLineString | Polygon | MultiPolygon | GeometryCollection;

/** An RFC 7946 Feature. */
export interface Feature {
  type: "Feature";
  id?: string | number;
  geometry: Geometry | null;
  properties: Record<string, unknown> | null;
  bbox?: number[];
}

/**
 * EPSG codes between 4000 and 4999 are geographic CRSs (latitude first) apart from these geocentric ones
 * (X Y Z). Codes elsewhere are taken as easting first unless listed in NORTH_FIRST; `axisOrder` overrides both.
 */
const GEOCENTRIC = new Set([4328, 4330, 4340, 4348, 4354, 4465, 4468, 4473, 4479, 4481, 4556, 4882, 4884, 4886, 4888, 4890, 4892, 4894, 4896, 4897, 4899, 4906, 4908, 4910, 4911, 4912, 4913, 4914, 4915, 4916, 4917, 4918, 4919, 4920, 4922, 4924, 4926, 4928, 4930, 4932, 4934, 4936, 4938, 4940, 4942, 4944, 4946, 4948, 4950, 4952, 4954, 4956, 4958, 4960, 4962, 4964, 4966, 4968, 4970, 4972, 4974, 4976, 4978, 4980, 4982, 4984, 4986, 4988, 4990, 4992, 4994, 4996, 4998]);
/** CRSs outside 4000-4999 whose EPSG definition puts northing or latitude first (common European grids, GDA2020). */
const NORTH_FIRST = new Set([2180, 3006, 3034, 3035, 3844, 7844, 31466, 31467, 31468, 31469]);

const URN_EPSG = /^urn:(?:x-)?ogc:def:crs:EPSG:[^:]*:(\d+)$/i;
const URL_EPSG = /^https?:\/\/www\.opengis\.net\/def\/crs\/EPSG\/[^/]+\/(\d+)$/i;
const CRS84 = /(?:^|[:/])CRS:?84$/i;

/** The EPSG code of an srsName in any of its forms, when it names one. */
export function epsgCode(srsName: string): number | undefined {
  const s = srsName.trim();
  const m = URN_EPSG.exec(s) ?? URL_EPSG.exec(s) ?? /^EPSG:(\d+)$/i.exec(s) ?? /#(\d+)$/.exec(s);
  return m ? Number(m[1]) : undefined;
}

/**
 * The axis order an srsName implies. The URN (`urn:ogc:def:crs:EPSG::4326`) and URI
 * (`http://www.opengis.net/def/crs/EPSG/0/4326`) forms follow the EPSG definition: latitude first for
 * geographic CRSs. The short `EPSG:4326` and `http://www.opengis.net/gml/srs/epsg.xml#4326` forms, CRS84
 * and no srsName at all mean x y (longitude first), as GML 2 and GeoServer read them.
 */
export function axisOrderOf(srsName: string | undefined): AxisOrder {
  if (!srsName) return "lonlat";
  const s = srsName.trim();
  if (CRS84.test(s)) return "lonlat";
  const m = URN_EPSG.exec(s) ?? URL_EPSG.exec(s);
  if (!m) return "lonlat";
  const code = Number(m[1]);
  if (NORTH_FIRST.has(code)) return "latlon";
  return code >= 4000 && code < 5000 && !GEOCENTRIC.has(code) ? "latlon" : "lonlat";
}

/** An XML name usable as an element name (NCName, optionally one prefix). */
export const NCNAME = /^[A-Za-z_\u00C0-\uFFEF][\w.\-\u00B7\u00C0-\uFFEF]*$/;
