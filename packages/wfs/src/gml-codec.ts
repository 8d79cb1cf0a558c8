/**
 * The `gml` codec: GeoJSON features (or `{metadata, data}` envelopes of them) to GML 3.1.1 / 3.2 feature
 * documents and back. A store body is one `wfs:FeatureCollection`.
 */
import { defineCodec, GeoWatchError, isGeoWatchError, type Codec, type Envelope, type Metadata, type Payload } from "@geowatch/core";
import { z } from "zod";
import type { Feature, Geometry } from "./gml-common.js";
import { decodeGml, type DecodeOptions } from "./gml-decode.js";
import { encodeFeature, encodeFeatureCollection, encodeFeatureCollectionBytes, type EncodeFeatureOptions } from "./gml-encode.js";

const NAME = "gml";

export const gmlCodecOptions = z.strictObject({
  version: z.enum(["3.1.1", "3.2"]).default("3.2").describe("GML version written: 3.1.1 (WFS 1.1.0) or 3.2 (WFS 2.0.0); reading accepts GML 2, 3.1.1 and 3.2"),
  featureType: z.string().min(1).default("feature").describe("Feature type element name, optionally prefixed (`qgs:points`); an envelope's metadata.featuretype wins"),
  namespacePrefix: z.string().default("gw").describe("Prefix of the feature type's namespace"),
  namespaceUri: z.string().min(1).default("urn:geowatch:features").describe("The feature type's namespace URI (the server's, from DescribeFeatureType)"),
  geometryName: z.string().min(1).default("geometry").describe("Element that holds the geometry (QGIS Server: geometry; GeoServer layers often the_geom)"),
  srsName: z.string().min(1).optional().meta({ default: "EPSG:4326 in the version's form" }).describe("srsName written on geometries (and assumed when reading geometries that name none); default EPSG:4326 as urn:ogc:def:crs:EPSG::4326 (3.1.1) or http://www.opengis.net/def/crs/EPSG/0/4326 (3.2)"),
  axisOrder: z.enum(["lonlat", "latlon"]).optional().describe("Overrides the axis order the srsName implies, both ways (lat lon for EPSG:4326 URNs/URIs, lon lat for EPSG:4326 and CRS84)"),
  nulls: z.enum(["nil", "omit"]).default("nil").describe("A null property: written as xsi:nil=\"true\" (nil) or left out (omit)"),
  maxBytes: z.number().int().positive().default(16 * 1024 * 1024).describe("Largest GML document decoded, in bytes (a store body read by unpack too)"),
  inferTypes: z.boolean().default(true).describe("Reading: turn true/false into booleans and decimal numbers into numbers (GML text has no types); false keeps text"),
});
export type GmlCodecOptions = z.input<typeof gmlCodecOptions>;
type Parsed = z.output<typeof gmlCodecOptions>;

/** What the codec carries: a Feature or FeatureCollection, or an envelope whose data is one. */
export type GmlValue = Feature | { type: "FeatureCollection"; features: Feature[] } | Envelope<Feature | { type: "FeatureCollection"; features: Feature[] }>;

function isEnvelope(v: unknown): v is Envelope<unknown> {
  return typeof v === "object" && v !== null && (v as { type?: unknown }).type === undefined && (v as { data?: unknown }).data !== undefined;
}

const GEOMETRY_TYPES = new Set(["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"]);

/** The features a value stands for, and the feature type its envelope names. */
function featuresOf(value: unknown, where: string): { features: Feature[]; collection: boolean; featureType?: string } {
  let data = value;
  let featureType: string | undefined;
  if (isEnvelope(value)) {
    data = value.data;
    const ft = value.metadata?.featuretype;
    if (typeof ft === "string" && ft !== "") featureType = ft;
  }
  const type = typeof data === "object" && data !== null ? (data as { type?: unknown }).type : undefined;
  if (type === "Feature") return { features: [data as Feature], collection: false, featureType };
  if (type === "FeatureCollection") {
    const fs = (data as { features?: unknown }).features;
    if (!Array.isArray(fs)) throw new GeoWatchError("ENCODE", `${where}FeatureCollection without a features array`, { backend: NAME });
    return { features: fs as Feature[], collection: true, featureType };
  }
  if (typeof type === "string" && GEOMETRY_TYPES.has(type)) return { features: [{ type: "Feature", geometry: data as Geometry, properties: null }], collection: false, featureType };
  throw new GeoWatchError("ENCODE", `${where}expected a GeoJSON Feature, FeatureCollection or geometry (or an envelope of one), got ${type === undefined ? typeof data : `type ${JSON.stringify(type)}`}`, { backend: NAME });
}

/** An XML-level refusal (entities, size, well-formedness) as the codec's DECODE error. */
function asDecode(err: unknown): unknown {
  if (!isGeoWatchError(err, "XML")) return err;
  return new GeoWatchError("DECODE", err.message.replace(/^\[geowatch\] (?:\[[^\]]*\] )?/, ""), { backend: NAME, cause: err, path: err.path });
}

/** True for an empty or whitespace-only body (an empty store key), checked without decoding all of it. */
function isBlank(payload: Payload): boolean {
  if (typeof payload === "string") return payload.trim() === "";
  for (const b of payload) if (b !== 32 && b !== 9 && b !== 10 && b !== 13) return false;
  return true;
}

/** A gml codec with parsed options (the runtime's `codec: { name: gml, options: {...} }` comes here). */
export function createGmlCodec(options: Parsed): Codec<GmlValue> {
  const base: Omit<EncodeFeatureOptions, "featureType"> = {
    version: options.version,
    namespacePrefix: options.namespacePrefix,
    namespaceUri: options.namespaceUri,
    geometryName: options.geometryName,
    nulls: options.nulls,
    ...(options.srsName !== undefined ? { srsName: options.srsName } : {}),
    ...(options.axisOrder !== undefined ? { axisOrder: options.axisOrder } : {}),
  };
  const decodeOpts: DecodeOptions = {
    inferTypes: options.inferTypes,
    maxBytes: options.maxBytes,
    // Assumed for geometries that name no srsName, so a configured CRS applies both ways.
    ...(options.srsName !== undefined ? { srsName: options.srsName } : {}),
    ...(options.axisOrder !== undefined ? { axisOrder: options.axisOrder } : {}),
  };
  const contentType = options.version === "3.2" ? "application/gml+xml; version=3.2" : "text/xml; subtype=gml/3.1.1";
  const decode = (payload: Payload) => {
    try {
      return decodeGml(payload, decodeOpts);
    } catch (err) {
      throw asDecode(err);
    }
  };
  return {
    name: NAME,
    contentType,
    appendable: false,
    encode(value: GmlValue): Payload {
      const { features, collection, featureType } = featuresOf(value, "");
      const opts = { ...base, featureType: featureType ?? options.featureType };
      if (!collection) {
        // One line: a feature record stays whole on line-framed channels (files, pipes); text line breaks are escaped.
        return `<?xml version="1.0" encoding="UTF-8"?>${encodeFeature(features[0]!, opts)}`;
      }
      return encodeFeatureCollection(features, opts);
    },
    decode(payload: Payload): GmlValue {
      const { features, collection } = decode(payload);
      if (collection) return { type: "FeatureCollection", features };
      return features[0]!;
    },
    pack(values: GmlValue[]): Payload {
      const all: Feature[] = [];
      let featureType: string | undefined;
      values.forEach((v, i) => {
        const got = featuresOf(v, `value ${i}: `);
        featureType ??= got.featureType;
        for (const f of got.features) all.push(f);
      });
      // Bytes: a store body can be large, and a string copy of it would double it.
      return encodeFeatureCollectionBytes(all, { ...base, featureType: featureType ?? options.featureType });
    },
    unpack(payload: Payload): GmlValue[] {
      if (isBlank(payload)) return [];
      // Read in parts: a large store body never has its whole element tree in memory.
      return decode(payload).features;
    },
    metadataOf(value: GmlValue): Metadata | undefined {
      if (!isEnvelope(value)) return undefined;
      const meta = value.metadata;
      return typeof meta === "object" && meta !== null ? meta : undefined;
    },
  };
}

/** `codec: gml` (or `codec: { name: gml, options: { version: "3.1.1", feature_type: qgs:points, ... } }`). */
export const gmlCodec = defineCodec({
  name: NAME,
  description: "GeoJSON features to GML 3.1.1 / 3.2 and back (GML 2 read too), every geometry type, srsName axis order, safe XML",
  options: gmlCodecOptions,
  create: (options) => createGmlCodec(options) as Codec,
});
