/**
 * The WFS reader: GetCapabilities once (versions, output formats, type names), then GetFeature page by
 * page (`count`/`startIndex` in 2.0.0, `maxFeatures`/`startIndex` in 1.1.0) with the total from
 * `resultType=hits`, as GeoJSON where the server offers it and GML otherwise. Every bad answer (an
 * ExceptionReport, a 500, truncated or hostile XML, broken JSON) is a GeoWatchError naming the URL.
 */
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { Payload } from "@geowatch/core";
import { encodeFilter, srsNameFor } from "./filter.js";
import type { BboxFilter, FilterExpr } from "./filter.js";
import { axisOrderOf } from "./gml-common.js";
import type { Feature } from "./gml-common.js";
import { decodeFeatures } from "./gml-decode.js";
import { BACKEND, excerpt, redactUrl, wfsHttp } from "./http.js";
import type { SecretReader, WfsHttp, WfsResponse } from "./http.js";
import { readItems } from "./ogcapi-read.js";
import type { WfsReaderOptions } from "./reader-options.js";
import { attr, childrenByLocalName, findElements, localName, parseExceptionReport, parseXml, rootElement, textOf } from "./xml.js";
import type { XmlElement } from "./xml.js";

/** What the capabilities say about GetFeature. */
export interface WfsCapabilities {
  version: string;
  /** GetFeature output formats (operation-wide and per type). */
  formats: string[];
  /** Feature type names as listed (`ms:points`). */
  typeNames: string[];
}

/** One page of features, and the total when the server told it. */
export interface FeaturePage {
  features: Feature[];
  total?: number;
}

/** What a read adds to the configured filter (the poll's position). */
export interface ReadExtra {
  and?: FilterExpr[];
  /** Stop after this many features. Default: the options' `max_features` (polling reads everything and caps what it emits). */
  limit?: number;
  /** Skip this many features first (a read resumed after a failure): `startIndex` on WFS. */
  start?: number;
}

/** Reads a layer: the configured query, page by page. */
export interface LayerReader {
  readonly typeName: string;
  /** Pages of features, in server order; the last page may be short. */
  pages(extra?: ReadExtra): AsyncGenerator<FeaturePage>;
  /** The number of features matching (WFS `resultType=hits`, OGC API `numberMatched`), when the server says. */
  hits(extra?: ReadExtra): Promise<number | undefined>;
  /** The type is listed by the server (WFS capabilities, OGC API collection). */
  exists(): Promise<boolean>;
}

const JSON_FORMATS = [/^application\/geo\+json/i, /geojson/i, /^application\/json/i, /^application\/vnd\.geo\+json/i, /json/i];

/** The GeoJSON output format to ask for, from the capabilities' list, if any. */
export function geojsonFormat(formats: readonly string[]): string | undefined {
  for (const re of JSON_FORMATS) {
    const hit = formats.find((f) => re.test(f));
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/** Throws the clearest error a response deserves: the server's exception text, or the status and an excerpt. */
export function checkResponse(res: WfsResponse, what: string): void {
  const trimmed = res.text.trimStart();
  if (trimmed.startsWith("<") && /ExceptionReport/.test(trimmed.slice(0, 2000))) {
    let info: ReturnType<typeof parseExceptionReport>;
    try {
      info = parseExceptionReport(parseXml(res.text, { what }));
    } catch {
      info = undefined;
    }
    if (info) {
      const code = info.code ? ` (${info.code}${info.locator ? ` at ${info.locator}` : ""})` : "";
      throw new GeoWatchError("FETCH", `${what} from ${redactUrl(res.url)}: the server reported an exception${code}: ${info.text}`, {
        backend: BACKEND,
        retryable: res.status >= 500,
      });
    }
  }
  if (res.status >= 400) {
    throw new GeoWatchError("FETCH", `${what} from ${redactUrl(res.url)} answered HTTP ${res.status}: ${excerpt(res.text) || "(empty body)"}`, {
      backend: BACKEND,
      retryable: res.status >= 500 || res.status === 429,
    });
  }
}

/** Parses XML of a response, naming the URL when it is refused or broken. */
function xmlOf(res: WfsResponse, what: string): XmlElement {
  try {
    return parseXml(res.text, { what });
  } catch (err) {
    throw new GeoWatchError("XML", `${what} from ${redactUrl(res.url)}: ${reasonOf(err).replace(/^\[geowatch\] \[wfs\] /, "")}`, { backend: BACKEND, cause: err });
  }
}

/** Parses a GeoJSON FeatureCollection of a response. */
export function featureCollectionOf(res: WfsResponse, what: string): { features: Feature[]; numberMatched?: number; links?: Array<Record<string, unknown>> } {
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch (err) {
    throw new GeoWatchError("DECODE", `${what} from ${redactUrl(res.url)} is not JSON (truncated?): ${reasonOf(err)}; starts with ${excerpt(res.text, 120)}`, {
      backend: BACKEND,
      cause: err,
      retryable: true,
    });
  }
  const fc = body as { type?: unknown; features?: unknown; numberMatched?: unknown; links?: unknown };
  if (typeof fc !== "object" || fc === null || fc.type !== "FeatureCollection" || !Array.isArray(fc.features)) {
    throw new GeoWatchError("DECODE", `${what} from ${redactUrl(res.url)} is not a GeoJSON FeatureCollection: ${excerpt(res.text, 120)}`, { backend: BACKEND });
  }
  const out: { features: Feature[]; numberMatched?: number; links?: Array<Record<string, unknown>> } = { features: fc.features as Feature[] };
  if (typeof fc.numberMatched === "number") out.numberMatched = fc.numberMatched;
  if (Array.isArray(fc.links)) out.links = fc.links as Array<Record<string, unknown>>;
  return out;
}

/** The capabilities of a WFS, for a version. */
export async function getCapabilities(http: WfsHttp, version: string): Promise<WfsCapabilities> {
  const res = await http.request({ params: { SERVICE: "WFS", REQUEST: "GetCapabilities", VERSION: version, ACCEPTVERSIONS: version } });
  checkResponse(res, "GetCapabilities");
  const doc = xmlOf(res, "GetCapabilities");
  const root = rootElement(doc);
  if (!root || localName(root[0]) !== "WFS_Capabilities") {
    throw new GeoWatchError("DECODE", `GetCapabilities from ${redactUrl(res.url)} is not a WFS_Capabilities document (root ${root ? root[0] : "none"})`, { backend: BACKEND });
  }
  const formats = new Set<string>();
  for (const op of findElements(root[1], "Operation")) {
    if (attr(op, "name") !== "GetFeature") continue;
    for (const p of childrenByLocalName(op, "Parameter")) {
      if (attr(p, "name")?.toLowerCase() !== "outputformat") continue;
      for (const v of findElements(p, "Value")) formats.add(textOf(v).trim());
    }
  }
  const typeNames: string[] = [];
  for (const ft of findElements(root[1], "FeatureType")) {
    const name = textOf(childrenByLocalName(ft, "Name")[0]).trim();
    if (name) typeNames.push(name);
    for (const of of childrenByLocalName(ft, "OutputFormats")) for (const f of childrenByLocalName(of, "Format")) formats.add(textOf(f).trim());
  }
  return { version: attr(root[1], "version") ?? version, formats: [...formats].filter(Boolean), typeNames };
}

/** Whether `name` (with or without a prefix) is one of the listed type names. */
export function typeListed(typeNames: readonly string[], name: string): boolean {
  return typeNames.some((t) => t === name || localName(t) === localName(name));
}

/** Sets `id` from `idField` when configured. */
export function withIds(features: Feature[], idField: string | undefined): Feature[] {
  if (idField === undefined) return features;
  for (const f of features) {
    const v = f.properties?.[idField];
    if (typeof v === "string" || typeof v === "number") f.id = v;
  }
  return features;
}

/** A reader for one feature type of a WFS. */
export function wfsLayerReader(http: WfsHttp, o: WfsReaderOptions, typeName = o.typeName): LayerReader {
  const version = o.version ?? "1.1.0";
  const pageSize = o.pageSize ?? 1000;
  // The URN in both versions: MapServer 8 refuses the 2.0.0 URI form as SRSNAME.
  const srsName = o.srsName ?? srsNameFor("EPSG:4326", "1.1.0");
  // The coordinates come in the CRS asked for, in its axis order, whatever short form a server labels
  // them with (MapServer 8 and QGIS Server answer a 1.1.0 request for the EPSG:4326 URN latitude first,
  // labelled "EPSG:4326").
  const axisOrder = axisOrderOf(srsName);
  const bbox: BboxFilter | undefined = o.bbox ? { bbox: o.bbox, ...(o.bboxCrs ? { crs: o.bboxCrs } : {}), ...(o.geometryName ? { geometryName: o.geometryName } : {}) } : undefined;
  let caps: Promise<WfsCapabilities> | undefined;
  const capabilities = (): Promise<WfsCapabilities> => {
    caps ??= getCapabilities(http, version).catch((err: unknown) => {
      caps = undefined;
      throw err;
    });
    return caps;
  };

  function baseParams(extra: ReadExtra | undefined): Record<string, string> {
    const params: Record<string, string> = { SERVICE: "WFS", VERSION: version, REQUEST: "GetFeature", [version === "2.0.0" ? "TYPENAMES" : "TYPENAME"]: typeName };
    const filter = encodeFilter({ filter: o.filter, bbox, ...(extra?.and ? { and: extra.and } : {}) }, version);
    if (filter !== undefined) params.FILTER = filter;
    return params;
  }

  async function hits(extra?: ReadExtra): Promise<number | undefined> {
    const res = await http.request({ params: { ...baseParams(extra), RESULTTYPE: "hits" } });
    checkResponse(res, "GetFeature (hits)");
    const root = rootElement(xmlOf(res, "GetFeature (hits)"));
    const n = root ? (attr(root[1], "numberMatched") ?? attr(root[1], "numberOfFeatures")) : undefined;
    return n !== undefined && /^\d+$/.test(n) ? Number(n) : undefined;
  }

  async function* pages(extra?: ReadExtra): AsyncGenerator<FeaturePage> {
    const c = await capabilities();
    if (!typeListed(c.typeNames, typeName)) {
      throw new GeoWatchError("NOT_FOUND", `feature type "${typeName}" is not in the capabilities of ${redactUrl(http.baseUrl)} (known: ${c.typeNames.join(", ") || "none"})`, { backend: BACKEND });
    }
    if (c.version !== version) {
      throw new GeoWatchError("UNSUPPORTED", `${redactUrl(http.baseUrl)} answered GetCapabilities for WFS ${version} with version ${c.version}: set version: "${c.version}"`, { backend: BACKEND, path: "version" });
    }
    const fmt = o.outputFormat ?? "auto";
    const json = fmt === "gml" ? undefined : geojsonFormat(c.formats);
    if (fmt === "geojson" && json === undefined) {
      throw new GeoWatchError("UNSUPPORTED", `output_format geojson: ${redactUrl(http.baseUrl)} lists no JSON output format for GetFeature (it lists ${c.formats.join(", ")})`, { backend: BACKEND });
    }
    const total = await hits(extra);
    const limit = Math.min(extra?.limit ?? o.maxFeatures ?? Infinity, total ?? Infinity);
    const from = extra?.start ?? 0;
    let start = from;
    let firstIds: string | undefined;
    while (start < limit) {
      const count = Math.min(pageSize, limit - start);
      const params = { ...baseParams(extra), [version === "2.0.0" ? "COUNT" : "MAXFEATURES"]: String(count), STARTINDEX: String(start), SRSNAME: srsName };
      if (json !== undefined) params.OUTPUTFORMAT = json;
      const res = await http.request({ params });
      checkResponse(res, "GetFeature");
      let features: Feature[];
      if (json !== undefined) {
        features = featureCollectionOf(res, "GetFeature").features;
      } else {
        try {
          features = decodeFeatures(res.text, { axisOrder, srsName, ...(o.maxResponseBytes !== undefined ? { maxBytes: o.maxResponseBytes } : {}) });
        } catch (err) {
          const code = err instanceof GeoWatchError && err.code === "XML" ? "XML" : "DECODE";
          throw new GeoWatchError(code, `GetFeature from ${redactUrl(res.url)}: ${reasonOf(err).replace(/^\[geowatch\] \[wfs\] /, "")}`, { backend: BACKEND, cause: err });
        }
      }
      withIds(features, o.idField);
      // A server that ignores startIndex sends the first page again and again.
      const ids = features.slice(0, 3).map((f) => JSON.stringify([f.id, f.geometry])).join();
      if (start > from && features.length > 0 && ids === firstIds) {
        throw new GeoWatchError("UNSUPPORTED", `GetFeature from ${redactUrl(http.baseUrl)} ignores STARTINDEX (page at ${start} repeats the first page): set page_size above the layer's size`, { backend: BACKEND });
      }
      if (start === from) firstIds = ids;
      yield total !== undefined ? { features, total } : { features };
      start += features.length;
      if (features.length < count) break;
    }
  }

  return {
    typeName,
    pages,
    hits,
    async exists() {
      return typeListed((await capabilities()).typeNames, typeName);
    },
  };
}

/** The reader the options ask for: WFS or OGC API Features. */
export function layerReader(o: WfsReaderOptions, secret?: SecretReader, typeName = o.typeName): LayerReader {
  const http = wfsHttp(o, secret);
  return (o.protocol ?? "wfs") === "ogcapi" ? readItems(http, o, typeName) : wfsLayerReader(http, o, typeName);
}

/** Every feature the options select, one array (for `stores_in` and tests; a consumer pages instead). */
export async function readAll(reader: LayerReader, extra?: ReadExtra): Promise<Feature[]> {
  const out: Feature[] = [];
  for await (const page of reader.pages(extra)) for (const f of page.features) out.push(f);
  return out;
}

/**
 * What the store's `read` answers for `stores_in`: the layer `key` (default: `type_name`) as one GeoJSON
 * FeatureCollection, which the `geojson` codec unpacks into features; undefined when the server has no
 * such layer.
 */
export async function readStore(options: Omit<WfsReaderOptions, "typeName" | "poll"> & { typeName?: string }, key?: string, secret?: SecretReader): Promise<Payload | undefined> {
  const typeName = key ?? options.typeName;
  if (typeName === undefined || typeName === "") {
    throw new GeoWatchError("CONFIG", "a store read needs a key (the feature type or collection) or type_name", { backend: BACKEND, path: "type_name" });
  }
  const reader = layerReader({ ...options, typeName }, secret, typeName);
  if (!(await reader.exists())) return undefined;
  const features = await readAll(reader);
  return JSON.stringify({ type: "FeatureCollection", features });
}
