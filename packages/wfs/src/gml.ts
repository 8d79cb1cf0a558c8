/** GML 3.1.1 / 3.2 encoding and GML 2 / 3.1.1 / 3.2 decoding of GeoJSON features and geometries. */
export { axisOrderOf, epsgCode, DEFAULT_SRS, GML_NS, WFS_NS, XSI_NS } from "./gml-common.js";
export type { AxisOrder, Feature, Geometry, GmlVersion, Position } from "./gml-common.js";
export { encodeFeature, encodeFeatureCollection, encodeFeatureCollectionBytes, encodeGeometry, gmlIdOf } from "./gml-encode.js";
export type { EncodeCollectionOptions, EncodeFeatureOptions, EncodeGeometryOptions } from "./gml-encode.js";
export { decodeFeatures, decodeGeometry, isFeatureCollectionDocument } from "./gml-decode.js";
export type { DecodeOptions } from "./gml-decode.js";
