import type { Codec, Envelope, Metadata, Payload } from "../types.js";
import { isValidatedGeoJSON, markValidated, validateForCodec, validateGeoJSON, type GeoJSONProblem } from "../geojson/validate.js";
import { decodeError, encodeError, parseJson, payloadText, stringifyJson } from "./text.js";

const NAME = "geojson";
/** Problems listed in one error message; `validateGeoJSON` returns them all. */
const MAX_LISTED = 20;

/** A GeoJSON object (RFC 7946): a geometry, a Feature or a FeatureCollection. */
export interface GeoJSONObject {
  type: string;
  bbox?: number[];
  [member: string]: unknown;
}

/** A GeoJSON Feature. */
export interface GeoJSONFeature extends GeoJSONObject {
  type: "Feature";
  geometry: GeoJSONObject | null;
  properties: Record<string, unknown> | null;
  id?: string | number;
}

/** What the geojson codec carries: a GeoJSON object or an envelope whose data is one. */
export type GeoJSONValue = GeoJSONObject | Envelope<GeoJSONObject>;

function isEnvelope(value: GeoJSONValue): value is Envelope<GeoJSONObject> {
  return (value as { type?: unknown }).type === undefined && (value as { data?: unknown }).data !== undefined;
}

/**
 * Throws a DECODE error listing every problem when `value` is not valid GeoJSON. A valid value that took
 * the full walk is marked (`isValidatedGeoJSON`) so the stages after the codec do not walk it again.
 */
function check(value: unknown): GeoJSONValue {
  const problems = validateForCodec(value);
  if (problems.length > 0) throw decodeError(NAME, describe(problems, "invalid GeoJSON"), problems[0]!.path);
  return value as GeoJSONValue;
}

/** `what (n problems): path: message; path: message`, listing at most MAX_LISTED. */
function describe(problems: GeoJSONProblem[], what: string): string {
  const listed = problems.slice(0, MAX_LISTED).map((p) => `${p.path || "(root)"}: ${p.message}`);
  if (problems.length > MAX_LISTED) listed.push(`... and ${problems.length - MAX_LISTED} more`);
  const count = problems.length === 1 ? "" : ` (${problems.length} problems)`;
  return `${what}${count}: ${listed.join("; ")}`;
}

/** The features a value stands for: a collection's features, a feature, or a geometry as a feature. */
function featuresOf(value: GeoJSONValue, out: GeoJSONObject[]): void {
  const g = isEnvelope(value) ? value.data : value;
  if (g.type === "FeatureCollection") {
    for (const f of g.features as GeoJSONObject[]) out.push(f);
  } else if (g.type === "Feature") out.push(g);
  else out.push({ type: "Feature", geometry: g, properties: null });
}

/**
 * GeoJSON (RFC 7946), envelope aware: a value is a GeoJSON object or a `{metadata, data}` envelope
 * whose data is GeoJSON. Decoding validates and reports every problem with its JSON path. A store
 * body is one FeatureCollection of every value's features, and unpacks to those features.
 */
export const geojsonCodec: Codec<GeoJSONValue> = {
  name: NAME,
  contentType: "application/geo+json",
  appendable: false,
  jsonText: true,
  encode(value: GeoJSONValue): Payload {
    return stringifyJson(value, NAME);
  },
  decode(payload: Payload): GeoJSONValue {
    return check(parseJson(payloadText(payload, NAME), NAME));
  },
  pack(values: GeoJSONValue[]): Payload {
    const features: GeoJSONObject[] = [];
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      // A store body outlives the batch, so it must be valid as a whole; what this codec decoded already is.
      const problems = isValidatedGeoJSON(value) ? [] : validateGeoJSON(value);
      if (problems.length > 0) throw encodeError(NAME, describe(problems, `value ${i}: invalid GeoJSON`));
      featuresOf(value!, features);
    }
    return stringifyJson({ type: "FeatureCollection", features }, NAME);
  },
  unpack(payload: Payload): GeoJSONValue[] {
    const text = payloadText(payload, NAME);
    if (text.trim() === "") return [];
    const features: GeoJSONObject[] = [];
    const body = check(parseJson(text, NAME));
    featuresOf(body, features);
    // Each feature was validated as part of the body; the stages that read them one by one need not again.
    for (const f of features) if (f !== body) markValidated(f);
    return features;
  },
  metadataOf(value: GeoJSONValue): Metadata | undefined {
    if (typeof value !== "object" || value === null || !isEnvelope(value)) return undefined;
    const meta = value.metadata;
    return typeof meta === "object" && meta !== null ? meta : undefined;
  },
};
